/**
 * Log-space building blocks shared by the binomial and Fisher tails: Stirling's error term and
 * the deviance term bd0 of Loader's saddle-point expansion ("Fast and accurate computation of
 * binomial probabilities", 2000), which give the logarithm of a binomial or Poisson probability
 * with a relative error near machine precision, without cancelling large lgamma values.
 */

const LN_2PI = Math.log(2 * Math.PI);

/**
 * stirlerr(n) = ln(n!) − (n + ½)·ln n + n − ½·ln(2π) for integers 1..15 (mpmath, 40 digits, rounded to double);
 * index 0 is unused.
 */
const STIRLERR_SMALL = [
  0, 0.08106146679532726, 0.0413406959554093, 0.02767792568499834, 0.020790672103765093,
  0.016644691189821193, 0.013876128823070748, 0.01189670994589177, 0.010411265261972096,
  0.009255462182712733, 0.00833056343336287, 0.007573675487951841, 0.00694284010720953,
  0.006408994188004207, 0.0059513701127588475, 0.005554733551962801,
];

const S0 = 1 / 12;
const S1 = 1 / 360;
const S2 = 1 / 1260;
const S3 = 1 / 1680;
const S4 = 1 / 1188;

/** Stirling's error term for a positive integer n (asymptotic series above 15). */
export function stirlerr(n: number): number {
  if (n <= 15) return STIRLERR_SMALL[n]!;
  const nn = n * n;
  if (n > 500) return (S0 - S1 / nn) / n;
  if (n > 80) return (S0 - (S1 - S2 / nn) / nn) / n;
  if (n > 35) return (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n;
  return (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n;
}

/** bd0(x, m) = x·ln(x/m) + m − x, with a series when x is close to m (no cancellation). */
export function bd0(x: number, m: number): number {
  if (Math.abs(x - m) < 0.1 * (x + m)) {
    let v = (x - m) / (x + m);
    let s = (x - m) * v;
    let ej = 2 * x * v;
    v *= v;
    for (let j = 1; j < 1000; j++) {
      ej *= v;
      const next = s + ej / (2 * j + 1);
      if (next === s) return next;
      s = next;
    }
    return s;
  }
  return x * Math.log(x / m) + m - x;
}

/** ln P[X = x] for X ~ Binomial(n, p), with q = 1 − p passed separately (exact when given). */
export function logBinomialPmf(x: number, n: number, p: number, q: number): number {
  if (x === 0) return p < 0.1 ? -bd0(n, n * q) - n * p : n * Math.log(q);
  if (x === n) return q < 0.1 ? -bd0(n, n * p) - n * q : n * Math.log(p);
  const lc = stirlerr(n) - stirlerr(x) - stirlerr(n - x) - bd0(x, n * p) - bd0(n - x, n * q);
  const lf = LN_2PI + Math.log(x) + Math.log1p(-x / n);
  return lc - 0.5 * lf;
}

/** ln P[Y = x] for Y ~ Poisson(lambda), lambda > 0. */
export function logPoissonPmf(x: number, lambda: number): number {
  if (x === 0) return -lambda;
  return -stirlerr(x) - bd0(x, lambda) - 0.5 * (LN_2PI + Math.log(x));
}

/** Stop adding terms of a decreasing series once a term is this small relative to the sum. */
export const NEGLIGIBLE = 1e-20;

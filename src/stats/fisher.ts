/**
 * Fisher's method for independent detection runs (METHOD.md, Detection): with R runs on disjoint
 * key sets, X = −2 Σ ln p_r follows χ² with 2R degrees of freedom under the null. The even-degree
 * χ² tail has a closed form, a Poisson sum: P[χ²(2R) ≥ 2s] = Σ_{i<R} e^{−s} sⁱ/i!, evaluated here
 * in log space so that it stays finite far below 1e-300.
 */
import { statsInputError } from "./errors.ts";
import { logPoissonPmf, NEGLIGIBLE } from "./log-terms.ts";

export interface FisherResult {
  /** log10 of the combined p-value. */
  log10P: number;
  /** X = −2 Σ ln p_r. */
  statistic: number;
  /** 2R. */
  degreesOfFreedom: number;
}

export function validateLog10Ps(log10Ps: readonly number[]): void {
  if (log10Ps.length < 1)
    throw statsInputError("Fisher's method needs at least one p-value; received none.");
  log10Ps.forEach((value, index) => {
    if (!Number.isFinite(value) || value > 0) {
      throw statsInputError(
        `Each value must be a run's log10 p: a finite number ≤ 0, since a p-value lies in (0, 1]; value ${index + 1} of ${log10Ps.length} is ${value}. Give log10 p, not p (p = 0.001 is -3).`,
      );
    }
  });
}

/** Combine independent p-values, given as log10 p, with Fisher's method. */
export function fisherCombine(log10Ps: readonly number[]): FisherResult {
  validateLog10Ps(log10Ps);
  const runs = log10Ps.length;
  // s = −Σ ln p_r = X / 2.
  const s = -Math.LN10 * log10Ps.reduce((total, value) => total + value, 0);
  const logP = s === 0 ? 0 : logChiSquareEvenTail({ halfStatistic: s, runs });
  return { log10P: logP / Math.LN10, statistic: 2 * s, degreesOfFreedom: 2 * runs };
}

/** ln P[χ²(2·runs) ≥ 2·halfStatistic] = ln P[Poisson(halfStatistic) < runs]. */
function logChiSquareEvenTail(args: { halfStatistic: number; runs: number }): number {
  const { halfStatistic: s, runs } = args;
  if (s >= runs) {
    // Terms i = runs−1, runs−2, …, 0 decrease going down (ratio i/s < 1).
    let term = 1;
    let sum = 1;
    for (let i = runs - 1; i > 0; i--) {
      term *= i / s;
      sum += term;
      if (term < sum * NEGLIGIBLE) break;
    }
    return logPoissonPmf(runs - 1, s) + Math.log(sum);
  }
  // Near 1: one minus the Poisson upper tail Σ_{i≥runs}, whose terms decrease (ratio s/(i+1) < 1).
  let term = 1;
  let sum = 1;
  for (let i = runs; ; i++) {
    term *= s / (i + 1);
    sum += term;
    if (term < sum * NEGLIGIBLE) break;
  }
  return Math.log1p(-Math.exp(logPoissonPmf(runs, s) + Math.log(sum)));
}

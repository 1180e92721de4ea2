/**
 * The detection p-value (METHOD.md, Detection): with K keys whose labels are drawn uniformly and
 * independently of the suspect model, the number of top-k hits is X ~ Binomial(K, k/C) under the
 * null hypothesis that the model never saw the signed data, whatever the model does on noise.
 * The p-value is the upper tail P[X ≥ h], computed in log space so that it stays finite far
 * below 1e-300. The null is exact only if every key counts once: repeated or augmented copies of
 * one key are not independent trials.
 */
import { clopperPearson, type Interval } from "./clopper-pearson.ts";
import { statsInputError } from "./errors.ts";
import { logBinomialPmf, NEGLIGIBLE } from "./log-terms.ts";

export interface BinomialQuestion {
  /** h, keys whose label was in the suspect model's top k. */
  hits: number;
  /** K, the number of keys queried. */
  keys: number;
  /** k of the top-k test. */
  topK: number;
  /** C, the number of classes. */
  classes: number;
}

export interface BinomialTestResult extends BinomialQuestion {
  /** log10 P[X ≥ h], X ~ Binomial(K, k/C). */
  log10P: number;
  /** k/C, the chance that one key hits under the null. */
  nullRate: number;
  /** K·k/C, the expected hits under the null. */
  expectedHits: number;
  /** h/K, the top-k key accuracy. */
  hitRate: number;
  /** Clopper–Pearson 95 % interval for the top-k key accuracy. */
  interval: Interval;
}

export function validateBinomialQuestion(question: BinomialQuestion): void {
  const { hits, keys, topK, classes } = question;
  const isInt = Number.isSafeInteger;
  if (!isInt(keys) || keys < 1)
    throw statsInputError(`keys (K) must be an integer >= 1; received ${keys}.`);
  if (!isInt(classes) || classes < 2) {
    throw statsInputError(`classes (C) must be an integer >= 2; received ${classes}.`);
  }
  if (!isInt(topK) || topK < 1 || topK >= classes) {
    throw statsInputError(
      `top-k must be an integer with 1 <= k < C = ${classes}; received ${topK}.`,
    );
  }
  if (!isInt(hits) || hits < 0 || hits > keys) {
    throw statsInputError(`hits must be an integer with 0 <= h <= K = ${keys}; received ${hits}.`);
  }
}

/** log10 P[X ≥ hits] for X ~ Binomial(keys, topK/classes). */
export function log10BinomialTail(question: BinomialQuestion): number {
  validateBinomialQuestion(question);
  return logUpperTail(question) / Math.LN10;
}

/** The binomial test with the figures a report needs. */
export function binomialTest(question: BinomialQuestion): BinomialTestResult {
  const log10P = log10BinomialTail(question);
  const nullRate = question.topK / question.classes;
  return {
    ...question,
    log10P,
    nullRate,
    expectedHits: question.keys * nullRate,
    hitRate: question.hits / question.keys,
    interval: clopperPearson({ hits: question.hits, trials: question.keys, confidence: 0.95 }),
  };
}

/** Natural log of P[X ≥ h]. */
function logUpperTail({ hits: h, keys: n, topK, classes }: BinomialQuestion): number {
  if (h === 0) return 0;
  // p and q each rounded once from exact integers, so q is accurate even when p is tiny.
  const p = topK / classes;
  const q = (classes - topK) / classes;
  if (h > n * p) return sumUpward({ from: h, n, p, q });
  // Below the mean the tail is near 1: take the complement of the lower tail, which is small.
  return Math.log1p(-Math.exp(sumDownward({ from: h - 1, n, p, q })));
}

/** ln Σ_{j=from}^{n} P[X = j], for from > n·p where the terms decrease. */
function sumUpward(args: { from: number; n: number; p: number; q: number }): number {
  const { from, n, p, q } = args;
  const odds = p / q;
  let term = 1;
  let sum = 1;
  for (let j = from; j < n; j++) {
    term *= ((n - j) / (j + 1)) * odds;
    sum += term;
    if (term < sum * NEGLIGIBLE) break;
  }
  return logBinomialPmf(from, n, p, q) + Math.log(sum);
}

/** ln Σ_{j=0}^{from} P[X = j], for from < n·p where the terms decrease going down. */
function sumDownward(args: { from: number; n: number; p: number; q: number }): number {
  const { from, n, p, q } = args;
  const inverseOdds = q / p;
  let term = 1;
  let sum = 1;
  for (let j = from; j > 0; j--) {
    term *= (j / (n - j + 1)) * inverseOdds;
    sum += term;
    if (term < sum * NEGLIGIBLE) break;
  }
  return logBinomialPmf(from, n, p, q) + Math.log(sum);
}

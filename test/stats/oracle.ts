/** The committed oracle values (scripts/generate-stats-oracle.py, mpmath and scipy). */
import { readFileSync } from "node:fs";

export interface StatsOracle {
  generated_by: string;
  /** [keys, topK, classes, hits, log10P] */
  binomial: Array<[number, number, number, number, number]>;
  /** [runs, a, b, log10P] with log10 p_r = a + b·r/(runs − 1). */
  fisher: Array<[number, number, number, number]>;
  /** [hits, trials, confidence, lower, upper] */
  clopper_pearson: Array<[number, number, number, number, number]>;
}

export const oracle = JSON.parse(
  readFileSync(new URL("../fixtures/stats-oracle.json", import.meta.url), "utf8"),
) as StatsOracle;

/** |actual − expected| / |expected|, or |actual| when the expected value is 0. */
export function relativeError(actual: number, expected: number): number {
  return expected === 0 ? Math.abs(actual) : Math.abs(actual - expected) / Math.abs(expected);
}

/** The p-values of a Fisher oracle case, computed as the generator computed them. */
export function fisherInputs(runs: number, a: number, b: number): number[] {
  return Array.from({ length: runs }, (_, r) => a + (runs > 1 ? (b * r) / (runs - 1) : 0));
}

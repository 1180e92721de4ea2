/**
 * The Clopper–Pearson ("exact") confidence interval for a binomial proportion, used for the
 * top-k key accuracy h/K in evidence reports. Bounds are beta quantiles:
 * lower = B⁻¹(α/2; h, K−h+1), upper = B⁻¹(1−α/2; h+1, K−h), with α = 1 − confidence.
 */
import betaincinv from "@stdlib/math-base-special-betaincinv";
import { statsInputError } from "./errors.ts";

export interface Interval {
  lower: number;
  upper: number;
  confidence: number;
}

export function clopperPearson(args: {
  hits: number;
  trials: number;
  confidence?: number;
}): Interval {
  const { hits, trials } = args;
  const confidence = args.confidence ?? 0.95;
  if (!Number.isSafeInteger(trials) || trials < 1) {
    throw statsInputError(`trials must be an integer >= 1; received ${trials}.`);
  }
  if (!Number.isSafeInteger(hits) || hits < 0 || hits > trials) {
    throw statsInputError(
      `hits must be an integer with 0 <= hits <= trials = ${trials}; received ${hits}.`,
    );
  }
  if (!(confidence > 0 && confidence < 1)) {
    throw statsInputError(`confidence must lie in (0, 1); received ${confidence}.`);
  }
  const alpha = 1 - confidence;
  const lower = hits === 0 ? 0 : betaincinv(alpha / 2, hits, trials - hits + 1);
  // The upper bound as the complement of the upper-tail inverse keeps precision near 1.
  const upper = hits === trials ? 1 : betaincinv(alpha / 2, hits + 1, trials - hits, true);
  return { lower, upper, confidence };
}

/**
 * Fisher's method over several detection reports (METHOD.md, Detection: independent runs on
 * disjoint key sets combine as X = −2 Σ ln p_r ~ χ²(2R)). The reports must test one suspect with
 * different commitments: keys behind different commitments come from different secrets or
 * datasets, so their labels are independent. Every report's p-value enters the combination:
 * leaving out the inconclusive ones would select runs by their p-value. The combined verdict is
 * inconclusive when any run's control keys failed, or when the combination is not significant
 * and some run was inconclusive.
 */
import { TaggantsError, UsageError } from "../errors.ts";
import { fisherCombine } from "../stats/index.ts";
import type { DetectionReport } from "./report.ts";
import { describeSuspectLocation, parseSuspectLocation } from "./spec.ts";

export interface CombinedResult {
  reports: Array<{
    path: string;
    commitment: string;
    log10_p: number;
    verdict: string;
    controls_consistent: boolean;
  }>;
  suspect: string;
  alpha: number;
  log10_p: number;
  statistic: number;
  degrees_of_freedom: number;
  verdict: "detected" | "not-detected" | "inconclusive";
}

export function combineReports(args: {
  reports: Array<{ path: string; report: DetectionReport }>;
  alpha: number;
}): CombinedResult {
  const { reports, alpha } = args;
  if (reports.length < 2) {
    throw new UsageError(
      "detect-combine-too-few",
      `Combining needs at least two reports; received ${reports.length}.`,
    );
  }
  // Specs are compared as detect reads them: `checkpoint:m2` and `m2` are one suspect.
  const suspects = new Map(
    reports.map(({ path, report }) => [suspectLocationOf(path, report), report.suspect.spec]),
  );
  if (suspects.size !== 1) {
    throw new UsageError(
      "detect-combine-suspects",
      `The reports test different suspects (${[...suspects.values()].join(", ")}); Fisher's method here combines runs against one suspect.`,
    );
  }
  const commitments = reports.map(({ report }) => report.commitment.commitment);
  const repeated = commitments.find((value, index) => commitments.indexOf(value) !== index);
  if (repeated) {
    throw new UsageError(
      "detect-combine-not-independent",
      `Two reports use the same commitment ${repeated}, so their keys are the same and the runs are not independent; combine runs with different key sets only.`,
    );
  }
  const rows = reports.map(({ path, report }) => ({
    path,
    commitment: report.commitment.commitment,
    log10_p: report.result.keys.log10_p,
    verdict: report.result.verdict,
    controls_consistent: report.result.controls?.consistent_with_chance ?? true,
  }));
  const fisher = fisherCombine(rows.map((row) => row.log10_p));
  const significant = fisher.log10P <= Math.log10(alpha);
  const controlsFailed = rows.some((row) => !row.controls_consistent);
  const anyInconclusive = rows.some((row) => row.verdict === "inconclusive");
  const verdict =
    controlsFailed || (!significant && anyInconclusive)
      ? "inconclusive"
      : significant
        ? "detected"
        : "not-detected";
  return {
    reports: rows,
    suspect: reports[0]!.report.suspect.spec,
    alpha,
    log10_p: fisher.log10P,
    statistic: fisher.statistic,
    degrees_of_freedom: fisher.degreesOfFreedom,
    verdict,
  };
}

function suspectLocationOf(path: string, report: DetectionReport): string {
  try {
    return describeSuspectLocation(parseSuspectLocation(report.suspect.spec));
  } catch (error) {
    if (!(error instanceof TaggantsError)) throw error;
    throw new UsageError(
      "detect-combine-suspects",
      `The report ${path} names its suspect as "${report.suspect.spec}", which is not a suspect spec (${error.message}); it was not written by taggants detect or was edited.`,
      { cause: error },
    );
  }
}

/**
 * The dry run of `taggants experiment` (issue 6): survey the data the profile would use and plan
 * the run, without a worker or a GPU. Configuration errors throw a UsageError; a plan with
 * problems (memory, disk, budget limits) is returned for the caller to report and fail on.
 */
import { resolveFashionMnist } from "../env/dataset.ts";
import { UsageError } from "../errors.ts";
import { computePlan, surveyIdx, surveyImageFolder, type ExperimentPlan } from "./plan.ts";
import type { ExperimentProfile } from "./profiles.ts";

export async function planExperiment(options: {
  profile: ExperimentProfile;
  data?: string;
  out: string;
}): Promise<ExperimentPlan> {
  const { profile } = options;
  const data = await surveyData({ profile, data: options.data });
  return computePlan({ profile, data, out: options.out });
}

async function surveyData(options: { profile: ExperimentProfile; data?: string }) {
  const { profile } = options;
  if (profile.data.source === "fashion-mnist") {
    const root = options.data ?? resolveFashionMnist();
    return surveyIdx({
      root,
      trainSubset: profile.data.trainSubset,
      testSubset: profile.data.testSubset,
    });
  }
  if (!options.data) {
    throw new UsageError(
      "experiment-data-required",
      `The ${profile.name} profile needs --data <ImageFolder root> (train/<class>/… and val/<class>/…).`,
    );
  }
  return surveyImageFolder(options.data);
}

/**
 * `taggants experiment --dry-run` (issue 6, "The paper-scale profile"): validate the data and
 * the configuration, and plan time, accelerator memory and disk, without a GPU and without
 * hashing or decoding the dataset. The data survey counts files per class, sums their sizes and
 * reads the headers of a few images; the plan multiplies the work of each stage by the profile's
 * planning throughput (assumptions, to be replaced by `npm run bench` figures on the target
 * machine — the plan says so).
 */
import { readFile, stat, statfs } from "node:fs/promises";
import { dirname, join } from "node:path";
import { UsageError } from "../errors.ts";
import { parseImageHeader } from "../manifest/image-header.ts";
import { readIdxLabels } from "../manifest/idx.ts";
import { detectLayout, listClassFolder, type ImageFolderLayout } from "../manifest/layout.ts";
import { resolveImagesPerKey, validateEps255 } from "../sign/signing-set.ts";
import type { ExperimentProfile } from "./profiles.ts";

/** Images whose headers are read to learn the image sizes and modes. */
const HEADER_SAMPLE = 32;
/** Planning figure for copying the dataset when writing the signed copy. */
const COPY_BYTES_PER_SECOND = 300e6;
/** Planning figure for hashing a dataset into a manifest. */
const HASH_BYTES_PER_SECOND = 400e6;
/** Training batch assumed for the memory plan. */
const TRAIN_BATCH = 256;

export interface DataSurvey {
  root: string;
  layout: "imagefolder" | "idx";
  classes: number;
  train: { count: number; minClassCount: number; maxClassCount: number; bytes: number };
  test: { count: number; bytes: number } | null;
  /** Sizes and modes of the sampled images, as "WxH mode" → count. */
  sample: Record<string, number>;
}

export interface PlanStage {
  stage: string;
  work: string;
  estimateSeconds: number;
}

export interface ExperimentPlan {
  profile: string;
  data: DataSurvey;
  config: {
    repeats: number;
    keys: number;
    imagesPerKey: number;
    signingImages: number;
    budgetFraction: number;
    eps255: number;
    topK: number;
    classes: number;
    steps: number;
    restarts: number;
  };
  stages: PlanStage[];
  totalSeconds: number;
  memory: { craftGiB: number; trainGiB: number; acceleratorGiB: number; fits: boolean };
  disk: { signedCopyBytes: number; freeBytes: number; fits: boolean };
  assumptions: string;
  problems: string[];
}

/** Count, size and sample an ImageFolder dataset without hashing it. */
export async function surveyImageFolder(root: string): Promise<DataSurvey> {
  const layout = await detectLayout(root);
  if (layout.kind !== "imagefolder") {
    throw new UsageError(
      "experiment-data-layout",
      `The imagenet profile expects an ImageFolder tree (train/<class>/… and val/<class>/…) at ${root}; found idx files. Use --profile fashion-mnist for idx data.`,
    );
  }
  const train = layout.splits.find((split) => split.split === "train")!;
  const test = layout.splits.find((split) => split.split === "test");
  const sample: Record<string, number> = {};
  const trainCounts = await countSplit({ layout, directory: train.directory, sample });
  const testCounts = test ? await countSplit({ layout, directory: test.directory, sample }) : null;
  const counts = trainCounts.perClass;
  return {
    root,
    layout: "imagefolder",
    classes: layout.classes.length,
    train: {
      count: counts.reduce((a, b) => a + b, 0),
      minClassCount: Math.min(...counts),
      maxClassCount: Math.max(...counts),
      bytes: trainCounts.bytes,
    },
    test: testCounts
      ? { count: testCounts.perClass.reduce((a, b) => a + b, 0), bytes: testCounts.bytes }
      : null,
    sample,
  };
}

/** Count an idx dataset (the first `trainSubset` training images when given) from its labels. */
export async function surveyIdx(options: {
  root: string;
  trainSubset?: number;
  testSubset?: number;
}): Promise<DataSurvey> {
  const layout = await detectLayout(options.root);
  if (layout.kind !== "idx" || !layout.files.train) {
    throw new UsageError(
      "experiment-data-layout",
      `Expected idx files (train-images-idx3-ubyte[.gz] and labels) at ${options.root}.`,
    );
  }
  const split = async (files: { images: string; labels: string }, limit?: number) => {
    const { labels } = await readIdxLabels(join(options.root, files.labels));
    const kept = labels.subarray(0, limit ?? labels.length);
    const imageBytes = (await stat(join(options.root, files.images))).size;
    return { labels: kept, bytes: Math.round((imageBytes * kept.length) / labels.length) };
  };
  const train = await split(layout.files.train, options.trainSubset);
  const test = layout.files.test ? await split(layout.files.test, options.testSubset) : null;
  const classes = Math.max(...train.labels) + 1;
  const counts = Array.from({ length: classes }, () => 0);
  for (const label of train.labels) counts[label]! += 1;
  return {
    root: options.root,
    layout: "idx",
    classes,
    train: {
      count: train.labels.length,
      minClassCount: Math.min(...counts),
      maxClassCount: Math.max(...counts),
      bytes: train.bytes,
    },
    test: test ? { count: test.labels.length, bytes: test.bytes } : null,
    sample: {},
  };
}

async function countSplit(options: {
  layout: ImageFolderLayout;
  directory: string;
  sample: Record<string, number>;
}): Promise<{ perClass: number[]; bytes: number }> {
  const perClass: number[] = [];
  let bytes = 0;
  for (const className of options.layout.classes) {
    let count = 0;
    const classDirectory = join(options.directory, className);
    const exists = await stat(classDirectory).then(
      (info) => info.isDirectory(),
      () => false,
    );
    if (exists) {
      for (const path of await listClassFolder(classDirectory)) {
        const file = join(classDirectory, path);
        bytes += (await stat(file)).size;
        count += 1;
        if (Object.values(options.sample).reduce((a, b) => a + b, 0) < HEADER_SAMPLE) {
          await sampleHeader(file, options.sample);
        }
      }
    }
    perClass.push(count);
  }
  return { perClass, bytes };
}

async function sampleHeader(file: string, sample: Record<string, number>): Promise<void> {
  try {
    const header = parseImageHeader(new Uint8Array(await readFile(file)));
    const key = `${header.width}x${header.height} ${header.container} ${header.mode}`;
    sample[key] = (sample[key] ?? 0) + 1;
  } catch (error) {
    throw new UsageError(
      "experiment-data-unreadable",
      `${file} is not a readable PNG, JPEG or WebP image: ${(error as Error).message}. Remove or fix it before running the experiment.`,
      { cause: error },
    );
  }
}

/** The plan of a whole experiment run on surveyed data. Configuration errors throw. */
export async function computePlan(options: {
  profile: ExperimentProfile;
  data: DataSurvey;
  out: string;
}): Promise<ExperimentPlan> {
  const { profile, data } = options;
  validateEps255(profile.signing.eps255);
  const keys = profile.keys.count;
  const imagesPerKey = resolveImagesPerKey({
    budget: profile.signing.budget,
    trainCount: data.train.count,
    keyCount: keys,
  });
  const signingImages = keys * imagesPerKey;
  const budgetFraction = signingImages / data.train.count;
  const problems = configurationProblems({ profile, data, imagesPerKey, budgetFraction });
  const stages = planStages({ profile, data, signingImages, problems });
  const memory = planMemory(profile);
  if (!memory.fits) {
    problems.push(
      `Crafting needs about ${memory.craftGiB.toFixed(1)} GiB and training ${memory.trainGiB.toFixed(1)} GiB of accelerator memory, more than the planned ${memory.acceleratorGiB} GiB; lower signing.chunkSize or the batch size.`,
    );
  }
  const disk = await planDisk({ out: options.out, data, repeats: profile.repeats });
  if (!disk.fits) {
    problems.push(
      `The signed copies need about ${gib(disk.signedCopyBytes)} GiB but ${gib(disk.freeBytes)} GiB are free under ${options.out}; free space or sign with hard links (--link).`,
    );
  }
  return {
    profile: profile.name,
    data,
    config: {
      repeats: profile.repeats,
      keys,
      imagesPerKey,
      signingImages,
      budgetFraction,
      eps255: profile.signing.eps255,
      topK: profile.detection.topK,
      classes: data.classes,
      steps: profile.signing.steps,
      restarts: profile.signing.restarts,
    },
    stages,
    totalSeconds: stages.reduce((sum, stage) => sum + stage.estimateSeconds, 0),
    memory,
    disk,
    assumptions: `Throughput and memory figures are planning assumptions for ${profile.plan.device}; measure them with \`npm run bench\` on the target machine and adjust the profile.`,
    problems,
  };
}

function configurationProblems(options: {
  profile: ExperimentProfile;
  data: DataSurvey;
  imagesPerKey: number;
  budgetFraction: number;
}): string[] {
  const { profile, data, imagesPerKey, budgetFraction } = options;
  const problems: string[] = [];
  if (budgetFraction > profile.limits.maxBudgetFraction) {
    problems.push(
      `The signing budget is ${(budgetFraction * 100).toFixed(3)} % of the training set, above the profile's limit of ${profile.limits.maxBudgetFraction * 100} %.`,
    );
  }
  if (imagesPerKey > data.train.minClassCount) {
    problems.push(
      `Each key needs ${imagesPerKey} signing images of its label but the smallest class has ${data.train.minClassCount} training images.`,
    );
  }
  if (profile.detection.topK >= data.classes) {
    problems.push(
      `Top-${profile.detection.topK} detection needs more than ${profile.detection.topK} classes; the dataset has ${data.classes}.`,
    );
  }
  if (!data.test)
    problems.push(
      "The dataset has no val/ or test/ split, so validation accuracy cannot be reported.",
    );
  return problems;
}

function planStages(options: {
  profile: ExperimentProfile;
  data: DataSurvey;
  signingImages: number;
  problems: string[];
}): PlanStage[] {
  const { profile, data, signingImages, problems } = options;
  const { plan, signing, repeats } = profile;
  const trainTime = (model: string, epochs: number): number => {
    const rate = plan.trainImagesPerSecond[model];
    if (rate === undefined) {
      problems.push(
        `No planning throughput for model ${model}; add it to the profile's plan.trainImagesPerSecond.`,
      );
      return 0;
    }
    return (epochs * data.train.count + (data.test?.count ?? 0)) / rate;
  };
  const bytes = data.train.bytes + (data.test?.bytes ?? 0);
  const stages: PlanStage[] = [
    {
      stage: "manifest",
      work: `hash ${gib(bytes)} GiB`,
      estimateSeconds: bytes / HASH_BYTES_PER_SECOND,
    },
    {
      stage: "surrogate",
      work: `${profile.surrogate.seeds.length} × ${profile.surrogate.model} ${profile.surrogate.recipe}, ${profile.surrogate.epochs} epochs`,
      estimateSeconds:
        profile.surrogate.seeds.length *
        trainTime(profile.surrogate.model, profile.surrogate.epochs),
    },
  ];
  const craftWork = signingImages * signing.steps * signing.restarts * signing.augDraws;
  stages.push({
    stage: "signing",
    work: `${repeats} × ${signingImages} images × ${signing.steps} steps × ${signing.restarts} restarts × ${signing.augDraws} draws`,
    estimateSeconds: (repeats * craftWork) / plan.craftImageStepsPerSecond,
  });
  stages.push({
    stage: "signed dataset",
    work: `${repeats} × copy ${gib(bytes)} GiB + manifest`,
    estimateSeconds: repeats * (bytes / COPY_BYTES_PER_SECOND + bytes / HASH_BYTES_PER_SECOND),
  });
  for (const suspect of profile.suspects) {
    const copies = suspect.data === "signed" ? repeats : 1;
    stages.push({
      stage: `suspect ${suspect.scenario}`,
      work: `${copies} × ${suspect.model} ${suspect.recipe}, ${suspect.epochs} epochs on ${suspect.data} data`,
      estimateSeconds: copies * trainTime(suspect.model, suspect.epochs),
    });
  }
  return stages;
}

function planMemory(profile: ExperimentProfile): ExperimentPlan["memory"] {
  const { plan, signing } = profile;
  const craftGiB = plan.baseGiB + signing.chunkSize * plan.craftGiBPerImage;
  const trainGiB = plan.baseGiB + TRAIN_BATCH * plan.trainGiBPerImage;
  return {
    craftGiB,
    trainGiB,
    acceleratorGiB: plan.acceleratorGiB,
    fits: Math.max(craftGiB, trainGiB) <= plan.acceleratorGiB,
  };
}

async function planDisk(options: {
  out: string;
  data: DataSurvey;
  repeats: number;
}): Promise<ExperimentPlan["disk"]> {
  const signedCopyBytes =
    options.repeats * (options.data.train.bytes + (options.data.test?.bytes ?? 0));
  const freeBytes = await freeSpace(options.out);
  return { signedCopyBytes, freeBytes, fits: signedCopyBytes <= freeBytes };
}

/** Free bytes on the file system that will hold `path` (its nearest existing ancestor). */
async function freeSpace(path: string): Promise<number> {
  let current = path;
  for (;;) {
    try {
      const info = await statfs(current);
      return info.bavail * info.bsize;
    } catch (error) {
      const parent = dirname(current);
      if ((error as NodeJS.ErrnoException).code !== "ENOENT" || parent === current) throw error;
      current = parent;
    }
  }
}

function gib(bytes: number): string {
  return (bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 3 : 1);
}

/** The plan as text for the terminal. */
export function renderPlan(plan: ExperimentPlan): string {
  const { config, data } = plan;
  const lines = [
    `Dry run of the ${plan.profile} profile on ${data.root}`,
    `data: ${data.classes} classes, ${data.train.count} training images (smallest class ${data.train.minClassCount}), ${data.test?.count ?? 0} test images, ${gib(data.train.bytes + (data.test?.bytes ?? 0))} GiB`,
    `sampled images: ${
      Object.entries(data.sample)
        .map(([kind, count]) => `${count} × ${kind}`)
        .join(", ") || "(idx)"
    }`,
    `signing: ${config.repeats} repeat(s) × K = ${config.keys} keys × ${config.imagesPerKey} images = ${config.signingImages} (${(config.budgetFraction * 100).toFixed(3)} %), ε = ${config.eps255}/255, ${config.steps} steps, ${config.restarts} restart(s); detection top-${config.topK} of C = ${config.classes}`,
    "",
    "stage                 estimate   work",
    ...plan.stages.map(
      (stage) =>
        `${stage.stage.padEnd(20)} ${formatDuration(stage.estimateSeconds).padStart(9)}   ${stage.work}`,
    ),
    `${"total".padEnd(20)} ${formatDuration(plan.totalSeconds).padStart(9)}`,
    "",
    `memory: crafting ≈ ${plan.memory.craftGiB.toFixed(1)} GiB, training ≈ ${plan.memory.trainGiB.toFixed(1)} GiB of ${plan.memory.acceleratorGiB} GiB (${plan.memory.fits ? "fits" : "does NOT fit"})`,
    `disk: signed copies ≈ ${gib(plan.disk.signedCopyBytes)} GiB, ${gib(plan.disk.freeBytes)} GiB free (${plan.disk.fits ? "fits" : "does NOT fit"})`,
    plan.assumptions,
  ];
  if (plan.problems.length > 0)
    lines.push("", "problems:", ...plan.problems.map((problem) => `  - ${problem}`));
  else lines.push("", "The data and the configuration are valid.");
  return lines.join("\n");
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(0)} s`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
  if (seconds < 86400 * 2) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

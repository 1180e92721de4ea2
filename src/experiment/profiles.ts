/**
 * Experiment profiles (issue 6): every setting of `taggants experiment` in one typed object per
 * profile, so calibration changes one place. `fashion-mnist` is the CPU demo (`npm run demo`);
 * `imagenet` is the paper's setting (Bouaziz et al., Table 1: DeiT-III ViT-S, 10 keys, 0.1 %
 * budget, ε = 16/255, 250 steps, top-10, 4 repeats).
 *
 * Scenarios follow the paper's Table 1: a suspect trained on the signed dataset with another
 * initialisation (`init`), another augmentation recipe (`aug`, DeiT-III's 3-Augment + Mixup +
 * CutMix), another architecture (`arch`), and a `clean` control trained on the original data,
 * which must not be detected.
 */
import type { SigningBudget } from "../sign/signing-set.ts";

export type ProfileName = "fashion-mnist" | "imagenet";
export const PROFILE_NAMES: readonly ProfileName[] = ["fashion-mnist", "imagenet"];

export type Scenario = "init" | "aug" | "arch" | "clean";

export interface TrainSpec {
  /** Worker model preset or timm name. */
  model: string;
  /** Worker recipe: "simple" (random crop, flip) or "deit3" (3-Augment, Mixup, CutMix). */
  recipe: "simple" | "deit3";
  epochs: number;
  /** Recipe overrides (worker `train` `overrides`). */
  overrides?: Record<string, unknown>;
}

export interface SuspectSpec extends TrainSpec {
  scenario: Scenario;
  /** Which dataset the suspect trains on: the signed dataset on disk, or the original. */
  data: "signed" | "original";
  /** Model-initialisation seed; the data-order seed is `seed + 1000`. */
  seed: number;
}

/**
 * Planning figures for `--dry-run` (per accelerator). They are assumptions to be replaced by
 * measured figures from `npm run bench` on the target hardware; the plan says so.
 */
export interface PlanAssumptions {
  device: string;
  /** Training images per second per model. */
  trainImagesPerSecond: Record<string, number>;
  /** Crafting throughput: signing images × steps per second, per restart and augmentation draw. */
  craftImageStepsPerSecond: number;
  /** Peak accelerator memory of crafting per image of a chunk, GiB (double backward). */
  craftGiBPerImage: number;
  /** Peak accelerator memory of training per image of a batch, GiB. */
  trainGiBPerImage: number;
  /** Fixed memory: weights, optimiser state, CUDA context, GiB. */
  baseGiB: number;
  acceleratorGiB: number;
}

export interface ExperimentProfile {
  name: ProfileName;
  description: string;
  /** Where the data comes from: the embedded Fashion-MNIST, or an ImageFolder given with --data. */
  data:
    | { source: "fashion-mnist"; trainSubset?: number; testSubset?: number }
    | { source: "imagefolder" };
  /** Independent repeats, each with its own key secret and signed dataset (Fisher combines them). */
  repeats: number;
  keys: {
    count: number;
    /** Key image side; default: defaultKeyResolution(image size). */ resolution?: number;
  };
  surrogate: TrainSpec & {
    /** One surrogate per seed; several make an ensemble. */ seeds: number[];
  };
  signing: {
    /** Perturbation bound ε in units of 1/255. */
    eps255: number;
    budget: SigningBudget;
    steps: number;
    restarts: number;
    /** Signed-Adam step as a fraction of ε. */
    stepSize: number;
    /** Differentiable augmentation draws per step. */
    augDraws: number;
    perceptual: "none" | "ssim";
    perceptualWeight: number;
    /** Signing images per gradient chunk (bounds memory). */
    chunkSize: number;
    seed: number;
  };
  suspects: SuspectSpec[];
  detection: { topK: number };
  /** Budget limits the profile promises (checked before running). */
  limits: { maxBudgetFraction: number };
  plan: PlanAssumptions;
}

const FASHION_MNIST: ExperimentProfile = {
  name: "fashion-mnist",
  description: "CPU demo: Fashion-MNIST subset, compact CNN surrogate, Table-1 scenarios",
  // Sized to finish in about 15 minutes on 2 CPU cores. The calibration behind these numbers,
  // and why the demo does not detect (measured with `npm run calibrate`), is in the README
  // ("Results").
  data: { source: "fashion-mnist", trainSubset: 20_000 },
  repeats: 1,
  // Top-1 with 20 keys: 9 hits already give log10 p ≤ −4 (README, "Results").
  keys: { count: 20 },
  surrogate: { model: "cnn", recipe: "simple", epochs: 6, seeds: [0] },
  signing: {
    eps255: 16,
    budget: { fraction: 0.02 },
    // The alignment objective plateaus after the first learning-rate decay (step 3/8).
    steps: 60,
    restarts: 1,
    stepSize: 0.1,
    augDraws: 2,
    perceptual: "none",
    perceptualWeight: 0,
    chunkSize: 256,
    seed: 0,
  },
  suspects: [
    { scenario: "init", model: "cnn", recipe: "simple", epochs: 6, data: "signed", seed: 1 },
    { scenario: "aug", model: "cnn", recipe: "deit3", epochs: 6, data: "signed", seed: 2 },
    {
      scenario: "arch",
      model: "vit-small-28",
      recipe: "simple",
      epochs: 6,
      data: "signed",
      seed: 3,
    },
    { scenario: "clean", model: "cnn", recipe: "simple", epochs: 6, data: "original", seed: 1 },
  ],
  detection: { topK: 1 },
  limits: { maxBudgetFraction: 0.02 },
  plan: {
    device: "2 CPU cores",
    trainImagesPerSecond: { cnn: 2000, "vit-small-28": 1500 },
    craftImageStepsPerSecond: 100,
    craftGiBPerImage: 0.002,
    trainGiBPerImage: 0.001,
    baseGiB: 1,
    acceleratorGiB: 8,
  },
};

const IMAGENET: ExperimentProfile = {
  name: "imagenet",
  description: "Paper scale: ImageNet-1k, DeiT-III ViT-S/16, 10 keys, 0.1 % budget, top-10",
  data: { source: "imagefolder" },
  repeats: 4,
  keys: { count: 10 },
  surrogate: { model: "deit3-small", recipe: "simple", epochs: 100, seeds: [0] },
  signing: {
    eps255: 16,
    budget: { fraction: 0.001 },
    steps: 250,
    restarts: 1,
    stepSize: 0.1,
    augDraws: 2,
    perceptual: "none",
    perceptualWeight: 0,
    chunkSize: 64,
    seed: 0,
  },
  suspects: [
    {
      scenario: "init",
      model: "deit3-small",
      recipe: "simple",
      epochs: 100,
      data: "signed",
      seed: 1,
    },
    {
      scenario: "aug",
      model: "deit3-small",
      recipe: "deit3",
      epochs: 100,
      data: "signed",
      seed: 2,
    },
    {
      scenario: "arch",
      model: "convnext-tiny",
      recipe: "simple",
      epochs: 100,
      data: "signed",
      seed: 3,
    },
    {
      scenario: "clean",
      model: "deit3-small",
      recipe: "simple",
      epochs: 100,
      data: "original",
      seed: 1,
    },
  ],
  detection: { topK: 10 },
  limits: { maxBudgetFraction: 0.001 },
  plan: {
    device: "1 × 80 GiB data-centre GPU (A100/H100 class), bf16",
    trainImagesPerSecond: { "deit3-small": 2500, "convnext-tiny": 1500, resnet50: 2000 },
    craftImageStepsPerSecond: 400,
    craftGiBPerImage: 0.35,
    trainGiBPerImage: 0.06,
    baseGiB: 4,
    acceleratorGiB: 80,
  },
};

export const PROFILES: Record<ProfileName, ExperimentProfile> = {
  "fashion-mnist": FASHION_MNIST,
  imagenet: IMAGENET,
};

/** A deep copy of a profile, so a run may adjust it (tests shrink it) without touching the table. */
export function profileFor(name: ProfileName): ExperimentProfile {
  return structuredClone(PROFILES[name]);
}

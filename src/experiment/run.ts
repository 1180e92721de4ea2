/**
 * `taggants experiment` (issue 6): the whole method on real data from one command, reading like
 * the paper's pipeline —
 *   1. the data and its manifest;
 *   2. the surrogate, trained on the original data (or reused from the run cache);
 *   3. per repeat: a key secret, the signing set, the taggants, the signed dataset on disk with
 *      its public manifest and commitment, and the private record (src/sign);
 *   4. suspect models trained from the signed dataset ON DISK, one per scenario of Table 1, and a
 *      clean control trained on the original data;
 *   5. black-box detection (top-k labels of each suspect on the keys) with exact binomial
 *      p-values, combined over repeats with Fisher's method (src/detect, src/stats);
 *   6. report.json, report.md and taggants.png.
 *
 * Layout of a run folder:
 *   manifests/original.*          manifest of the experiment's dataset
 *   repeat-<r>/signed/            signed dataset, with signed.manifest.* and signed.commitment.json
 *   private/                      key secrets, signing records and their work folders (0700)
 *   models/<scenario>-r<r>/       suspect checkpoints
 *   detection/<scenario>-r<r>/    detection evidence reports
 *   report.json, report.md, taggants.png
 * The run cache (default `runs/cache`) holds the data subset, surrogates and clean controls under
 * a hash of their configuration, so a later run with the same configuration reuses them.
 */
import { chmod, mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Terminal } from "../cli/terminal.ts";
import { runDetection, DEFAULT_DETECT_SETTINGS } from "../detect/detect.ts";
import { workerPredictor } from "../detect/predictor.ts";
import { createKeySecret } from "../keys/secret.ts";
import { buildManifest, type ManifestSummary } from "../manifest/index.ts";
import { createdBy } from "../manifest/version.ts";
import { loadSigningRecord } from "../sign/record.ts";
import { signDataset, type SignOutcome } from "../sign/sign.ts";
import { pathExists } from "../sign/signed-dataset.ts";
import { fingerprintOf } from "../sign/record.ts";
import { validateEps255 } from "../sign/signing-set.ts";
import { fisherCombine } from "../stats/index.ts";
import type { Worker } from "../worker/client.ts";
import { prepareData, type ExperimentData } from "./data.ts";
import { computePsnr, loadSigningPairs, saveTaggantFigure } from "./figure.ts";
import type { ExperimentProfile, SuspectSpec } from "./profiles.ts";
import {
  controlStatement,
  EXPERIMENT_REPORT_SCHEMA,
  REPORT_ALPHA,
  saveReport,
  type ExperimentReport,
  type ScenarioResult,
} from "./report.ts";
import { trainAndEvaluate, type WireDataset } from "./train.ts";

/** Signing images shown in the figure. */
const FIGURE_IMAGES = 6;

export interface RunExperimentOptions {
  profile: ExperimentProfile;
  /** Dataset root (required by the imagenet profile; Fashion-MNIST is found otherwise). */
  data?: string;
  out: string;
  cache: string;
  terminal: Terminal;
  signal?: AbortSignal;
  startWorker: () => Promise<Worker>;
  /** Hard-link unchanged files into the signed datasets. */
  link?: boolean;
  /** GPUs to train on (torchrun, one process per GPU); crafting uses one. */
  gpus?: number;
}

interface Stopwatch {
  timings: Record<string, number>;
  timed<T>(stage: string, run: () => Promise<T>): Promise<T>;
}

export async function runExperiment(options: RunExperimentOptions): Promise<ExperimentReport> {
  const { profile, terminal } = options;
  validateEps255(profile.signing.eps255);
  const out = resolve(options.out);
  const privateDir = join(out, "private");
  await mkdir(privateDir, { recursive: true, mode: 0o700 });
  await chmod(privateDir, 0o700);
  const clock = stopwatch(terminal);
  terminal.info(`experiment ${profile.name}: run folder ${out}, cache ${resolve(options.cache)}`);

  const data = await clock.timed("data", () =>
    prepareData({ profile, data: options.data, cache: options.cache }),
  );
  await mkdir(join(out, "manifests"), { recursive: true });
  const manifest = await clock.timed("manifest", () =>
    buildManifest({
      root: data.root,
      out: join(out, "manifests", "original"),
      terminal,
      signal: options.signal,
    }),
  );
  const worker = await options.startWorker();
  try {
    const context = { worker, terminal, signal: options.signal, gpus: options.gpus };
    const sets = datasetsOf(manifest, data.root);
    const surrogates = await clock.timed("surrogate", () =>
      trainSurrogates({ ...context, profile, manifest, sets, cache: options.cache }),
    );
    const signings: SignOutcome[] = [];
    for (let repeat = 0; repeat < profile.repeats; repeat++) {
      signings.push(
        await clock.timed(`signing (repeat ${repeat})`, () =>
          signRepeat({
            ...context,
            profile,
            data,
            manifest,
            surrogates,
            out,
            privateDir,
            repeat,
            link: options.link,
          }),
        ),
      );
    }
    const scenarios: ScenarioResult[] = [];
    for (const suspect of profile.suspects) {
      scenarios.push(
        await evaluateScenario({
          ...context,
          clock,
          profile,
          suspect,
          manifest,
          sets,
          signings,
          out,
          privateDir,
          cache: options.cache,
        }),
      );
    }
    const figure = join(out, "taggants.png");
    await clock.timed("figure", () =>
      drawFigure({
        manifest,
        data,
        signing: signings[0]!,
        channels: signings[0]!.channels,
        path: figure,
        profile,
      }),
    );
    const report = buildReport({
      profile,
      data,
      manifest,
      signings,
      scenarios,
      timings: clock.timings,
      out,
      surrogates,
    });
    await saveReport({ json: join(out, "report.json"), markdown: join(out, "report.md"), report });
    return report;
  } finally {
    await worker.close();
  }
}

function stopwatch(terminal: Terminal): Stopwatch {
  const timings: Record<string, number> = {};
  return {
    timings,
    async timed(stage, run) {
      const started = performance.now();
      try {
        return await run();
      } finally {
        timings[stage] = (performance.now() - started) / 1000;
        terminal.debug(`${stage}: ${timings[stage]!.toFixed(1)} s`);
      }
    },
  };
}

function datasetsOf(
  manifest: ManifestSummary,
  root: string,
): { train: WireDataset; test: WireDataset } {
  return {
    train: { manifest: manifest.summaryPath, root, split: "train" },
    test: { manifest: manifest.summaryPath, root, split: "test" },
  };
}

/** Cache folder of a model trained on the original data: a hash of everything that shapes it. */
function cachedModelPath(options: {
  cache: string;
  kind: string;
  manifest: ManifestSummary;
  spec: object;
  seed: number;
}): string {
  const hash = fingerprintOf({
    root_hash: options.manifest.root_hash,
    spec: options.spec,
    seed: options.seed,
  }).slice(0, 20);
  return join(resolve(options.cache), options.kind, hash);
}

async function trainSurrogates(options: {
  worker: Worker;
  terminal: Terminal;
  signal?: AbortSignal;
  profile: ExperimentProfile;
  manifest: ManifestSummary;
  sets: { train: WireDataset; test: WireDataset };
  cache: string;
  gpus?: number;
}): Promise<Array<{ checkpoint: string; valTop1: number; reused: boolean }>> {
  const { profile } = options;
  const { seeds, ...spec } = profile.surrogate;
  const trained = [];
  for (const seed of seeds) {
    trained.push(
      await trainAndEvaluate({
        ...options,
        label: `surrogate (seed ${seed})`,
        spec,
        seed,
        data: options.sets.train,
        test: options.sets.test,
        out: cachedModelPath({
          cache: options.cache,
          kind: "surrogates",
          manifest: options.manifest,
          spec,
          seed,
        }),
      }),
    );
  }
  return trained;
}

async function signRepeat(options: {
  worker: Worker;
  terminal: Terminal;
  signal?: AbortSignal;
  profile: ExperimentProfile;
  data: ExperimentData;
  manifest: ManifestSummary;
  surrogates: Array<{ checkpoint: string }>;
  out: string;
  privateDir: string;
  repeat: number;
  link?: boolean;
}): Promise<SignOutcome> {
  const { profile, repeat, privateDir } = options;
  const keyFile = join(privateDir, `repeat-${repeat}.key`);
  if (!(await pathExists(keyFile))) await createKeySecret(keyFile);
  const { budget, seed, ...craft } = profile.signing;
  const outcome = await signDataset(
    {
      data: options.data.root,
      manifest: options.manifest.summaryPath,
      keyFile,
      surrogates: options.surrogates.map((surrogate) => surrogate.checkpoint),
      out: join(options.out, `repeat-${repeat}`, "signed"),
      record: join(privateDir, `repeat-${repeat}.record.json`),
      keyCount: profile.keys.count,
      keyResolution: profile.keys.resolution,
      budget,
      craft: { ...craft, seed: seed + repeat },
      link: options.link,
    },
    { worker: options.worker, terminal: options.terminal, signal: options.signal },
  );
  options.terminal.info(
    `signing (repeat ${repeat}): ${outcome.signingImages} signing images (${((100 * outcome.signingImages) / outcome.trainCount).toFixed(2)} %), mean cosine ${outcome.cosineMean.toFixed(3)}, commitment ${outcome.commitment.slice(0, 16)}…`,
  );
  return outcome;
}

async function evaluateScenario(options: {
  worker: Worker;
  terminal: Terminal;
  signal?: AbortSignal;
  clock: Stopwatch;
  profile: ExperimentProfile;
  suspect: SuspectSpec;
  manifest: ManifestSummary;
  sets: { train: WireDataset; test: WireDataset };
  signings: SignOutcome[];
  out: string;
  privateDir: string;
  cache: string;
  gpus?: number;
}): Promise<ScenarioResult> {
  const { suspect, signings, clock } = options;
  const { scenario, data: trainedOn, seed, ...spec } = suspect;
  // A clean control does not depend on the keys: one model, cached, tested against every repeat.
  const cleanModel =
    trainedOn === "original"
      ? await clock.timed(`suspect ${scenario}`, () =>
          trainAndEvaluate({
            ...options,
            label: `suspect ${scenario}`,
            spec,
            seed,
            data: options.sets.train,
            test: options.sets.test,
            out: cachedModelPath({
              cache: options.cache,
              kind: "clean-models",
              manifest: options.manifest,
              spec,
              seed,
            }),
          }),
        )
      : undefined;
  const valTop1: number[] = [];
  const hits: number[] = [];
  const log10P: number[] = [];
  for (const [repeat, signing] of signings.entries()) {
    const model =
      cleanModel ??
      (await clock.timed(`suspect ${scenario} (repeat ${repeat})`, () =>
        trainAndEvaluate({
          ...options,
          label: `suspect ${scenario} (repeat ${repeat})`,
          spec,
          seed: seed + 100 * repeat,
          // The signed dataset as written on disk, read back through its own manifest.
          data: { manifest: signing.manifest, root: signing.out, split: "train" },
          test: options.sets.test,
          out: join(options.out, "models", `${scenario}-r${repeat}`),
        }),
      ));
    if (!cleanModel || repeat === 0) valTop1.push(model.valTop1);
    const detection = await clock.timed(`detection ${scenario} (repeat ${repeat})`, () =>
      detect({
        ...options,
        checkpoint: model.checkpoint,
        signing,
        repeat,
        folder: join(options.out, "detection", `${scenario}-r${repeat}`),
      }),
    );
    hits.push(detection.hits);
    log10P.push(detection.log10P);
  }
  const fisherLog10P = log10P.length === 1 ? log10P[0]! : fisherCombine(log10P).log10P;
  return {
    scenario,
    model: spec.model,
    recipe: spec.recipe,
    epochs: spec.epochs,
    trainedOn,
    valTop1,
    hits,
    log10P,
    fisherLog10P,
    detected: fisherLog10P <= Math.log10(REPORT_ALPHA),
  };
}

async function detect(options: {
  worker: Worker;
  terminal: Terminal;
  signal?: AbortSignal;
  profile: ExperimentProfile;
  checkpoint: string;
  signing: SignOutcome;
  repeat: number;
  privateDir: string;
  folder: string;
}): Promise<{ hits: number; log10P: number }> {
  const { report } = await runDetection({
    suspect: `checkpoint:${options.checkpoint}`,
    keyFile: join(options.privateDir, `repeat-${options.repeat}.key`),
    commitment: options.signing.commitmentFile,
    manifest: options.signing.manifest,
    out: options.folder,
    // The run folder is the experiment's own: a re-run replaces its reports.
    force: true,
    topK: options.profile.detection.topK,
    alpha: REPORT_ALPHA,
    confidence: DEFAULT_DETECT_SETTINGS.confidence,
    concurrency: DEFAULT_DETECT_SETTINGS.concurrency,
    policy: DEFAULT_DETECT_SETTINGS.policy,
    terminal: options.terminal,
    signal: options.signal ?? new AbortController().signal,
    startPredictor: async (checkpoint) => workerPredictor({ worker: options.worker, checkpoint }),
  });
  return { hits: report.result.keys.hits, log10P: report.result.keys.log10_p };
}

async function drawFigure(options: {
  manifest: ManifestSummary;
  data: ExperimentData;
  signing: SignOutcome;
  channels: number;
  path: string;
  profile: ExperimentProfile;
}): Promise<void> {
  const record = await loadSigningRecord(options.signing.record);
  const indices = record.signing_indices.flat();
  const pairs = await loadSigningPairs({
    manifest: options.manifest,
    originalRoot: options.data.root,
    signedRoot: options.signing.out,
    indices,
    channels: options.channels,
  });
  await saveTaggantFigure({
    path: options.path,
    shown: pairs.slice(0, FIGURE_IMAGES),
    psnr: pairs.map((pair) => computePsnr(pair.original, pair.signed)),
    title: `taggants, ε = ${options.profile.signing.eps255}/255 (${options.profile.name}, repeat 0)`,
  });
}

function buildReport(options: {
  profile: ExperimentProfile;
  data: ExperimentData;
  manifest: ManifestSummary;
  signings: SignOutcome[];
  scenarios: ScenarioResult[];
  timings: Record<string, number>;
  out: string;
  surrogates: Array<{ checkpoint: string; valTop1: number; reused: boolean }>;
}): ExperimentReport {
  const { profile, signings, scenarios, manifest } = options;
  const first = signings[0]!;
  const clean = scenarios.find((result) => result.scenario === "clean");
  const init = scenarios.find((result) => result.scenario === "init");
  const budget = profile.signing.budget;
  return {
    schema: EXPERIMENT_REPORT_SCHEMA,
    createdAt: new Date().toISOString(),
    createdBy: createdBy(),
    profile: profile.name,
    data: {
      description: options.data.description,
      root: options.data.root,
      trainCount: first.trainCount,
      classes: manifest.classes.length,
    },
    config: {
      repeats: profile.repeats,
      keys: profile.keys.count,
      topK: profile.detection.topK,
      classes: manifest.classes.length,
      eps255: profile.signing.eps255,
      budget: {
        requested:
          "fraction" in budget
            ? `${budget.fraction * 100} % of the training set`
            : `${budget.perKey} images per key`,
        imagesPerKey: first.imagesPerKey,
        signingImages: first.signingImages,
        fractionOfTrain: first.signingImages / first.trainCount,
      },
      keyResolution: first.keyResolution,
      steps: profile.signing.steps,
      restarts: profile.signing.restarts,
      augDraws: profile.signing.augDraws,
      surrogate: `${profile.surrogate.model} (${profile.surrogate.recipe}, ${profile.surrogate.epochs} epochs, ${profile.surrogate.seeds.length} seed(s); validation top-1 ${options.surrogates.map((s) => s.valTop1.toFixed(2)).join(", ")} %${options.surrogates.every((s) => s.reused) ? ", reused from the run cache" : ""})`,
    },
    signing: signings.map((signing, repeat) => ({
      repeat,
      commitment: signing.commitment,
      cosineMean: signing.cosineMean,
      psnrMean: signing.written.psnr_mean,
      linf255Max: signing.written.linf_255_max,
      jpegRetentionMean: signing.written.jpeg_retention_mean,
      jpegCosine: signing.written.jpeg_cosine
        ? {
            crafted: mean(signing.written.jpeg_cosine.crafted),
            written: mean(signing.written.jpeg_cosine.written),
          }
        : null,
    })),
    scenarios,
    control: clean
      ? {
          scenario: "clean",
          log10P: clean.fisherLog10P,
          pValue: 10 ** clean.fisherLog10P,
          flagged: clean.detected,
          statement: controlStatement(clean.fisherLog10P),
        }
      : null,
    accuracyGap:
      clean && init
        ? {
            signedTop1: mean(init.valTop1),
            cleanTop1: mean(clean.valTop1),
            differencePoints: mean(init.valTop1) - mean(clean.valTop1),
          }
        : null,
    timingsSeconds: options.timings,
    files: {
      report: join(options.out, "report.md"),
      figure: join(options.out, "taggants.png"),
      "signed dataset (repeat 0)": first.out,
      "commitment (repeat 0)": first.commitmentFile,
      "private record (repeat 0)": first.record,
    },
  };
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/**
 * Signing a dataset, end to end (METHOD.md, Signing, and issue 5): load the key secret, index
 * the original dataset, derive the keys, choose the signing set, craft the taggants on the
 * worker, write the signed dataset, its public manifest and commitment, and the private record.
 *
 * Outputs, for `--out <dir>`:
 *   <dir>/                      the signed dataset (public)
 *   <dir>.manifest.json, .entries.jsonl   its manifest (public)
 *   <dir>.commitment.json       the commitment to the keys and both root hashes (public)
 *   <record>                    the private signing record (mode 0600)
 *   <record>.work/              private working files: the crafting checkpoint and the crafted
 *                               taggants (mode 0700); made when crafting starts, kept while the
 *                               job has not finished (a re-run resumes from it), removed once
 *                               the signed dataset and the record are written
 * Without --manifest, the original's manifest is derived into the per-user cache
 * (src/manifest/derived.ts), never beside the dataset.
 * Every step is skipped when its result for the same inputs (the record's fingerprint) exists.
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import sharp from "sharp";
import type { Progress, Terminal } from "../cli/terminal.ts";
import { UsageError } from "../errors.ts";
import { saveCommitment } from "../keys/commitment.ts";
import { defaultKeyResolution, deriveKeys, type Key } from "../keys/derive.ts";
import { loadKeySecret } from "../keys/secret.ts";
import {
  buildManifest,
  loadManifest,
  loadOrBuildDerivedManifest,
  readEntries,
  type ManifestSummary,
} from "../manifest/index.ts";
import { createdBy } from "../manifest/version.ts";
import type { Worker } from "../worker/client.ts";
import { craftTaggants, measureCosine, type CraftParams, type CraftResult } from "./craft.ts";
import { decodeImage, inspectImage, signingIneligibility } from "./image-codec.ts";
import {
  fingerprintOf,
  loadSigningRecord,
  saveSigningRecord,
  type SigningRecord,
} from "./record.ts";
import {
  pathExists,
  signedOutputExists,
  writeSignedDataset,
  type DatasetSource,
  type SignedImageStats,
} from "./signed-dataset.ts";
import {
  chooseSigningSet,
  resolveImagesPerKey,
  validateBudget,
  validateEps255,
  validateSurrogateClasses,
  type SigningBudget,
} from "./signing-set.ts";
import { loadSurrogateInfo, type SurrogateInfo } from "./surrogate.ts";

export interface SignRequest {
  /** The original dataset's root folder. */
  data: string;
  /** An existing manifest of the original (built into the work folder when absent). */
  manifest?: string;
  keyFile: string;
  surrogates: string[];
  out: string;
  record: string;
  keyCount: number;
  /** Key image side; default `defaultKeyResolution` of the surrogate's input size. */
  keyResolution?: number;
  budget: SigningBudget;
  craft: Omit<CraftParams, "checkpointEvery"> & { checkpointEvery?: number };
  /** Hard-link unchanged files into the signed dataset. */
  link?: boolean;
}

export interface SignOutcome {
  /** True when everything already existed for these inputs. */
  skipped: boolean;
  out: string;
  manifest: string;
  commitmentFile: string;
  record: string;
  commitment: string;
  keyCount: number;
  keyResolution: number;
  /** Channels of the keys and taggants. */
  channels: number;
  imagesPerKey: number;
  signingImages: number;
  trainCount: number;
  cosineMean: number;
  written: SigningRecord["written"];
  /** Per signed image, as written (empty when skipped). */
  stats: SignedImageStats[];
  timingsSeconds: Record<string, number>;
}

/** Public output paths for a signed dataset folder. */
export function signedOutputPaths(out: string): { manifest: string; commitment: string } {
  const base = resolve(out);
  return { manifest: `${base}.manifest.json`, commitment: `${base}.commitment.json` };
}

export async function signDataset(
  request: SignRequest,
  context: { worker: Worker; terminal: Terminal; signal?: AbortSignal },
): Promise<SignOutcome> {
  const { terminal } = context;
  const timings: Record<string, number> = {};
  const timed = async <T>(stage: string, run: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await run();
    } finally {
      timings[stage] = (performance.now() - started) / 1000;
    }
  };
  validateSignRequest(request);
  const secret = await loadKeySecret(request.keyFile);
  const work = `${resolve(request.record)}.work`;

  const original = await timed("manifest", () =>
    originalManifest({ request, terminal, signal: context.signal }),
  );
  const surrogates = await Promise.all(request.surrogates.map(loadSurrogateInfo));
  const surrogate = validateSurrogates({ surrogates, classes: original.classes });
  const train = await readTrainSplit(original);
  const keyResolution =
    request.keyResolution ?? defaultKeyResolution(Math.min(...surrogate.inputSize));
  const keys = deriveKeys(secret, {
    count: request.keyCount,
    resolution: keyResolution,
    channels: surrogate.channels,
    classes: original.classes.length,
    datasetId: original.root_hash,
  });
  const imagesPerKey = resolveImagesPerKey({
    budget: request.budget,
    trainCount: train.labels.length,
    keyCount: keys.length,
  });
  const craftParams: CraftParams = { checkpointEvery: 25, ...request.craft };
  const signingIndices = await timed("signing set", () =>
    chooseSigningSet({
      secret,
      rootHash: original.root_hash,
      keyLabels: keys.map((key) => key.label),
      trainLabels: train.labels,
      perKey: imagesPerKey,
      isEligible: eligibility({
        root: request.data,
        original,
        train,
        channels: surrogate.channels,
      }),
    }),
  );
  const fingerprint = fingerprintOf({
    original_root: original.root_hash,
    keys: keys.map((key) => ({
      image: Buffer.from(key.image).toString("base64"),
      label: key.label,
    })),
    signing_indices: signingIndices,
    surrogates: surrogates.map((info) => info.sha256),
    craft: craftParams,
    out: resolve(request.out),
  });
  const previous = await previousOutcome({ request, fingerprint });
  if (previous) {
    terminal.info(
      `signing: ${request.out} is already signed with these inputs (record ${request.record}); nothing to do`,
    );
    return previous;
  }
  if ((await pathExists(request.out)) && !(await pathExists(datasetMarker(work, fingerprint)))) {
    // Checked before crafting, which may take hours; writeSignedDataset checks again.
    throw signedOutputExists(request.out);
  }

  // Only now is there work worth keeping for a resumed run; every usage error came before.
  await mkdir(work, { recursive: true, mode: 0o700 });
  const crafted = await timed("crafting", () =>
    craftTaggants({
      worker: context.worker,
      terminal,
      signal: context.signal,
      surrogates: surrogates.map((info) => info.path),
      dataset: { manifest: original.summaryPath, root: resolve(request.data), split: "train" },
      keys,
      keyResolution,
      channels: surrogate.channels,
      signingIndices,
      params: craftParams,
      statePath: join(work, `craft-state-${fingerprint.slice(0, 16)}`),
      cachePath: join(work, `crafted-${fingerprint.slice(0, 16)}`),
    }),
  );
  const stats = await timed("signed dataset", () =>
    writeDatasetOnce({
      request,
      original,
      train,
      signingIndices,
      crafted,
      work,
      fingerprint,
      terminal,
    }),
  );
  const published = await timed("publication", () =>
    publish({
      request,
      original,
      keys,
      keyResolution,
      surrogate,
      terminal,
      signal: context.signal,
    }),
  );

  const jpegCosine = await timed("JPEG survival", () =>
    measureJpegSurvival({
      worker: context.worker,
      signal: context.signal,
      request,
      train,
      signingIndices,
      crafted,
      stats,
      keys,
      keyResolution,
      surrogates: surrogates.map((info) => info.path),
    }),
  );
  const written = { ...summariseWritten(stats), jpeg_cosine: jpegCosine };
  const record: SigningRecord = {
    schema: "taggants.signing-record/1",
    created_at: new Date().toISOString(),
    fingerprint,
    key_file: resolve(request.keyFile),
    commitment: published.commitment,
    original: {
      root: resolve(request.data),
      manifest: original.summaryPath,
      root_hash: original.root_hash,
    },
    signed: {
      root: resolve(request.out),
      manifest: published.manifest,
      root_hash: published.signedRoot,
      commitment_file: published.commitmentFile,
    },
    params: {
      key_count: keys.length,
      key_resolution: keyResolution,
      channels: surrogate.channels,
      eps_255: craftParams.eps255,
      budget:
        "fraction" in request.budget
          ? { fraction: request.budget.fraction }
          : { per_key: request.budget.perKey },
      images_per_key: imagesPerKey,
      steps: craftParams.steps,
      restarts: craftParams.restarts,
      step_size: craftParams.stepSize,
      aug_draws: craftParams.augDraws,
      perceptual: craftParams.perceptual,
      perceptual_weight: craftParams.perceptualWeight,
      chunk_size: craftParams.chunkSize,
    },
    seeds: { craft: craftParams.seed },
    surrogates: surrogates.map((info) => ({ path: info.path, sha256: info.sha256 })),
    signing_indices: signingIndices,
    cosine: crafted.cosine,
    objective: crafted.objective,
    written,
    tool_versions: toolVersions(context.worker),
    timings_s: timings,
  };
  await saveSigningRecord(request.record, record);
  // Everything is written: the resumable state has served its purpose.
  await rm(work, { recursive: true, force: true });
  return outcomeOf({ record, request, skipped: false, stats, trainCount: train.labels.length });
}

/**
 * Every parameter that can be checked without reading the dataset, so that a bad command line
 * fails at once, before the indexing and the worker's start-up, and leaves nothing behind.
 */
export function validateSignRequest(request: SignRequest): void {
  validateEps255(request.craft.eps255);
  validateBudget(request.budget);
  const { craft } = request;
  const counts: Array<[string, number | undefined]> = [
    ["--keys", request.keyCount],
    ["--key-resolution", request.keyResolution],
    ["--steps", craft.steps],
    ["--restarts", craft.restarts],
    ["--aug-draws", craft.augDraws],
    ["--chunk-size", craft.chunkSize],
  ];
  for (const [flag, value] of counts) {
    if (value !== undefined && !(Number.isInteger(value) && value >= 1)) {
      throw new UsageError(
        "sign-option-invalid",
        `${flag} must be a whole number >= 1; received ${value}.`,
      );
    }
  }
  if (!(Number.isFinite(craft.stepSize) && craft.stepSize > 0)) {
    throw new UsageError(
      "sign-option-invalid",
      `--step-size is a fraction of ε and must be > 0 (the default is 0.1); received ${craft.stepSize}.`,
    );
  }
  if (!(Number.isFinite(craft.perceptualWeight) && craft.perceptualWeight >= 0)) {
    throw new UsageError(
      "sign-option-invalid",
      `--perceptual-weight must be >= 0; received ${craft.perceptualWeight}.`,
    );
  }
  if (request.surrogates.length === 0) {
    throw new UsageError(
      "surrogate-missing",
      "Signing needs at least one surrogate checkpoint (--surrogate <dir>[,<dir>…]).",
    );
  }
  const out = resolve(request.out);
  const data = resolve(request.data);
  if (out === data || out.startsWith(`${data}${sep}`) || data.startsWith(`${out}${sep}`)) {
    throw new UsageError(
      "sign-out-overlaps-data",
      `--out ${out} and --data ${data} overlap; the signed dataset needs a folder of its own, outside the original.`,
    );
  }
}

async function originalManifest(options: {
  request: SignRequest;
  terminal: Terminal;
  signal?: AbortSignal;
}): Promise<ManifestSummary> {
  const { request } = options;
  if (request.manifest) return loadManifest(request.manifest);
  const derived = await loadOrBuildDerivedManifest({
    root: request.data,
    terminal: options.terminal,
    signal: options.signal,
  });
  return derived.manifest;
}

function validateSurrogates(options: {
  surrogates: SurrogateInfo[];
  classes: string[];
}): SurrogateInfo {
  const [first] = options.surrogates;
  if (!first) {
    throw new UsageError(
      "surrogate-missing",
      "Signing needs at least one surrogate checkpoint (--surrogate <dir>[,<dir>…]).",
    );
  }
  for (const info of options.surrogates) {
    validateSurrogateClasses({
      surrogate: info.path,
      surrogateClasses: info.classes,
      datasetClasses: options.classes,
    });
    const sameInput =
      info.channels === first.channels && info.inputSize.join() === first.inputSize.join();
    if (!sameInput) {
      throw new UsageError(
        "surrogate-ensemble-mismatch",
        `The surrogates disagree on their input: ${first.path} takes ${first.channels}×${first.inputSize.join("×")}, ${info.path} takes ${info.channels}×${info.inputSize.join("×")}. An ensemble needs one input format.`,
      );
    }
  }
  return first;
}

interface TrainSplit {
  labels: number[];
  /** ImageFolder: POSIX paths by training index. */
  paths: string[];
}

async function readTrainSplit(manifest: ManifestSummary): Promise<TrainSplit> {
  const labels: number[] = [];
  const paths: string[] = [];
  for await (const entry of readEntries(manifest.summaryPath, { split: "train" })) {
    labels.push(entry.label);
    if (entry.path !== undefined) paths.push(entry.path);
  }
  if (labels.length === 0) {
    throw new UsageError(
      "dataset-no-train-split",
      `The dataset of ${manifest.summaryPath} has no training images to sign.`,
    );
  }
  return { labels, paths };
}

/** ImageFolder images must be writable in their own format; idx images always are. */
function eligibility(options: {
  root: string;
  original: ManifestSummary;
  train: TrainSplit;
  channels: number;
}) {
  const { root, original, train, channels } = options;
  if (original.layout === "idx") return undefined;
  return async (index: number): Promise<boolean> => {
    const bytes = new Uint8Array(await readFile(join(root, train.paths[index]!)));
    return signingIneligibility(await inspectImage(bytes), channels) === undefined;
  };
}

async function previousOutcome(options: {
  request: SignRequest;
  fingerprint: string;
}): Promise<SignOutcome | undefined> {
  const { request, fingerprint } = options;
  if (!(await pathExists(request.record))) return undefined;
  const record = await loadSigningRecord(request.record);
  if (record.fingerprint !== fingerprint) return undefined;
  const paths = signedOutputPaths(request.out);
  const complete =
    (await pathExists(request.out)) &&
    (await pathExists(paths.manifest)) &&
    (await pathExists(paths.commitment));
  if (!complete) return undefined;
  const manifest = await loadManifest(paths.manifest);
  if (manifest.root_hash !== record.signed.root_hash) return undefined;
  const trainCount = manifest.splits.train?.count ?? 0;
  return outcomeOf({ record, request, skipped: true, stats: [], trainCount });
}

/** Written once the signed dataset is complete, so a re-run after a later failure reuses it. */
function datasetMarker(work: string, fingerprint: string): string {
  return join(work, `dataset-${fingerprint.slice(0, 16)}.json`);
}

async function writeDatasetOnce(options: {
  request: SignRequest;
  original: ManifestSummary;
  train: TrainSplit;
  signingIndices: number[][];
  crafted: CraftResult;
  work: string;
  fingerprint: string;
  terminal: Terminal;
}): Promise<SignedImageStats[]> {
  const { request, crafted, work, fingerprint } = options;
  const marker = datasetMarker(work, fingerprint);
  if ((await pathExists(marker)) && (await pathExists(request.out))) {
    options.terminal.info(`signing: ${request.out} was already written for these inputs`);
    return JSON.parse(await readFile(marker, "utf8")) as SignedImageStats[];
  }
  const [, channels, height, width] = crafted.shape;
  const plane = channels * height * width;
  const signed = options.signingIndices.flat().map((index, row) => ({
    index,
    pixels: {
      data: crafted.signed.subarray(row * plane, (row + 1) * plane),
      channels,
      height,
      width,
    },
  }));
  // The file count is known once the writer has listed the dataset: start the bar then.
  let progress: Progress | undefined;
  let stats: SignedImageStats[];
  try {
    const result = await writeSignedDataset({
      source: datasetSource(request.data, options.original, options.train),
      signed,
      out: request.out,
      link: request.link,
      onFile: (done, total) => {
        progress ??= options.terminal.progress("writing the signed dataset", total);
        progress.tick(done);
      },
    });
    stats = result.stats;
  } catch (error) {
    progress?.fail();
    throw error;
  }
  progress?.stop();
  await writeFile(marker, JSON.stringify(stats) + "\n", { mode: 0o600 });
  return stats;
}

function datasetSource(root: string, manifest: ManifestSummary, train: TrainSplit): DatasetSource {
  if (manifest.layout === "idx") {
    const images = manifest.idx?.train?.images;
    if (!images)
      throw new UsageError(
        "manifest-invalid",
        `The idx manifest ${manifest.summaryPath} names no training images file.`,
      );
    return { layout: "idx", root: resolve(root), trainImagesFile: images };
  }
  return { layout: "imagefolder", root: resolve(root), trainPaths: train.paths };
}

async function publish(options: {
  request: SignRequest;
  original: ManifestSummary;
  keys: Key[];
  keyResolution: number;
  surrogate: SurrogateInfo;
  terminal: Terminal;
  signal?: AbortSignal;
}): Promise<{ manifest: string; commitmentFile: string; commitment: string; signedRoot: string }> {
  const { request, original, keys } = options;
  const paths = signedOutputPaths(request.out);
  const signedManifest = await buildManifest({
    root: request.out,
    out: paths.manifest,
    terminal: options.terminal,
    signal: options.signal,
  });
  const record = await saveCommitment(paths.commitment, {
    params: {
      count: keys.length,
      resolution: options.keyResolution,
      channels: options.surrogate.channels,
      classes: original.classes.length,
      datasetId: original.root_hash,
    },
    keys,
    originalRoot: original.root_hash,
    signedRoot: signedManifest.root_hash,
  });
  return {
    manifest: signedManifest.summaryPath,
    commitmentFile: paths.commitment,
    commitment: record.commitment,
    signedRoot: signedManifest.root_hash,
  };
}

/**
 * For a dataset with JPEG signing images: the per-key gradient cosine of the signing images as
 * written (decoded from the signed dataset on disk) beside the cosine as crafted.
 */
async function measureJpegSurvival(options: {
  worker: Worker;
  signal?: AbortSignal;
  request: SignRequest;
  train: TrainSplit;
  signingIndices: number[][];
  crafted: CraftResult;
  stats: SignedImageStats[];
  keys: Key[];
  keyResolution: number;
  surrogates: string[];
}): Promise<SigningRecord["written"]["jpeg_cosine"]> {
  const { crafted, request } = options;
  if (!options.stats.some((item) => item.container === "jpeg")) return null;
  const [, channels, height, width] = crafted.shape;
  const plane = channels * height * width;
  const images = new Uint8Array(crafted.signed.length);
  for (const [row, index] of options.signingIndices.flat().entries()) {
    const bytes = new Uint8Array(await readFile(join(request.out, options.train.paths[index]!)));
    images.set((await decodeImage(bytes, channels)).data, row * plane);
  }
  const written = await measureCosine({
    worker: options.worker,
    signal: options.signal,
    surrogates: options.surrogates,
    images,
    shape: crafted.shape,
    keys: options.keys,
    keyResolution: options.keyResolution,
    chunkSize: request.craft.chunkSize,
  });
  return { crafted: crafted.cosine, written };
}

function summariseWritten(
  stats: SignedImageStats[],
): Omit<SigningRecord["written"], "jpeg_cosine"> {
  const containers: Record<string, number> = {};
  for (const item of stats) containers[item.container] = (containers[item.container] ?? 0) + 1;
  const mean = (values: number[]): number | null =>
    values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
  return {
    containers,
    jpeg_retention_mean: mean(
      stats.flatMap((item) =>
        item.container === "jpeg" && item.retention !== null ? [item.retention] : [],
      ),
    ),
    psnr_mean: mean(stats.flatMap((item) => (item.psnr === null ? [] : [item.psnr]))),
    linf_255_max: Math.max(0, ...stats.map((item) => item.linf255)),
  };
}

function toolVersions(worker: Worker): Record<string, string> {
  return {
    taggants: createdBy(),
    node: process.versions.node,
    sharp: sharp.versions.sharp ?? "unknown",
    libvips: sharp.versions.vips,
    worker: worker.hello.worker_version,
    torch: worker.hello.torch_version,
    python: worker.hello.python_version,
    device: `${worker.hello.device} (${worker.hello.device_name})`,
  };
}

function outcomeOf(options: {
  record: SigningRecord;
  request: SignRequest;
  skipped: boolean;
  stats: SignedImageStats[];
  trainCount: number;
}): SignOutcome {
  const { record, request } = options;
  return {
    skipped: options.skipped,
    out: resolve(request.out),
    manifest: record.signed.manifest,
    commitmentFile: record.signed.commitment_file,
    record: resolve(request.record),
    commitment: record.commitment,
    keyCount: record.params.key_count,
    keyResolution: record.params.key_resolution,
    channels: record.params.channels,
    imagesPerKey: record.params.images_per_key,
    signingImages: record.params.key_count * record.params.images_per_key,
    trainCount: options.trainCount,
    cosineMean: record.cosine.reduce((a, b) => a + b, 0) / record.cosine.length,
    written: record.written,
    stats: options.stats,
    timingsSeconds: record.timings_s,
  };
}

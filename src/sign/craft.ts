/**
 * Crafting taggants on the worker (METHOD.md, Signing, step 4): one `craft` request carrying the
 * surrogates, the keys, the signing indices and the parameters, streamed as a progress bar. The
 * worker checkpoints its optimisation to `statePath` (a killed run resumes); the finished result
 * is cached in the private work folder, so re-running after a later failure skips crafting.
 */
import { readFile } from "node:fs/promises";
import type { Progress, Terminal } from "../cli/terminal.ts";
import { TaggantsError } from "../errors.ts";
import type { Key } from "../keys/derive.ts";
import { writeFileAtomic } from "../manifest/atomic.ts";
import type { Worker } from "../worker/client.ts";
import { Tensor } from "../worker/tensor.ts";

export interface CraftParams {
  eps255: number;
  steps: number;
  restarts: number;
  stepSize: number;
  augDraws: number;
  /** The perceptual penalty: SSIM or none (LPIPS is not offered; see the README, Limitations). */
  perceptual: "none" | "ssim";
  perceptualWeight: number;
  chunkSize: number;
  seed: number;
  checkpointEvery: number;
}

export interface CraftResult {
  /** Signed images, uint8 [K·n, C, H, W], row-major over the signing indices. */
  signed: Uint8Array;
  shape: [number, number, number, number];
  /** Final cosine per key, of the 8-bit signed images when the worker reports it. */
  cosine: number[];
  objective: number;
}

interface CraftReply {
  signed: Tensor;
  /** Unaugmented gradient cosine per key before rounding to 8 bits. */
  cosine: Tensor;
  /** The same after rounding: what the published pixels achieve. */
  cosine_quantised?: Tensor;
  objective: number;
}

export async function craftTaggants(options: {
  worker: Worker;
  terminal: Terminal;
  signal?: AbortSignal;
  surrogates: string[];
  dataset: { manifest: string; root: string; split: "train" };
  keys: readonly Key[];
  keyResolution: number;
  channels: number;
  signingIndices: number[][];
  params: CraftParams;
  statePath: string;
  cachePath: string;
}): Promise<CraftResult> {
  const cached = await loadCraftCache(options.cachePath);
  if (cached) {
    options.terminal.info("signing: taggants already crafted for these inputs, reusing them");
    return cached;
  }
  const { params, keys, signingIndices } = options;
  const total = params.restarts * params.steps;
  // Started by the worker's first event (it reports every step), whose step says how many
  // steps a resumed job had done before.
  let progress: Progress | undefined;
  let reply: CraftReply;
  try {
    reply = await options.worker.request<CraftReply>("craft", craftArgs(options), {
      signal: options.signal,
      onProgress: (event) => {
        const done = Math.min(total, stepsDone(event, params.steps));
        progress ??= options.terminal.progress("crafting taggants", total, {
          alreadyDone: Math.max(0, done - 1),
        });
        progress.tick(done, {
          "1-cos": Number(event.objective ?? NaN) / keys.length,
          cos: Number(event.cosine_mean ?? NaN),
          psnr: Number(event.psnr ?? NaN),
        });
      },
    });
  } catch (error) {
    progress?.fail();
    throw error;
  }
  progress?.stop();
  const result = parseReply(reply, {
    keys: keys.length,
    perKey: signingIndices[0]!.length,
    channels: options.channels,
  });
  await saveCraftCache(options.cachePath, result);
  return result;
}

/** Steps finished once an event's step is done (the worker counts restarts and steps from 1). */
function stepsDone(event: Record<string, unknown>, stepsPerRestart: number): number {
  const restart = Number(event.restart ?? 1);
  const step = Number(event.step ?? 0);
  return (restart - 1) * stepsPerRestart + step;
}

function craftArgs(options: Parameters<typeof craftTaggants>[0]): Record<string, unknown> {
  const { keys, signingIndices, params, keyResolution, channels } = options;
  const perKey = signingIndices[0]!.length;
  const indices = BigInt64Array.from(signingIndices.flat(), (index) => BigInt(index));
  return {
    surrogates: options.surrogates,
    data: options.dataset,
    signing_indices: Tensor.from("int64", indices, [keys.length, perKey]),
    ...keyTensors({ keys, channels, keyResolution }),
    eps_255: params.eps255,
    steps: params.steps,
    restarts: params.restarts,
    step_size: params.stepSize,
    aug_draws: params.augDraws,
    perceptual: params.perceptual,
    perceptual_weight: params.perceptualWeight,
    seed: params.seed,
    chunk_size: params.chunkSize,
    state_path: options.statePath,
    checkpoint_every: params.checkpointEvery,
  };
}

function parseReply(
  reply: CraftReply,
  expected: { keys: number; perKey: number; channels: number },
): CraftResult {
  const shape = reply.signed?.shape ?? [];
  const ok =
    reply.signed?.dtype === "uint8" &&
    shape.length === 4 &&
    shape[0] === expected.keys * expected.perKey &&
    shape[1] === expected.channels &&
    reply.cosine?.shape[0] === expected.keys;
  if (!ok) {
    throw new TaggantsError(
      "craft-reply-invalid",
      `The worker's craft reply has signed images of ${reply.signed?.dtype} [${shape.join(", ")}] and ${reply.cosine?.shape[0]} cosines; expected uint8 [${expected.keys * expected.perKey}, ${expected.channels}, H, W] and ${expected.keys}. The worker and the orchestrator disagree on the craft contract.`,
    );
  }
  return {
    signed: Uint8Array.from(reply.signed.data),
    shape: shape as [number, number, number, number],
    cosine: Array.from((reply.cosine_quantised ?? reply.cosine).values() as Float32Array, Number),
    objective: Number(reply.objective),
  };
}

/** Keys on the wire: images uint8 [K, C, r, r] and labels int64 [K]. */
function keyTensors(options: { keys: readonly Key[]; channels: number; keyResolution: number }): {
  keys: Tensor;
  key_labels: Tensor;
} {
  const { keys, channels, keyResolution } = options;
  const images = new Uint8Array(keys.length * channels * keyResolution * keyResolution);
  keys.forEach((key, i) => images.set(key.image, i * key.image.length));
  return {
    keys: new Tensor("uint8", [keys.length, channels, keyResolution, keyResolution], images),
    key_labels: Tensor.from(
      "int64",
      BigInt64Array.from(keys, (key) => BigInt(key.label)),
    ),
  };
}

/**
 * The per-key gradient cosine (unaugmented, on the surrogates) of signed images as they are
 * written: used to measure how much of the taggants survives JPEG re-encoding.
 */
export async function measureCosine(options: {
  worker: Worker;
  signal?: AbortSignal;
  surrogates: string[];
  /** uint8 [K·n, C, H, W], row-major over the signing indices. */
  images: Uint8Array;
  shape: [number, number, number, number];
  keys: readonly Key[];
  keyResolution: number;
  chunkSize: number;
}): Promise<number[]> {
  const { keys, shape } = options;
  const reply = await options.worker.request<{ cosine: Tensor }>(
    "craft.cosine",
    {
      surrogates: options.surrogates,
      images: new Tensor("uint8", shape, options.images),
      ...keyTensors({ keys, channels: shape[1], keyResolution: options.keyResolution }),
      chunk_size: options.chunkSize,
    },
    { signal: options.signal },
  );
  if (reply.cosine?.shape[0] !== keys.length) {
    throw new TaggantsError(
      "craft-reply-invalid",
      `The worker's craft.cosine reply has ${reply.cosine?.shape[0]} cosines; expected ${keys.length}, one per key.`,
    );
  }
  return Array.from(reply.cosine.values() as Float32Array, Number);
}

/** The cache is a JSON header file plus the raw signed bytes, both in the private work folder. */
async function saveCraftCache(path: string, result: CraftResult): Promise<void> {
  await writeFileAtomic(`${path}.bin`, result.signed, { mode: 0o600 });
  const header = { shape: result.shape, cosine: result.cosine, objective: result.objective };
  await writeFileAtomic(`${path}.json`, JSON.stringify(header) + "\n", { mode: 0o600 });
}

async function loadCraftCache(path: string): Promise<CraftResult | undefined> {
  let header: { shape: [number, number, number, number]; cosine: number[]; objective: number };
  let signed: Uint8Array;
  try {
    header = JSON.parse(await readFile(`${path}.json`, "utf8"));
    signed = new Uint8Array(await readFile(`${path}.bin`));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  if (signed.length !== header.shape.reduce((a, b) => a * b, 1)) return undefined;
  return { signed, ...header };
}

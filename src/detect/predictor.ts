/**
 * Top-k prediction on a checkpoint written by this tool, through the worker's `predict` command
 * (docs/ARCHITECTURE.md, worker commands). Shared by the local-checkpoint suspect and
 * `taggants serve`. Images are uint8 [N, C, H, W]; the worker resizes them (nearest) to the
 * model's input size.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { UsageError } from "../errors.ts";
import { parseJsonFile } from "../invalid-file.ts";
import type { Terminal } from "../cli/terminal.ts";
import { startWorker, type Worker } from "../worker/client.ts";
import { Tensor } from "../worker/tensor.ts";

export interface ImageBatch {
  count: number;
  channels: number;
  height: number;
  width: number;
  /** count × channels × height × width bytes, NCHW. */
  data: Uint8Array;
}

export interface Predictor {
  /** Class indices, best first, `topK` per image. */
  predict(images: ImageBatch, topK: number, signal?: AbortSignal): Promise<number[][]>;
  close(): Promise<void>;
}

/** What `checkpoint.json` says that serving and detection need. */
export interface CheckpointInfo {
  path: string;
  /** Class names; index i is class i of the model's output. */
  classes: string[];
  channels: number | undefined;
  /** [height, width] of the model's input, when recorded. */
  inputSize: [number, number] | undefined;
  model: string | undefined;
}

const CheckpointRecord = z.looseObject({
  classes: z.array(z.string()).min(2),
  channels: z.number().int().positive().optional(),
  input_size: z.array(z.number().int().positive()).min(2).max(3).optional(),
  model: z.looseObject({ name: z.string() }).optional(),
});

export async function loadCheckpointInfo(path: string): Promise<CheckpointInfo> {
  const file = join(path, "checkpoint.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new UsageError(
      "checkpoint-invalid",
      `${path} is not a taggants checkpoint: cannot read ${file} (${(error as Error).message}). Give a folder written by \`taggants train --out\`.`,
      { cause: error },
    );
  }
  const record = parseJsonFile(text, CheckpointRecord, {
    code: "checkpoint-invalid",
    file,
    expected: "a taggants checkpoint record (checkpoint.json with the model's classes)",
  });
  const size = record.input_size?.slice(-2) as [number, number] | undefined;
  return {
    path,
    classes: record.classes,
    channels: record.channels,
    inputSize: size,
    model: record.model?.name,
  };
}

/** Start a worker and predict with `checkpoint` on it; closing the predictor stops the worker. */
export async function startCheckpointPredictor(options: {
  checkpoint: string;
  terminal: Terminal;
  signal: AbortSignal;
}): Promise<Predictor> {
  const worker = await startWorker({ terminal: options.terminal, signal: options.signal });
  return {
    ...workerPredictor({ worker, checkpoint: options.checkpoint, signal: options.signal }),
    close: () => worker.close(),
  };
}

/**
 * Predict with `checkpoint` on a worker the caller owns (closing the predictor leaves the worker
 * running): the experiment detects on the worker that trained the suspect.
 */
export function workerPredictor(options: {
  worker: Worker;
  checkpoint: string;
  signal?: AbortSignal;
}): Predictor {
  return {
    async predict(images, topK, signal) {
      const tensor = new Tensor(
        "uint8",
        [images.count, images.channels, images.height, images.width],
        images.data,
      );
      const result = await options.worker.request<{ top_k: Tensor }>(
        "predict",
        { checkpoint: options.checkpoint, images: tensor, top_k: topK },
        { signal: signal ?? options.signal },
      );
      return rowsOf(result.top_k, images.count, topK);
    },
    close: async () => {},
  };
}

function rowsOf(tensor: Tensor, count: number, topK: number): number[][] {
  const values = Array.from(tensor.values() as BigInt64Array, Number);
  if (values.length !== count * topK) {
    throw new UsageError(
      "predict-shape",
      `The worker's predict returned ${values.length} indices; expected ${count}×${topK}.`,
    );
  }
  return Array.from({ length: count }, (_, i) => values.slice(i * topK, (i + 1) * topK));
}

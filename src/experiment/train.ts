/**
 * Training and evaluating the experiment's models on the worker (issue 6, steps 3 and 5): the
 * surrogate on the original data and the suspects on the signed dataset read from disk (or the
 * original, for the clean control). The worker resumes a checkpoint folder that exists and
 * returns at once when it is complete, which is what the run cache relies on.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Terminal } from "../cli/terminal.ts";
import type { Worker } from "../worker/client.ts";
import type { TrainSpec } from "./profiles.ts";

/** A dataset as the worker names it (docs/ARCHITECTURE.md, "Worker commands"). */
export interface WireDataset {
  manifest: string;
  root: string;
  split: "train" | "test";
}

export interface TrainedModel {
  checkpoint: string;
  /** True when a complete checkpoint for the same plan was already there. */
  reused: boolean;
  /** Validation (test split) top-1 accuracy, %. */
  valTop1: number;
}

export async function trainAndEvaluate(options: {
  worker: Worker;
  terminal: Terminal;
  signal?: AbortSignal;
  label: string;
  spec: TrainSpec;
  seed: number;
  data: WireDataset;
  test: WireDataset;
  out: string;
  /** Training processes (GPUs) on this machine; above 1 the worker trains through torchrun. */
  gpus?: number;
}): Promise<TrainedModel> {
  const { worker, terminal, spec } = options;
  const reused = await isCompleteCheckpoint(options.out);
  if (reused)
    terminal.info(
      `${options.label}: reusing the checkpoint trained before with the same configuration (${options.out})`,
    );
  else await train(options);
  const evaluation = await worker.request<{ top1: number }>(
    "eval",
    { checkpoint: options.out, data: options.test },
    { signal: options.signal },
  );
  terminal.info(
    `${options.label}: ${spec.model} ${spec.recipe}, validation top-1 ${Number(evaluation.top1).toFixed(2)} %`,
  );
  return { checkpoint: options.out, reused, valTop1: Number(evaluation.top1) };
}

async function train(options: Parameters<typeof trainAndEvaluate>[0]): Promise<void> {
  const { spec } = options;
  const progress = options.terminal.progress(`training ${options.label}`, spec.epochs);
  try {
    await options.worker.request(
      "train",
      {
        data: options.data,
        model: spec.model,
        recipe: spec.recipe,
        epochs: spec.epochs,
        out: options.out,
        seed: options.seed,
        data_seed: options.seed + 1000,
        ...(spec.overrides ? { overrides: spec.overrides } : {}),
        ...(options.gpus && options.gpus > 1 ? { nproc_per_node: options.gpus } : {}),
      },
      {
        signal: options.signal,
        onProgress: (event) => {
          const epoch = Number(event.epoch ?? 0);
          const step = Number(event.step ?? 0);
          const steps = Number(event.steps ?? 1);
          progress.tick(Math.max(0, epoch - 1 + step / steps), {
            loss: Number(event.loss ?? NaN),
            "img/s": Number(event.images_per_s ?? NaN),
          });
        },
      },
    );
  } finally {
    progress.stop();
  }
}

async function isCompleteCheckpoint(folder: string): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(join(folder, "checkpoint.json"), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
  return (JSON.parse(text) as { complete?: boolean }).complete === true;
}

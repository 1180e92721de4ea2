/**
 * Training and evaluating the experiment's models (issue 6, steps 3 and 5): the surrogate on the
 * original data and the suspects on the signed dataset read from disk (or the original, for the
 * clean control), through src/train. The worker resumes a checkpoint folder that exists and
 * returns at once when it is complete, which is what the run cache relies on; a complete
 * checkpoint is announced as reused.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Terminal } from "../cli/terminal.ts";
import type { WireDataset } from "../train/dataset.ts";
import { evaluateCheckpoint, trainModel } from "../train/train.ts";
import type { Worker } from "../worker/client.ts";
import type { TrainSpec } from "./profiles.ts";

export type { WireDataset };

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
  if (reused) {
    terminal.info(
      `${options.label}: reusing the checkpoint trained before with the same configuration (${options.out})`,
    );
  } else {
    terminal.info(
      `${options.label}: training ${spec.model} (${spec.recipe}), ${spec.epochs} epochs`,
    );
    await trainModel({
      worker,
      terminal,
      signal: options.signal,
      data: options.data,
      model: spec.model,
      recipe: spec.recipe,
      epochs: spec.epochs,
      out: options.out,
      seed: options.seed,
      dataSeed: options.seed + 1000,
      overrides: spec.overrides,
      nprocPerNode: options.gpus,
    });
  }
  const evaluation = await evaluateCheckpoint({
    worker,
    signal: options.signal,
    checkpoint: options.out,
    data: options.test,
  });
  terminal.info(`${options.label}: validation top-1 ${evaluation.top1.toFixed(2)} %`);
  return { checkpoint: options.out, reused, valTop1: evaluation.top1 };
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

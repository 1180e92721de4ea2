/**
 * Training and evaluating a model on the worker: Alice's surrogate model, or a simulated
 * suspect model trained on a signed dataset. The worker does the work (python/taggants_worker/
 * train.py); this module sends the request, turns progress events into a progress bar and
 * validates the reply. Re-running on the same checkpoint folder resumes from its last epoch,
 * or returns at once when the run is complete.
 */
import { z } from "zod";
import type { Progress, Terminal } from "../cli/terminal.ts";
import { TaggantsError } from "../errors.ts";
import type { Worker } from "../worker/client.ts";
import { asInputError } from "../worker/errors.ts";
import type { WireDataset } from "./dataset.ts";

export interface TrainOptions {
  worker: Worker;
  terminal: Terminal;
  signal?: AbortSignal;
  data: WireDataset;
  /** Evaluated (top-1/top-5) after the last epoch. */
  testData?: WireDataset;
  /** A preset (cnn, vit-small-28, deit3-small, resnet50, convnext-tiny) or a timm model name. */
  model: string;
  recipe: "simple" | "deit3";
  epochs: number;
  /** The checkpoint folder. */
  out: string;
  /** Model initialisation (and augmentation) seed. */
  seed: number;
  /** Data order seed, separate from the initialisation seed. */
  dataSeed: number;
  /** Recipe settings over the recipe's defaults (snake_case names, as in checkpoint.json). */
  overrides?: Record<string, unknown>;
  /** Data-parallel processes on this machine (torchrun); 1 trains in the worker itself. */
  nprocPerNode?: number;
}

const Metrics = z.looseObject({
  train_loss: z.number(),
  top1: z.number().optional(),
  top5: z.number().optional(),
  loss: z.number().optional(),
  count: z.number().optional(),
});
export type TrainMetrics = z.infer<typeof Metrics>;

const TrainReply = z.object({
  checkpoint: z.string(),
  metrics: Metrics,
  resumed: z.boolean(),
});
export type TrainResult = z.infer<typeof TrainReply>;

const EvalReply = z.object({
  top1: z.number(),
  top5: z.number(),
  loss: z.number(),
  count: z.number(),
  /** The epoch the checkpoint holds, of the `epochs` its run planned. */
  epoch: z.number(),
  epochs: z.number(),
});
export type EvalResult = z.infer<typeof EvalReply>;

export async function trainModel(options: TrainOptions): Promise<TrainResult> {
  const { terminal, epochs } = options;
  const bar = trainingProgress(terminal, `training ${options.model} (${options.recipe})`, epochs);
  try {
    const reply = await options.worker.request(
      "train",
      {
        data: options.data,
        ...(options.testData ? { test_data: options.testData } : {}),
        model: options.model,
        recipe: options.recipe,
        epochs,
        out: options.out,
        seed: options.seed,
        data_seed: options.dataSeed,
        ...(options.overrides ? { overrides: options.overrides } : {}),
        ...(options.nprocPerNode && options.nprocPerNode > 1
          ? { nproc_per_node: options.nprocPerNode }
          : {}),
      },
      { signal: options.signal, onProgress: (event) => bar.onEvent(event) },
    );
    const result = parseReply(TrainReply, reply, "train");
    bar.stop(describeMetrics(result.metrics));
    return result;
  } catch (error) {
    bar.fail();
    throw asInputError(error);
  }
}

export async function evaluateCheckpoint(options: {
  worker: Worker;
  signal?: AbortSignal;
  checkpoint: string;
  data: WireDataset;
}): Promise<EvalResult> {
  const reply = await options.worker
    .request(
      "eval",
      { checkpoint: options.checkpoint, data: options.data },
      { signal: options.signal },
    )
    .catch((error: unknown) => {
      throw asInputError(error);
    });
  return parseReply(EvalReply, reply, "eval");
}

/**
 * The training bar, in epochs, started by the worker's first progress event: the worker reports
 * the first step of every epoch at once, so that event's epoch says where the run starts. A run
 * resumed from a checkpoint after epoch e starts in epoch e + 1 and says "resuming: e of … done".
 * A finished checkpoint sends no event and shows no bar.
 */
export function trainingProgress(
  terminal: Terminal,
  label: string,
  epochs: number,
): { onEvent(event: Record<string, unknown>): void; stop(summary: string): void; fail(): void } {
  let bar: Progress | undefined;
  return {
    onEvent(event) {
      const epoch = Number(event.epoch);
      if (!bar && Number.isInteger(epoch) && epoch >= 1)
        bar = terminal.progress(label, epochs, { alreadyDone: epoch - 1 });
      if (bar) tickTraining(bar, event);
    },
    stop: (summary) => bar?.stop(summary),
    fail: () => bar?.fail(),
  };
}

/** Progress event {epoch, epochs, step, steps, loss, lr, images_per_s} → the bar, in epochs. */
export function tickTraining(
  bar: { tick(done: number, fields?: Record<string, string | number>): void },
  event: Record<string, unknown>,
): void {
  const epoch = Number(event.epoch);
  const step = Number(event.step);
  const steps = Number(event.steps);
  if (!Number.isFinite(epoch) || !Number.isFinite(step) || !(steps > 0)) return;
  bar.tick(Math.round((epoch - 1 + step / steps) * 100) / 100, {
    epoch,
    loss: Number(event.loss),
    lr: Number(event.lr),
    "img/s": Math.round(Number(event.images_per_s)),
  });
}

export function describeMetrics(metrics: TrainMetrics | EvalResult): string {
  const parts: string[] = [];
  if (metrics.top1 !== undefined) parts.push(`top-1 ${metrics.top1.toFixed(2)} %`);
  if (metrics.top5 !== undefined) parts.push(`top-5 ${metrics.top5.toFixed(2)} %`);
  if ("train_loss" in metrics) parts.push(`train loss ${metrics.train_loss.toFixed(4)}`);
  return parts.join(", ");
}

function parseReply<T>(schema: z.ZodType<T>, reply: unknown, command: string): T {
  const parsed = schema.safeParse(reply);
  if (!parsed.success) {
    throw new TaggantsError(
      "worker-reply-invalid",
      `The worker's "${command}" reply is not what the orchestrator expects: ${parsed.error.message}. This is a bug; please report it with the worker's version.`,
      { cause: parsed.error },
    );
  }
  return parsed.data;
}

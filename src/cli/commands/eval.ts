/**
 * `taggants eval`: top-1/top-5 accuracy of a checkpoint on a dataset's test split (or train).
 */
import { Option, type Command } from "@commander-js/extra-typings";
import { resolve } from "node:path";
import { resolveDataset, wireDataset } from "../../train/dataset.ts";
import { describeMetrics, evaluateCheckpoint, type EvalResult } from "../../train/train.ts";
import { startWorker } from "../../worker/client.ts";
import { contextFor } from "../context.ts";
import { deviceOption } from "../options.ts";

export function register(program: Command): void {
  program
    .command("eval")
    .description("Report a checkpoint's top-1/top-5 accuracy on a dataset split.")
    .requiredOption("--checkpoint <dir>", "the checkpoint folder (taggants train --out)")
    .requiredOption("--data <dataset>", "a dataset folder (ImageFolder or idx) or its manifest")
    .option("--root <folder>", "the dataset folder, when --data is a manifest stored elsewhere")
    .option("--overlay <folder>", "replaced files laid over the dataset (a signed variant)")
    .addOption(
      new Option("--split <split>", "which split")
        .choices(["test", "train"] as const)
        .default("test" as const),
    )
    .addOption(deviceOption())
    .action(async (options, command) => {
      const { terminal, signal } = contextFor(command);
      const dataset = await resolveDataset({
        data: options.data,
        root: options.root,
        terminal,
        signal,
      });
      const data = wireDataset(dataset, options.split, options.overlay);
      const worker = await startWorker({ terminal, signal, device: options.device });
      let result: EvalResult;
      try {
        result = await evaluateCheckpoint({
          worker,
          signal,
          checkpoint: resolve(options.checkpoint),
          data,
        });
      } finally {
        await worker.close();
      }
      if (result.epoch < result.epochs) {
        terminal.warn(
          `${options.checkpoint} holds epoch ${result.epoch} of ${result.epochs}: its training run is unfinished (re-run the same taggants train command to finish it).`,
        );
      }
      terminal.result(
        result,
        () => `${options.split} split, ${result.count} images: ${describeMetrics(result)}`,
      );
    });
}

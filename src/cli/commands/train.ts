/**
 * `taggants train`: train a model on a dataset (Alice's surrogate, or a simulated suspect on a
 * signed dataset) into a checkpoint folder; re-running on the same folder resumes it.
 */
import { Option, type Command } from "@commander-js/extra-typings";
import { resolve } from "node:path";
import { UsageError } from "../../errors.ts";
import { resolveDataset, wireDataset } from "../../train/dataset.ts";
import { describeMetrics, trainModel, type TrainResult } from "../../train/train.ts";
import { startWorker } from "../../worker/client.ts";
import { contextFor } from "../context.ts";
import { deviceOption, integerAtLeast } from "../options.ts";

export function register(program: Command): void {
  program
    .command("train")
    .description(
      "Train a model on a dataset into a checkpoint folder (resumes when re-run on the same --out).",
    )
    .requiredOption("--data <dataset>", "a dataset folder (ImageFolder or idx) or its manifest")
    .option("--root <folder>", "the dataset folder, when --data is a manifest stored elsewhere")
    .option("--overlay <folder>", "replaced files laid over the dataset (a signed variant)")
    .option(
      "--model <name>",
      "a preset (cnn, vit-small-28, deit3-small, resnet50, convnext-tiny) or a timm model name",
      "cnn",
    )
    .addOption(
      new Option("--recipe <name>", "training recipe")
        .choices(["simple", "deit3"] as const)
        .default("simple" as const),
    )
    .requiredOption("--epochs <n>", "epochs to train", integerAtLeast(1))
    .requiredOption("--out <dir>", "the checkpoint folder")
    .option("--seed <n>", "model initialisation seed", integerAtLeast(0), 0)
    .option("--data-seed <n>", "data order seed (separate from --seed)", integerAtLeast(0), 0)
    .option(
      "--set <key=value...>",
      "recipe setting over its default, e.g. --set lr=0.1 batch_size=256",
    )
    .option("--no-eval", "skip evaluating on the test split after training")
    .option(
      "--nproc-per-node <n>",
      "data-parallel processes (torchrun) on this machine",
      integerAtLeast(1),
      1,
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
      const testData =
        options.eval && dataset.manifest.splits.test
          ? wireDataset(dataset, "test", options.overlay)
          : undefined;
      if (options.eval && !testData)
        terminal.warn(`${dataset.root} has no test split: no accuracy is reported`);
      const overrides = parseSettings(options.set ?? []);
      const worker = await startWorker({ terminal, signal, device: options.device });
      let result: TrainResult;
      try {
        result = await trainModel({
          worker,
          terminal,
          signal,
          data: wireDataset(dataset, "train", options.overlay),
          testData,
          model: options.model,
          recipe: options.recipe,
          epochs: options.epochs,
          out: resolve(options.out),
          seed: options.seed,
          dataSeed: options.dataSeed,
          overrides,
          nprocPerNode: options.nprocPerNode,
        });
      } finally {
        await worker.close();
      }
      terminal.result(result, () =>
        [
          `${result.resumed ? "Finished (resumed) " : "Trained "}${options.model} with the ${options.recipe} recipe: ${result.checkpoint}`,
          describeMetrics(result.metrics),
        ].join("\n"),
      );
    });
}

/** `key=value` pairs → settings; values are JSON when they parse (numbers, booleans, lists). */
export function parseSettings(pairs: string[]): Record<string, unknown> | undefined {
  if (pairs.length === 0) return undefined;
  const settings: Record<string, unknown> = {};
  for (const pair of pairs) {
    const at = pair.indexOf("=");
    if (at <= 0) {
      throw new UsageError(
        "bad-setting",
        `--set expects key=value (e.g. --set lr=0.1 batch_size=64); received "${pair}".`,
      );
    }
    const text = pair.slice(at + 1);
    settings[pair.slice(0, at)] = parseValue(text);
  }
  return settings;
}

function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text; // a bare word such as adamw
  }
}

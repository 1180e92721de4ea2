/**
 * `taggants sign`: craft taggants for a dataset and publish the signed dataset, its manifest and
 * the commitment, keeping the private record apart (issue 5).
 */
import { Option, type Command } from "@commander-js/extra-typings";
import { UsageError } from "../../errors.ts";
import {
  signDataset,
  validateSignRequest,
  type SignOutcome,
  type SignRequest,
} from "../../sign/sign.ts";
import { DEFAULT_BUDGET_FRACTION, type SigningBudget } from "../../sign/signing-set.ts";
import { startWorker } from "../../worker/client.ts";
import { contextFor } from "../context.ts";
import { deviceOption, finiteNumber, integerAtLeast } from "../options.ts";

export function register(program: Command): void {
  program
    .command("sign")
    .description(
      "Craft taggants on a fraction of a dataset and write the signed dataset, its manifest, the commitment and the private record.",
    )
    .requiredOption("--data <dir>", "the original dataset (ImageFolder tree or idx files)")
    .requiredOption("--key-file <path>", "the key secret file (taggants keys init)")
    .requiredOption(
      "--surrogate <dirs>",
      "surrogate checkpoint folder(s), comma-separated for an ensemble",
    )
    .requiredOption(
      "--out <dir>",
      "the signed dataset folder to create; <dir>.manifest.json and <dir>.commitment.json are written beside it",
    )
    .requiredOption(
      "--record <path>",
      "the private signing record to write (mode 0600; keep it secret)",
    )
    .option("--manifest <path>", "an existing manifest of the original dataset (built when absent)")
    .option(
      "--eps <1/255>",
      "perturbation bound ε in units of 1/255, in (0, 255]",
      finiteNumber,
      16,
    )
    .option(
      "--budget <fraction>",
      `signing budget as a fraction of the training split (default ${DEFAULT_BUDGET_FRACTION})`,
      finiteNumber,
    )
    .option("--per-key <n>", "signing images per key (instead of --budget)", integerAtLeast(1))
    .option("--keys <K>", "number of keys", integerAtLeast(1), 10)
    .option(
      "--key-resolution <px>",
      "key image side before upsampling (default: a quarter of the input size, at most 64)",
      integerAtLeast(1),
    )
    .option("--steps <n>", "optimisation steps per restart", integerAtLeast(1), 250)
    .option("--restarts <R>", "random restarts; the best per key is kept", integerAtLeast(1), 1)
    .option("--step-size <fraction>", "signed-Adam step as a fraction of ε", finiteNumber, 0.1)
    .option("--aug-draws <n>", "differentiable augmentation draws per step", integerAtLeast(1), 2)
    .addOption(
      new Option("--perceptual <kind>", "perceptual penalty")
        .choices(["none", "ssim"] as const)
        .default("none" as const),
    )
    .option("--perceptual-weight <λ>", "weight of the perceptual penalty", finiteNumber, 0.01)
    .option(
      "--chunk-size <n>",
      "signing images per gradient chunk (bounds accelerator memory)",
      integerAtLeast(1),
      64,
    )
    .option(
      "--seed <n>",
      "crafting seed (initialisation and augmentation draws)",
      integerAtLeast(0),
      0,
    )
    .option("--link", "hard-link unchanged files instead of copying them")
    .addOption(deviceOption())
    .action(async (options, command) => {
      const { terminal, signal } = contextFor(command);
      const request: SignRequest = {
        data: options.data,
        manifest: options.manifest,
        keyFile: options.keyFile,
        surrogates: options.surrogate.split(",").filter((path) => path.length > 0),
        out: options.out,
        record: options.record,
        keyCount: options.keys,
        keyResolution: options.keyResolution,
        budget: resolveBudget(options),
        craft: {
          eps255: options.eps,
          steps: options.steps,
          restarts: options.restarts,
          stepSize: options.stepSize,
          augDraws: options.augDraws,
          perceptual: options.perceptual,
          perceptualWeight: options.perceptual === "none" ? 0 : options.perceptualWeight,
          chunkSize: options.chunkSize,
          seed: options.seed,
        },
        link: options.link,
      };
      // Before the worker's start-up (seconds) and the indexing (minutes on a large dataset).
      validateSignRequest(request);
      const worker = await startWorker({ terminal, signal, device: options.device });
      let outcome: SignOutcome;
      try {
        outcome = await signDataset(request, { worker, terminal, signal });
      } finally {
        await worker.close();
      }
      terminal.result(publicView(outcome), () => renderOutcome(outcome));
    });
}

function resolveBudget(options: { budget?: number; perKey?: number }): SigningBudget {
  if (options.budget !== undefined && options.perKey !== undefined) {
    throw new UsageError(
      "budget-invalid",
      "Give either --budget (a fraction) or --per-key (a count), not both.",
    );
  }
  if (options.perKey !== undefined) return { perKey: options.perKey };
  return { fraction: options.budget ?? DEFAULT_BUDGET_FRACTION };
}

/** What is printed: the outcome without per-image statistics (they name signing indices). */
function publicView(outcome: SignOutcome): Omit<SignOutcome, "stats"> {
  return Object.fromEntries(Object.entries(outcome).filter(([name]) => name !== "stats")) as Omit<
    SignOutcome,
    "stats"
  >;
}

function renderOutcome(outcome: SignOutcome): string {
  const written = outcome.written;
  const lines = [
    outcome.skipped ? "Already signed with these inputs; nothing was redone." : "Signed.",
    `signed dataset: ${outcome.out}`,
    `manifest:       ${outcome.manifest}`,
    `commitment:     ${outcome.commitmentFile} (${outcome.commitment})`,
    `private record: ${outcome.record} — keep it secret, do not publish it`,
    `signing set:    ${outcome.keyCount} keys × ${outcome.imagesPerKey} images = ${outcome.signingImages} of ${outcome.trainCount} (${((100 * outcome.signingImages) / outcome.trainCount).toFixed(3)} %)`,
    `mean cosine:    ${outcome.cosineMean.toFixed(3)} (key gradient vs signing images' gradient)`,
    `written:        ${Object.entries(written.containers)
      .map(([kind, count]) => `${count} ${kind}`)
      .join(
        ", ",
      )}; mean PSNR ${written.psnr_mean?.toFixed(1) ?? "–"} dB; max |Δ| ${written.linf_255_max}/255`,
  ];
  if (written.containers.jpeg) {
    lines.push(
      `JPEG re-encoding kept ${((written.jpeg_retention_mean ?? 0) * 100).toFixed(1)} % of the taggants (mean pixel-space cosine, written vs crafted)`,
    );
  }
  if (written.jpeg_cosine) {
    lines.push(
      `JPEG re-encoding: mean gradient cosine ${mean(written.jpeg_cosine.crafted).toFixed(3)} as crafted → ${mean(written.jpeg_cosine.written).toFixed(3)} as written`,
    );
  }
  return lines.join("\n");
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

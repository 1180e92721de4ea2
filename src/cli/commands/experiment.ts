/**
 * `taggants experiment`: the whole pipeline of issue 6 — sign, train suspects from the signed
 * dataset on disk, detect, report — with an embedded profile (`npm run demo` runs the default),
 * or with `--dry-run` a validation of the data, the configuration and a time/memory plan.
 */
import { Option, type Command } from "@commander-js/extra-typings";
import { join } from "node:path";
import { CheckFailedError } from "../../errors.ts";
import { planExperiment } from "../../experiment/dry-run.ts";
import { renderPlan } from "../../experiment/plan.ts";
import { PROFILE_NAMES, profileFor } from "../../experiment/profiles.ts";
import { renderTable, type ExperimentReport } from "../../experiment/report.ts";
import { runExperiment } from "../../experiment/run.ts";
import { startWorker } from "../../worker/client.ts";
import { contextFor } from "../context.ts";
import { deviceOption, integerAtLeast } from "../options.ts";

export function register(program: Command): void {
  program
    .command("experiment")
    .description(
      "Sign a dataset, train suspect models on the signed copy on disk, detect them, and write a report (the paper's Table 1).",
    )
    .addOption(
      new Option("--profile <name>", "embedded profile")
        .choices(PROFILE_NAMES)
        .default("fashion-mnist" as const),
    )
    .option(
      "--data <dir>",
      "the dataset (required by the imagenet profile; Fashion-MNIST is found otherwise)",
    )
    .option(
      "--dry-run",
      "validate the data and the configuration and print a time/memory plan; train nothing",
    )
    .option("--out <dir>", "run folder (default runs/<timestamp>)")
    .option(
      "--cache <dir>",
      "run cache for the data subset, surrogates and clean controls",
      join("runs", "cache"),
    )
    .option("--link", "hard-link unchanged files into the signed datasets instead of copying them")
    .option(
      "--gpus <n>",
      "GPUs to train on, one torchrun process each (crafting uses one)",
      integerAtLeast(1),
      1,
    )
    .addOption(deviceOption())
    .action(async (options, command) => {
      const { terminal, signal } = contextFor(command);
      const profile = profileFor(options.profile);
      const out = options.out ?? join("runs", new Date().toISOString().replace(/[:.]/g, "-"));
      if (options.dryRun) {
        const plan = await planExperiment({ profile, data: options.data, out });
        terminal.result(plan, () => renderPlan(plan));
        if (plan.problems.length > 0) {
          throw new CheckFailedError(
            "experiment-plan-problems",
            `The dry run found ${plan.problems.length} problem(s) with the ${profile.name} profile on this data (listed above); fix them before running.`,
          );
        }
        return;
      }
      const report = await runExperiment({
        profile,
        data: options.data,
        out,
        cache: options.cache,
        terminal,
        signal,
        link: options.link,
        gpus: options.gpus,
        startWorker: () => startWorker({ terminal, signal, device: options.device }),
      });
      terminal.result(report, () => renderSummary(report));
    });
}

function renderSummary(report: ExperimentReport): string {
  const { config } = report;
  return [
    `taggants experiment (${report.profile}): K = ${config.keys}, top-${config.topK} of C = ${config.classes}, ε = ${config.eps255}/255, ${config.budget.signingImages} signing images (${(100 * config.budget.fractionOfTrain).toFixed(2)} %)`,
    "",
    renderTable(report),
    "",
    report.control?.statement ?? "",
    `report: ${report.files.report}`,
  ].join("\n");
}

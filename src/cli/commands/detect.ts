/**
 * `taggants detect`: black-box detection against a suspect model, with an evidence report;
 * `taggants detect verify` checks a report; `taggants detect combine` joins independent reports
 * with Fisher's method. Exit codes: 0 detected at α, 1 not detected, 3 inconclusive (the suspect
 * refused or filtered the keys, or the control keys failed) or a runtime failure, 2 usage.
 */
import { Command, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { combineReports, type CombinedResult } from "../../detect/combine.ts";
import { DEFAULT_DETECT_SETTINGS, runDetection } from "../../detect/detect.ts";
import { loadReport, type DetectionReport } from "../../detect/report.ts";
import type { Verdict } from "../../detect/verdict.ts";
import { verifyReport, type VerifyOutcome } from "../../detect/verify.ts";
import { CheckFailedError, ExitCode, UsageError } from "../../errors.ts";
import { contextFor } from "../context.ts";
import { integerAtLeast, requiredInAction } from "../options.ts";

export function register(program: Command): void {
  const detect = program
    .command("detect")
    .description(
      "Test whether a suspect model was trained on the signed dataset (top-k hits on the keys, exact binomial p-value).",
    )
    // Checked in the action, not by commander: commander would demand them of `detect verify` too.
    .addOption(
      requiredInAction(
        new Option(
          "--suspect <spec>",
          "checkpoint:<dir>, v2:<http://host:port/v2/models/name>, torchserve:<http://host:port/predictions/name>, or an adapter config (.json)",
        ),
      ),
    )
    .addOption(requiredInAction(new Option("--key-file <path>", "the key secret used for signing")))
    .addOption(requiredInAction(new Option("--commitment <path>", "the public commitment file")))
    .addOption(
      requiredInAction(
        new Option(
          "--manifest <path>",
          "the manifest of the signed (or original) dataset of the commitment",
        ),
      ),
    )
    .addOption(requiredInAction(new Option("--out <dir>", "folder for report.json and report.md")))
    .option("--force", "replace a report already in --out")
    .option(
      "--top-k <k>",
      "count a hit when the key label is among the suspect's top k",
      integerAtLeast(1),
      1,
    )
    .option(
      "--control-keys <M>",
      "control keys (never used for signing) queried beside the keys (default: K)",
      integerAtLeast(0),
    )
    .option(
      "--alpha <a>",
      "significance level of the decision",
      probability,
      DEFAULT_DETECT_SETTINGS.alpha,
    )
    .option(
      "--confidence <c>",
      "level of the Clopper–Pearson intervals",
      probability,
      DEFAULT_DETECT_SETTINGS.confidence,
    )
    .option(
      "--label-map <file>",
      'JSON {"<suspect label>": "<dataset class>"} fixing the suspect\'s labels before any query',
    )
    .option(
      "--input-size <HxW>",
      "image size to send when the suspect does not announce one (default: the dataset's)",
      imageSize,
    )
    .option(
      "--concurrency <n>",
      "queries in flight at once",
      integerAtLeast(1),
      DEFAULT_DETECT_SETTINGS.concurrency,
    )
    .option(
      "--timeout <ms>",
      "time allowed for one attempt",
      integerAtLeast(1),
      DEFAULT_DETECT_SETTINGS.policy.timeoutMs,
    )
    .option(
      "--retries <n>",
      "retries on 429, 5xx, timeouts and dropped connections",
      integerAtLeast(0),
      DEFAULT_DETECT_SETTINGS.policy.maxAttempts - 1,
    )
    .option(
      "--backoff <ms>",
      "wait before the first retry (doubles each time)",
      integerAtLeast(1),
      DEFAULT_DETECT_SETTINGS.policy.backoffMs,
    )
    .option(
      "--query-budget <n>",
      "most key images that may be sent (default: K + M)",
      integerAtLeast(1),
    )
    .action(async (options, command) => {
      const { terminal, signal } = contextFor(command);
      const required = validateRequired(options);
      const { report, paths } = await runDetection({
        ...options,
        ...required,
        policy: {
          ...DEFAULT_DETECT_SETTINGS.policy,
          timeoutMs: options.timeout,
          maxAttempts: options.retries + 1,
          backoffMs: options.backoff,
        },
        terminal,
        signal,
      });
      terminal.result({ ...report.result, report: paths.json }, () =>
        renderDetection(report, paths.json),
      );
      process.exitCode = exitCodeOf(report.result.verdict);
    });

  // --key-file and --commitment are detect's own options: commander hands them to the parent
  // wherever they appear, so verify reads them from there (optsWithGlobals).
  detect
    .command("verify")
    .description(
      "Recompute a detection report from the key secret: commitment, request and response hashes, statistics.",
    )
    .argument("<report>", "report.json written by taggants detect")
    .addHelpText(
      "after",
      "\nOptions taken from `detect`:\n  --key-file <path>    the key secret used for signing (required)\n  --commitment <path>  the published commitment file the report must match",
    )
    .action(async (reportPath, _options, command) => {
      const { terminal } = contextFor(command);
      const { keyFile, commitment } = command.optsWithGlobals() as {
        keyFile?: string;
        commitment?: string;
      };
      if (!keyFile)
        throw new UsageError(
          "detect-options-missing",
          "taggants detect verify needs --key-file <key secret>.",
        );
      const report = await loadReport(reportPath);
      const outcome = await verifyReport({ report, keyFile, commitmentFile: commitment });
      for (const warning of outcome.warnings) terminal.warn(warning);
      terminal.result({ ok: outcome.ok, checks: outcome.checks, warnings: outcome.warnings }, () =>
        renderVerification(outcome),
      );
      if (!outcome.ok) {
        const failed = outcome.checks.filter((check) => !check.ok).map((check) => check.name);
        throw new CheckFailedError(
          "detect-report-altered",
          `The report ${reportPath} does not check out (${failed.join(", ")}): it was altered or made with other keys.`,
        );
      }
    });

  detect
    .command("combine")
    .description(
      "Combine independent detection reports (different key sets, one suspect) with Fisher's method.",
    )
    .argument("<reports...>", "report.json files")
    .addHelpText(
      "after",
      "\nOptions taken from `detect`:\n  --alpha <a>  significance level of the decision (default: 0.01)",
    )
    .action(async (paths, _options, command) => {
      const { terminal } = contextFor(command);
      const { alpha } = command.optsWithGlobals() as { alpha: number };
      const reports = await Promise.all(
        paths.map(async (path) => ({ path, report: await loadReport(path) })),
      );
      const combined = combineReports({ reports, alpha });
      terminal.result(combined, () => renderCombined(combined));
      process.exitCode = exitCodeOf(combined.verdict);
    });
}

function validateRequired(options: {
  suspect?: string;
  keyFile?: string;
  commitment?: string;
  manifest?: string;
  out?: string;
}): { suspect: string; keyFile: string; commitment: string; manifest: string; out: string } {
  const { suspect, keyFile, commitment, manifest, out } = options;
  if (suspect && keyFile && commitment && manifest && out)
    return { suspect, keyFile, commitment, manifest, out };
  const missing = Object.entries({
    "--suspect": suspect,
    "--key-file": keyFile,
    "--commitment": commitment,
    "--manifest": manifest,
    "--out": out,
  })
    .filter(([, value]) => !value)
    .map(([flag]) => flag);
  throw new UsageError(
    "detect-options-missing",
    `taggants detect needs ${missing.join(", ")}; see taggants detect --help.`,
  );
}

export function exitCodeOf(verdict: Verdict): number {
  if (verdict === "detected") return ExitCode.ok;
  if (verdict === "not-detected") return ExitCode.checkFailed;
  return ExitCode.runtime;
}

function renderDetection(report: DetectionReport, path: string): string {
  const { keys, controls, verdict, reasons, alpha } = report.result;
  const lines = [
    `${verdict.toUpperCase()} at α = ${alpha}: ${keys.hits}/${keys.answered} keys in the top ${keys.top_k} (chance ${keys.null_rate.toPrecision(3)}), log10 p = ${keys.log10_p.toFixed(3)}`,
  ];
  if (keys.interval)
    lines.push(
      `top-${keys.top_k} key accuracy ${keys.hit_rate!.toFixed(3)}, ${(keys.interval.confidence * 100).toFixed(0)} % interval [${keys.interval.lower.toFixed(3)}, ${keys.interval.upper.toFixed(3)}]`,
    );
  if (controls)
    lines.push(
      `control keys: ${controls.hits}/${controls.answered} hits, two-sided log10 p = ${controls.log10_p_two_sided.toFixed(3)} (${controls.consistent_with_chance ? "consistent with chance" : "NOT consistent with chance"})`,
    );
  lines.push(...reasons.map((reason) => `- ${reason}`), `report: ${path}`);
  return lines.join("\n");
}

function renderVerification(outcome: VerifyOutcome): string {
  const lines = outcome.checks.map(
    (check) => `${check.ok ? "ok  " : "FAIL"} ${check.name}: ${check.detail}`,
  );
  lines.push(outcome.ok ? "the report checks out" : "the report does NOT check out");
  return lines.join("\n");
}

function renderCombined(combined: CombinedResult): string {
  const lines = combined.reports.map(
    (r) => `${r.path}: log10 p = ${r.log10_p.toFixed(3)} (${r.verdict})`,
  );
  lines.push(
    `Fisher over ${combined.reports.length} runs: χ² = ${combined.statistic.toFixed(3)} with ${combined.degrees_of_freedom} degrees of freedom, log10 p = ${combined.log10_p.toFixed(3)} → ${combined.verdict.toUpperCase()} at α = ${combined.alpha}`,
  );
  return lines.join("\n");
}

function probability(value: string): number {
  const number = Number(value);
  if (!(number > 0 && number < 1))
    throw new InvalidArgumentError(`expected a number between 0 and 1, received "${value}".`);
  return number;
}

function imageSize(value: string): [number, number] {
  const match = /^(\d+)x(\d+)$/.exec(value);
  if (!match || Number(match[1]) < 1 || Number(match[2]) < 1)
    throw new InvalidArgumentError(`expected HEIGHTxWIDTH such as 28x28, received "${value}".`);
  return [Number(match[1]), Number(match[2])];
}

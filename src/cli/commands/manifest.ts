/**
 * `taggants manifest`: index a dataset (files, classes, hashes, root hash) and check a dataset
 * against a manifest. The root hash is the dataset identity used to derive keys and the signing
 * set, and it is bound into the commitment (METHOD.md, Publication).
 */
import type { Command } from "@commander-js/extra-typings";
import { resolve } from "node:path";
import { ExitCode } from "../../errors.ts";
import {
  buildManifest,
  verifyManifest,
  type ManifestSummary,
  type VerifyResult,
} from "../../manifest/index.ts";
import { contextFor } from "../context.ts";
import { integerAtLeast, requireOutputFolder } from "../options.ts";

function describeSummary(summary: ManifestSummary): string {
  const splits = Object.entries(summary.splits)
    .map(([name, split]) => `${name} ${split.count}`)
    .join(", ");
  const containers = Object.entries(summary.formats.containers)
    .map(([name, count]) => `${name} ${count}`)
    .join(", ");
  return [
    `${summary.layout} dataset: ${splits} images in ${summary.classes.length} classes (${containers})`,
    `root hash ${summary.root_hash}`,
    `wrote ${summary.summaryPath} and ${summary.entriesPath}`,
  ].join("\n");
}

function describeVerify(result: VerifyResult): string {
  const total = result.changed.length + result.missing.length + result.added.length;
  if (total === 0) return "The dataset matches the manifest.";
  const lines = [
    `The dataset differs from the manifest: ${result.changed.length} changed, ${result.missing.length} missing, ${result.added.length} added.`,
  ];
  for (const [label, names] of [
    ["changed", result.changed],
    ["missing", result.missing],
    ["added", result.added],
  ] as const) {
    for (const name of names.slice(0, 20)) lines.push(`  ${label}: ${name}`);
    if (names.length > 20) lines.push(`  … and ${names.length - 20} more ${label}`);
  }
  return lines.join("\n");
}

export function register(program: Command): void {
  const manifest = program
    .command("manifest")
    .description(
      "Index a dataset (ImageFolder tree or idx files): per-file hashes, classes, root hash.",
    )
    .argument("<dataset>", "the dataset folder")
    .option(
      "--out <base>",
      "write <base>.json and <base>.entries.jsonl (default: <dataset>.manifest beside the dataset)",
    )
    .option("--threads <n>", "hashing threads (default: available CPUs)", integerAtLeast(1))
    .action(async (dataset, options, command) => {
      const { terminal, signal } = contextFor(command);
      const out = options.out ?? `${resolve(dataset)}.manifest`;
      await requireOutputFolder(out, "the manifest");
      const summary = await buildManifest({
        root: dataset,
        out,
        terminal,
        signal,
        threads: options.threads,
      });
      terminal.result(
        {
          summary: summary.summaryPath,
          entries: summary.entriesPath,
          root_hash: summary.root_hash,
          layout: summary.layout,
          classes: summary.classes,
          splits: summary.splits,
          formats: summary.formats,
        },
        () => describeSummary(summary),
      );
    });
  manifest
    .command("verify")
    .description(
      "Compare a dataset with a manifest; exit code 1 when files changed, are missing or were added.",
    )
    .argument("<dataset>", "the dataset folder")
    .requiredOption("--manifest <path>", "the manifest summary (.json)")
    .action(async (dataset, options, command) => {
      const { terminal, signal } = contextFor(command);
      const result = await verifyManifest({
        root: dataset,
        manifest: options.manifest,
        terminal,
        signal,
      });
      terminal.result(
        {
          ok: result.changed.length + result.missing.length + result.added.length === 0,
          ...result,
        },
        () => describeVerify(result),
      );
      if (result.changed.length + result.missing.length + result.added.length > 0)
        process.exitCode = ExitCode.checkFailed;
    });
}

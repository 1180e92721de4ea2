/**
 * Writing and reading manifest files (docs/ARCHITECTURE.md, "Manifests"). `buildManifest`
 * streams the scan into the entries file while hashing its bytes (the root hash), then writes the
 * summary; both files appear atomically. `readEntries` streams entries back and checks the root
 * hash once it has read the whole file.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { once } from "node:events";
import { basename, dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import type { Terminal } from "../cli/terminal.ts";
import { CheckFailedError, UsageError } from "../errors.ts";
import { parseJsonFile } from "../invalid-file.ts";
import { temporaryFileFor, writeFileAtomic } from "./atomic.ts";
import {
  EntrySchema,
  formatEntryLine,
  MANIFEST_SCHEMA,
  SummarySchema,
  type ManifestEntry,
  type ManifestFile,
  type ManifestSummary,
  type Split,
} from "./format.ts";
import { openDatasetScan, type DatasetScan } from "./scan.ts";
import { createdBy } from "./version.ts";

export interface BuildManifestOptions {
  /** The dataset folder. */
  root: string;
  /** Output base path: writes `<out>.json` and `<out>.entries.jsonl` (a trailing .json is dropped). */
  out: string;
  terminal?: Terminal;
  signal?: AbortSignal;
  /** Hashing threads (default: available parallelism). */
  threads?: number;
}

/** The summary and entries file paths for an output base path. */
export function manifestPaths(out: string): { summaryPath: string; entriesPath: string } {
  const base = resolve(out.endsWith(".json") ? out.slice(0, -".json".length) : out);
  return { summaryPath: `${base}.json`, entriesPath: `${base}.entries.jsonl` };
}

export async function buildManifest(options: BuildManifestOptions): Promise<ManifestSummary> {
  const root = resolve(options.root);
  const scan = await openDatasetScan(root);
  if (scan.layout.kind === "imagefolder" && scan.layout.ignoredFiles.length > 0) {
    options.terminal?.warn(
      `not part of the dataset, skipped: ${scan.layout.ignoredFiles.join(", ")}`,
    );
  }
  const { summaryPath, entriesPath } = manifestPaths(options.out);
  const written = await writeEntries({ scan, entriesPath, ...options });
  const file: ManifestFile = {
    schema: MANIFEST_SCHEMA,
    layout: scan.layout.kind,
    classes: scan.classes,
    splits: written.splits,
    formats: scan.formats.toJSON(),
    entries: basename(entriesPath),
    root_hash: written.rootHash,
    ...(scan.layout.kind === "idx" ? { idx: scan.layout.files } : {}),
    created_by: createdBy(),
  };
  await writeFileAtomic(summaryPath, JSON.stringify(file, null, 2) + "\n");
  return { ...file, summaryPath, entriesPath };
}

async function writeEntries(args: {
  scan: DatasetScan;
  entriesPath: string;
  terminal?: Terminal;
  signal?: AbortSignal;
  threads?: number;
}): Promise<{ rootHash: string; splits: ManifestFile["splits"] }> {
  const { scan } = args;
  const target = temporaryFileFor(args.entriesPath);
  const output = createWriteStream(target.temporary, { flags: "wx" });
  // Write errors surface through `once(output, ...)` below; after a failed scan the stream is
  // destroyed with writes still queued, and that error is of no interest.
  let writeError: Error | undefined;
  output.on("error", (error) => (writeError ??= error));
  const hash = createHash("sha256");
  const splits: ManifestFile["splits"] = {};
  const progress = args.terminal?.progress("manifest", scan.total);
  let done = 0;
  try {
    for await (const batch of scan.entries({ signal: args.signal, threads: args.threads })) {
      const text = batch.map(formatEntryLine).join("");
      hash.update(text);
      if (writeError) throw writeError;
      if (!output.write(text)) await once(output, "drain");
      for (const entry of batch) {
        const split = (splits[entry.split] ??= {
          count: 0,
          class_counts: scan.classes.map(() => 0),
        });
        split.count += 1;
        split.class_counts[entry.label]! += 1;
      }
      done += batch.length;
      progress?.tick(done);
    }
    output.end();
    await once(output, "finish");
    await target.commit();
    progress?.stop(`${done} images`);
  } catch (error) {
    progress?.fail();
    output.destroy();
    await rm(target.temporary, { force: true });
    throw error;
  }
  return { rootHash: hash.digest("hex"), splits };
}

/** Load and validate a manifest summary (`<name>.json`; the `.json` may be omitted). */
export async function loadManifest(path: string): Promise<ManifestSummary> {
  const { summaryPath } = manifestPaths(path);
  let text: string;
  try {
    text = await readFile(summaryPath, "utf8");
  } catch (error) {
    throw new UsageError(
      "manifest-not-found",
      `No manifest at ${summaryPath}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const parsed = parseJsonFile(text, SummarySchema, {
    code: "manifest-invalid",
    file: summaryPath,
    expected: `a taggants manifest summary (${MANIFEST_SCHEMA})`,
    hint: "Rebuild it with `taggants manifest <dataset>`.",
  });
  return {
    ...parsed,
    summaryPath,
    entriesPath: resolve(dirname(summaryPath), parsed.entries),
  };
}

/**
 * Stream the entries of a manifest (optionally of one split), in file order. Having read the
 * whole file, checks that it still hashes to the summary's root hash (CheckFailedError if not).
 */
export async function* readEntries(
  summaryPath: string,
  options: { split?: Split } = {},
): AsyncGenerator<ManifestEntry> {
  const summary = await loadManifest(summaryPath);
  const hash = createHash("sha256");
  const lines = createInterface({
    input: createReadStream(summary.entriesPath),
    crlfDelay: Infinity,
  });
  let lineNumber = 0;
  for await (const line of lines) {
    lineNumber += 1;
    hash.update(line + "\n");
    const entry = parseEntryLine(line, { path: summary.entriesPath, lineNumber });
    if (options.split === undefined || entry.split === options.split) yield entry;
  }
  const rootHash = hash.digest("hex");
  if (rootHash !== summary.root_hash) {
    throw new CheckFailedError(
      "manifest-root-mismatch",
      `${summary.entriesPath} hashes to ${rootHash}, but the summary records root hash ${summary.root_hash}; the entries file was changed. Rebuild the manifest.`,
    );
  }
}

function parseEntryLine(line: string, where: { path: string; lineNumber: number }): ManifestEntry {
  return parseJsonFile(line, EntrySchema, {
    code: "manifest-invalid",
    file: `${where.path}:${where.lineNumber}`,
    expected: `a manifest entry (${MANIFEST_SCHEMA})`,
    hint: "Rebuild the manifest with `taggants manifest <dataset>`.",
  });
}

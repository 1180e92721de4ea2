/**
 * `manifest verify`: scan the dataset again and compare it with a manifest entry by entry (both
 * are in the same sorted order, so this is a merge in constant memory). Reports files changed
 * (content, size or class), missing from the dataset, and added to it. A file that is no longer
 * a complete image, or cannot be read, counts as changed; an emptied class folder as missing
 * files.
 */
import { resolve } from "node:path";
import { UsageError } from "../errors.ts";
import type { Terminal } from "../cli/terminal.ts";
import { loadManifest, readEntries } from "./build.ts";
import { compareCodePoints, SPLITS, type ManifestEntry } from "./format.ts";
import { openDatasetScan } from "./scan.ts";

export interface VerifyResult {
  /** Entry names: the path (ImageFolder) or `<split>[<index>]` (idx). */
  changed: string[];
  missing: string[];
  added: string[];
}

export async function verifyManifest(args: {
  root: string;
  manifest: string;
  terminal?: Terminal;
  signal?: AbortSignal;
}): Promise<VerifyResult> {
  const summary = await loadManifest(args.manifest);
  const scan = await openDatasetScan(resolve(args.root), { lenient: true });
  if (scan.layout.kind !== summary.layout) {
    throw new UsageError(
      "manifest-layout-mismatch",
      `${args.manifest} describes an ${summary.layout} dataset but ${args.root} is laid out as ${scan.layout.kind}; expected the same layout.`,
    );
  }
  const classesMoved = scan.classes.join("\n") !== summary.classes.join("\n");
  const progress = args.terminal?.progress("verify", scan.total);
  const result: VerifyResult = { changed: [], missing: [], added: [] };
  const recorded = readEntries(summary.summaryPath)[Symbol.asyncIterator]();
  const found = flatten(scan.entries({ signal: args.signal }))[Symbol.asyncIterator]();
  try {
    let a = await recorded.next();
    let b = await found.next();
    let done = 0;
    while (!a.done || !b.done) {
      const order = a.done ? 1 : b.done ? -1 : compareEntries(a.value, b.value);
      if (order < 0) result.missing.push(entryName(a.value as ManifestEntry));
      else if (order > 0) result.added.push(entryName(b.value as ManifestEntry));
      else if (
        differs(a.value as ManifestEntry, b.value as ManifestEntry, {
          summary,
          scanClasses: scan.classes,
          classesMoved,
        })
      ) {
        result.changed.push(entryName(a.value as ManifestEntry));
      }
      if (order <= 0) a = await recorded.next();
      if (order >= 0) {
        b = await found.next();
        if (++done % 1024 === 0) progress?.tick(done);
      }
    }
  } catch (error) {
    progress?.fail();
    throw error;
  } finally {
    // On an error mid-way (a tampered entries file, say) close both streams, or the scan's
    // hashing threads keep the process alive.
    await Promise.allSettled([recorded.return?.(undefined), found.return?.(undefined)]);
  }
  progress?.stop(
    `${result.changed.length} changed, ${result.missing.length} missing, ${result.added.length} added`,
  );
  return result;
}

async function* flatten<T>(batches: AsyncIterable<T[]>): AsyncGenerator<T> {
  for await (const batch of batches) yield* batch;
}

function compareEntries(a: ManifestEntry, b: ManifestEntry): number {
  const split = SPLITS.indexOf(a.split) - SPLITS.indexOf(b.split);
  if (split !== 0) return split;
  if (a.path !== undefined && b.path !== undefined) return compareCodePoints(a.path, b.path);
  return (a.index ?? 0) - (b.index ?? 0);
}

/** Changed content or size, or a different class name (labels compared by name). */
function differs(
  recorded: ManifestEntry,
  found: ManifestEntry,
  classes: { summary: { classes: string[] }; scanClasses: string[]; classesMoved: boolean },
): boolean {
  if (recorded.sha256 !== found.sha256 || recorded.size !== found.size) return true;
  if (!classes.classesMoved) return recorded.label !== found.label;
  return classes.summary.classes[recorded.label] !== classes.scanClasses[found.label];
}

export function entryName(entry: ManifestEntry): string {
  return entry.path ?? `${entry.split}[${entry.index}]`;
}

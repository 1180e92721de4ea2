/**
 * Naming a dataset for the worker: a dataset folder or its manifest becomes the wire form
 * `{manifest, root, split}` (docs/ARCHITECTURE.md, "Worker commands"). A folder is read with the
 * manifest beside it (`<folder>.manifest.json`, as `taggants manifest` writes it) when there is
 * one; otherwise with a manifest derived into the per-user cache (src/manifest/derived.ts), never
 * beside the dataset, which may be read-only. Either way the worker and the orchestrator agree on
 * what sample i is.
 */
import { basename, dirname, join, resolve } from "node:path";
import type { Terminal } from "../cli/terminal.ts";
import { UsageError } from "../errors.ts";
import {
  loadManifest,
  loadOrBuildDerivedManifest,
  type ManifestSummary,
  type Split,
} from "../manifest/index.ts";
import { pathKind } from "../paths.ts";

/** A dataset split as the worker names it. */
export interface WireDataset {
  manifest: string;
  root: string;
  split: Split;
  /** A folder of replaced files laid over the dataset (see python/taggants_worker/data.py). */
  overlay?: string;
}

export interface ResolvedDataset {
  manifest: ManifestSummary;
  root: string;
  /** True when this call wrote the manifest (into the per-user cache). */
  built: boolean;
}

const MANIFEST_SUFFIX = ".manifest.json";

/**
 * `data` is a dataset folder or a manifest summary (`<root>.manifest.json`; give `root` when the
 * manifest does not sit beside its dataset under that name).
 */
export async function resolveDataset(options: {
  data: string;
  root?: string;
  terminal?: Terminal;
  signal?: AbortSignal;
}): Promise<ResolvedDataset> {
  const data = resolve(options.data);
  const kind = await pathKind(data);
  if (kind === "missing") {
    throw new UsageError(
      "dataset-missing",
      `Expected a dataset folder or a manifest .json file; ${data} does not exist.`,
    );
  }
  if (kind === "file") {
    const root = options.root ? resolve(options.root) : rootBesideManifest(data);
    return { manifest: await loadManifest(data), root, built: false };
  }
  const summaryPath = `${data}${MANIFEST_SUFFIX}`;
  if ((await pathKind(summaryPath)) === "file") {
    return { manifest: await loadManifest(summaryPath), root: data, built: false };
  }
  const { manifest, built } = await loadOrBuildDerivedManifest({
    root: data,
    terminal: options.terminal,
    signal: options.signal,
  });
  return { manifest, root: data, built };
}

/** The wire form of one split; fails clearly when the dataset has no such split. */
export function wireDataset(dataset: ResolvedDataset, split: Split, overlay?: string): WireDataset {
  if (!dataset.manifest.splits[split]) {
    const have = Object.keys(dataset.manifest.splits).join(", ");
    throw new UsageError(
      "dataset-split-missing",
      `Expected a "${split}" split in ${dataset.root}; it has: ${have}. ImageFolder datasets get a test split from a test/ or val/ folder.`,
    );
  }
  return {
    manifest: dataset.manifest.summaryPath,
    root: dataset.root,
    split,
    ...(overlay ? { overlay: resolve(overlay) } : {}),
  };
}

function rootBesideManifest(summaryPath: string): string {
  const name = basename(summaryPath);
  if (!name.endsWith(MANIFEST_SUFFIX)) {
    throw new UsageError(
      "dataset-root-unknown",
      `Cannot tell the dataset folder of ${summaryPath}: expected a name <folder>${MANIFEST_SUFFIX} beside the folder. Pass the folder instead, or --root <folder>.`,
    );
  }
  return join(dirname(summaryPath), name.slice(0, -MANIFEST_SUFFIX.length));
}

/**
 * Manifests that taggants derives by itself, for a dataset folder given without one (`train`,
 * `eval`, `sign`). They go to a per-user cache, never beside the dataset, whose folder may be
 * read-only (a system package's data, a mounted volume):
 *
 *   $XDG_CACHE_HOME/taggants/manifests/<sha256 of the dataset path, 16 hex>/
 *     dataset.manifest.json, dataset.manifest.entries.jsonl   the manifest
 *     listing.json                                             what it was built from
 *
 * A cached manifest is reused only while the dataset's listing (every non-hidden file's path,
 * size and modification time) is the one it was built from; otherwise it is rebuilt. Listing
 * costs one stat per file, far less than hashing every file again.
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { Terminal } from "../cli/terminal.ts";
import { TaggantsError } from "../errors.ts";
import { writeFileAtomic } from "./atomic.ts";
import { buildManifest, loadManifest, manifestPaths } from "./build.ts";
import type { ManifestSummary } from "./format.ts";

/** The per-user cache folder of taggants (`$XDG_CACHE_HOME/taggants`, default `~/.cache`). */
export function userCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(resolve(base), "taggants");
}

/** The folder that holds the derived manifest of the dataset at `root`. */
export function derivedManifestDir(root: string): string {
  const key = createHash("sha256").update(resolve(root)).digest("hex").slice(0, 16);
  return join(userCacheDir(), "manifests", key);
}

/**
 * The manifest of the dataset folder `root`, from the cache while the folder's listing is
 * unchanged, else built (and cached). `built` says which.
 */
export async function loadOrBuildDerivedManifest(options: {
  root: string;
  terminal?: Terminal;
  signal?: AbortSignal;
}): Promise<{ manifest: ManifestSummary; built: boolean }> {
  const root = resolve(options.root);
  const folder = derivedManifestDir(root);
  const base = join(folder, "dataset.manifest");
  const listingFile = join(folder, "listing.json");
  const listing = await listingHash(root);

  const cached = await readCachedListing(listingFile);
  if (cached?.root === root && cached.listing === listing) {
    try {
      return { manifest: await loadManifest(manifestPaths(base).summaryPath), built: false };
    } catch {
      // A damaged cache entry is rebuilt below.
    }
  }

  await createCacheFolder(folder, root);
  options.terminal?.info(`indexing ${root} (no manifest yet): writing ${base}.json`);
  const manifest = await buildManifest({
    root,
    out: base,
    terminal: options.terminal,
    signal: options.signal,
  });
  await writeFileAtomic(listingFile, JSON.stringify({ root, listing }) + "\n");
  return { manifest, built: true };
}

async function createCacheFolder(folder: string, root: string): Promise<void> {
  try {
    await mkdir(folder, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new TaggantsError(
      "manifest-cache-unwritable",
      `Cannot create ${folder} for the manifest of ${root}: ${(error as Error).message}. Set XDG_CACHE_HOME to a writable folder, or index the dataset once with \`taggants manifest ${root} --out <writable path>/data.manifest\` and pass that .json as --data (train, eval; with --root ${root}) or --manifest (sign).`,
      { cause: error },
    );
  }
}

async function readCachedListing(
  path: string,
): Promise<{ root: string; listing: string } | undefined> {
  try {
    const value = JSON.parse(await readFile(path, "utf8")) as { root?: unknown; listing?: unknown };
    if (typeof value.root === "string" && typeof value.listing === "string") {
      return { root: value.root, listing: value.listing };
    }
  } catch {
    // No cache entry yet, or a damaged one: either way it is rebuilt.
  }
  return undefined;
}

/** SHA-256 over `path size mtime` of every non-hidden file below `root`, in sorted order. */
async function listingHash(root: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (folder: string, relative: string): Promise<void> => {
    const names = (await readdir(folder)).filter((name) => !name.startsWith(".")).sort();
    // A dangling link has no stat; it is listed as such (indexing reports it).
    const stats = await Promise.all(
      names.map((name) => stat(join(folder, name)).catch(() => undefined)),
    );
    for (const [i, name] of names.entries()) {
      const info = stats[i];
      const path = relative ? `${relative}/${name}` : name;
      if (info?.isDirectory()) await walk(join(folder, name), path);
      else lines.push(info ? `${path}\t${info.size}\t${info.mtimeMs}` : `${path}\tdangling`);
    }
  };
  await walk(root, "");
  return createHash("sha256").update(lines.join("\n")).digest("hex");
}

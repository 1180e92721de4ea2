/**
 * Writing the signed dataset (method, "Quantisation and format" and "Publication"): a folder that
 * mirrors the original's layout file for file. Files without a taggant are copied byte for byte
 * (or hard-linked on request); files with one are rewritten in their own container (see
 * image-codec.ts, idx.ts) keeping the original's name and file mode.
 *
 * Atomicity: the dataset is built in a hidden sibling folder `.<name>.partial-<pid>-<random>` and
 * renamed to its final name only when every file is written, so a crash leaves either no output
 * or a complete one. Partial folders of processes that are gone are removed on the next run.
 */
import { randomBytes } from "node:crypto";
import {
  copyFile,
  link,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { basename, dirname, join, posix, relative, sep } from "node:path";
import { TaggantsError, UsageError } from "../errors.ts";
import { decodeImage, encodeLike, inspectImage, type PlanarImage } from "./image-codec.ts";
import { isGzip, parseIdxImageHeader, replaceIdxImages } from "./idx.ts";
import { gunzipSync } from "node:zlib";

/** Where the original dataset's training images are, by their position in the training split. */
export type DatasetSource =
  | { layout: "imagefolder"; root: string; trainPaths: readonly string[] }
  | { layout: "idx"; root: string; trainImagesFile: string };

export interface SignedImage {
  /** Position of the image in the training split (the manifest's entry order). */
  index: number;
  pixels: PlanarImage;
}

/** How a signed image came out once written and read back. */
export interface SignedImageStats {
  index: number;
  container: "png" | "jpeg" | "webp" | "idx";
  /** PSNR of the written signed image against its original, in dB (null when identical). */
  psnr: number | null;
  /** Largest pixel change written, in units of 1/255. */
  linf255: number;
  /**
   * Cosine between the taggant as written (decoded file − original) and the taggant as crafted
   * (signed pixels − original): 1 for lossless containers, lower when JPEG re-encoding alters it;
   * null for a zero taggant.
   */
  retention: number | null;
}

export interface WriteSignedDatasetOptions {
  source: DatasetSource;
  signed: readonly SignedImage[];
  out: string;
  /** Hard-link unchanged files instead of copying them (same file system only). */
  link?: boolean;
  /** Called after each file is placed in the partial folder (progress; tests inject crashes). */
  onFile?: (done: number, total: number) => void | Promise<void>;
}

export interface WriteSignedDatasetResult {
  files: number;
  signedFiles: number;
  stats: SignedImageStats[];
}

const COPY_CONCURRENCY = 16;

/** The signed folder is there already, and not from the inputs at hand. */
export function signedOutputExists(out: string): UsageError {
  return new UsageError(
    "signed-output-exists",
    `The signed dataset folder ${out} already exists and was not made from these inputs. Choose another --out or remove it.`,
  );
}

export async function writeSignedDataset(
  options: WriteSignedDatasetOptions,
): Promise<WriteSignedDatasetResult> {
  const { source, out } = options;
  if (await pathExists(out)) throw signedOutputExists(out);
  await mkdir(dirname(out), { recursive: true });
  await removeStalePartials(out);
  const partial = join(
    dirname(out),
    `.${basename(out)}.partial-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
  try {
    const { replacements, stats } = await encodeReplacements(source, options.signed);
    const files = await listFiles(source.root);
    const present = new Set(files);
    const missing = [...replacements.keys()].filter((path) => !present.has(path));
    if (missing.length > 0) {
      throw new TaggantsError(
        "signed-source-missing",
        `${missing.length} file(s) to sign are not in ${source.root} (first: ${missing[0]}); the dataset changed since its manifest was built. Rebuild the manifest.`,
      );
    }
    await placeFiles({
      root: source.root,
      partial,
      files,
      replacements,
      link: options.link,
      onFile: options.onFile,
    });
    await rename(partial, out);
    return { files: files.length, signedFiles: replacements.size, stats };
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
}

/** The new bytes of every file that carries taggants, keyed by POSIX path relative to the root. */
async function encodeReplacements(
  source: DatasetSource,
  signed: readonly SignedImage[],
): Promise<{ replacements: Map<string, Uint8Array>; stats: SignedImageStats[] }> {
  if (source.layout === "idx") return encodeIdxReplacement(source, signed);
  const replacements = new Map<string, Uint8Array>();
  const stats: SignedImageStats[] = [];
  for (const image of signed) {
    const path = source.trainPaths[image.index];
    if (path === undefined) {
      throw new TaggantsError(
        "signed-index-out-of-range",
        `Signed image index ${image.index} is outside the training split's ${source.trainPaths.length} images.`,
      );
    }
    const original = new Uint8Array(await readFile(join(source.root, path)));
    const format = await inspectImage(original);
    const written = await encodeLike({ original, format, pixels: image.pixels });
    const before = await decodeImage(original, image.pixels.channels);
    const after = await decodeImage(written, image.pixels.channels);
    if (format.container !== "jpeg") assertSamePixels(after.data, image.pixels.data, path);
    replacements.set(path, written);
    stats.push({
      index: image.index,
      container: format.container,
      ...compareTaggants(before.data, image.pixels.data, after.data),
    });
  }
  return { replacements, stats };
}

async function encodeIdxReplacement(
  source: Extract<DatasetSource, { layout: "idx" }>,
  signed: readonly SignedImage[],
): Promise<{ replacements: Map<string, Uint8Array>; stats: SignedImageStats[] }> {
  const original = new Uint8Array(await readFile(join(source.root, source.trainImagesFile)));
  const raw = isGzip(original) ? new Uint8Array(gunzipSync(original)) : original;
  const header = parseIdxImageHeader(raw);
  const size = header.rows * header.cols;
  const pixels = new Map<number, Uint8Array>();
  const stats: SignedImageStats[] = [];
  for (const image of signed) {
    if (image.pixels.channels !== 1) {
      throw new TaggantsError(
        "image-channels-mismatch",
        `idx images have one channel; a signed image has ${image.pixels.channels}.`,
      );
    }
    pixels.set(image.index, image.pixels.data);
    const start = header.dataOffset + image.index * size;
    const before = raw.subarray(start, start + size);
    stats.push({
      index: image.index,
      container: "idx",
      ...compareTaggants(before, image.pixels.data, image.pixels.data),
    });
  }
  const written = replaceIdxImages({ original, replacements: pixels });
  return { replacements: new Map([[toPosix(source.trainImagesFile), written]]), stats };
}

function compareTaggants(
  original: Uint8Array,
  crafted: Uint8Array,
  written: Uint8Array,
): Omit<SignedImageStats, "index" | "container"> {
  let squared = 0;
  let linf = 0;
  let dot = 0;
  let craftedNorm = 0;
  let writtenNorm = 0;
  for (let i = 0; i < original.length; i++) {
    const realised = written[i]! - original[i]!;
    const intended = crafted[i]! - original[i]!;
    squared += realised * realised;
    linf = Math.max(linf, Math.abs(realised));
    dot += realised * intended;
    craftedNorm += intended * intended;
    writtenNorm += realised * realised;
  }
  const mse = squared / original.length;
  return {
    psnr: mse === 0 ? null : 10 * Math.log10((255 * 255) / mse),
    linf255: linf,
    retention:
      craftedNorm === 0 ? null : writtenNorm === 0 ? 0 : dot / Math.sqrt(craftedNorm * writtenNorm),
  };
}

function assertSamePixels(decoded: Uint8Array, crafted: Uint8Array, path: string): void {
  const differs =
    decoded.length !== crafted.length || decoded.some((value, i) => value !== crafted[i]);
  if (differs) {
    throw new TaggantsError(
      "signed-image-not-lossless",
      `The signed image ${path}, read back after writing, differs from the crafted pixels although its container is lossless. Report this with the original file.`,
    );
  }
}

async function placeFiles(options: {
  root: string;
  partial: string;
  files: readonly string[];
  replacements: ReadonlyMap<string, Uint8Array>;
  link?: boolean;
  onFile?: (done: number, total: number) => void | Promise<void>;
}): Promise<void> {
  const { root, partial, files, replacements } = options;
  await mkdir(partial, { recursive: true });
  const directories = new Set(
    files.map((file) => posix.dirname(file)).filter((dir) => dir !== "."),
  );
  for (const directory of [...directories].sort())
    await mkdir(join(partial, directory), { recursive: true });
  let done = 0;
  await forEachConcurrently(files, COPY_CONCURRENCY, async (file) => {
    const from = join(root, file);
    const to = join(partial, file);
    const replacement = replacements.get(file);
    if (replacement) {
      await writeFile(to, replacement, { mode: (await stat(from)).mode & 0o777 });
    } else if (options.link) {
      await link(from, to);
    } else {
      await copyFile(from, to);
    }
    done += 1;
    await options.onFile?.(done, files.length);
  });
}

/** Every regular file under `root` (symbolic links followed), as sorted POSIX relative paths. */
export async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries) {
    const full = join(entry.parentPath, entry.name);
    const isFile = entry.isFile() || (entry.isSymbolicLink() && (await stat(full)).isFile());
    if (isFile) files.push(toPosix(relative(root, full)));
  }
  return files.sort();
}

async function removeStalePartials(out: string): Promise<void> {
  const prefix = `.${basename(out)}.partial-`;
  for (const name of await readdir(dirname(out))) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split("-")[0]);
    if (Number.isInteger(pid) && !processAlive(pid)) {
      await rm(join(dirname(out), name), { recursive: true, force: true });
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function forEachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  const lanes = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    try {
      while (!failed && next < items.length) await task(items[next++]!);
    } catch (error) {
      failed = true; // the other lanes stop before their next item
      throw error;
    }
  });
  const results = await Promise.allSettled(lanes);
  const rejected = results.find((result) => result.status === "rejected");
  if (rejected) throw rejected.reason;
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

function toPosix(path: string): string {
  return path.split(sep).join("/");
}

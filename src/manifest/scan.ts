/**
 * Scanning a dataset into manifest entries, in entries-file order, in constant memory: the
 * ImageFolder tree is walked in sorted order and hashed in batches by a thread pool (a bounded
 * number of batches in flight); idx images are streamed and hashed one by one. Bad input (an
 * empty class folder, a non-image, unreadable or truncated file) stops the scan with a UsageError.
 */
import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { UsageError } from "../errors.ts";
import {
  compareCodePoints,
  SPLITS,
  type ManifestEntry,
  type ManifestFormats,
  type Mode,
} from "./format.ts";
import { HashPool, type HashResult } from "./hash-pool.ts";
import { readIdxLabels, streamIdxImages, type IdxImagesHeader, type IdxLabels } from "./idx.ts";
import {
  detectLayout,
  listClassFolder,
  listDirectory,
  type DatasetLayout,
  type IdxLayout,
  type ImageFolderLayout,
} from "./layout.ts";

/** Files per batch sent to a hashing thread. */
const BATCH_FILES = 128;
/** idx entries per batch. */
const IDX_BATCH = 1024;
/** Batches in flight per hashing thread (bounds memory and keeps every thread busy). */
const BATCHES_PER_THREAD = 4;
/** Sizes listed individually in the summary's formats. */
const LISTED_SIZES = 32;

const CHANNELS: Record<Mode, number> = { gray: 1, "gray-alpha": 2, rgb: 3, rgba: 4, cmyk: 4 };

/** Counts of containers, modes and sizes over the scanned images. */
export class FormatTally {
  private readonly containers = new Map<string, number>();
  private readonly modes = new Map<string, number>();
  private readonly sizes = new Map<string, number>();
  private width = { min: Infinity, max: 0 };
  private height = { min: Infinity, max: 0 };
  private maxChannels = 0;

  add(image: { container: string; mode: Mode; width: number; height: number }): void {
    increment(this.containers, image.container);
    increment(this.modes, image.mode);
    increment(this.sizes, `${image.width}x${image.height}`);
    this.width = {
      min: Math.min(this.width.min, image.width),
      max: Math.max(this.width.max, image.width),
    };
    this.height = {
      min: Math.min(this.height.min, image.height),
      max: Math.max(this.height.max, image.height),
    };
    this.maxChannels = Math.max(this.maxChannels, CHANNELS[image.mode]);
  }

  toJSON(): ManifestFormats {
    const sizes = [...this.sizes]
      .sort((a, b) => b[1] - a[1] || compareCodePoints(a[0], b[0]))
      .slice(0, LISTED_SIZES);
    return {
      containers: Object.fromEntries([...this.containers].sort()),
      modes: Object.fromEntries([...this.modes].sort()),
      sizes: Object.fromEntries(sizes),
      distinct_sizes: this.sizes.size,
      width: { min: this.width.min === Infinity ? 0 : this.width.min, max: this.width.max },
      height: { min: this.height.min === Infinity ? 0 : this.height.min, max: this.height.max },
      max_channels: this.maxChannels,
    };
  }
}

function increment(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

export interface DatasetScan {
  layout: DatasetLayout;
  classes: string[];
  /** Images the scan will yield (for progress). */
  total: number;
  formats: FormatTally;
  /** The entries in entries-file order, in batches. */
  entries(options?: { signal?: AbortSignal; threads?: number }): AsyncGenerator<ManifestEntry[]>;
}

export interface ScanOptions {
  /**
   * Report broken files instead of failing (for verify): an image that is not a complete JPEG,
   * PNG or WebP still gets the hash of its bytes, an unreadable file gets size −1 and an empty
   * hash, and empty class folders are allowed.
   */
  lenient?: boolean;
}

/** Recognise the layout of `root`, fix its classes and count its images. */
export async function openDatasetScan(
  root: string,
  options: ScanOptions = {},
): Promise<DatasetScan> {
  const layout = await detectLayout(root);
  const lenient = options.lenient ?? false;
  return layout.kind === "idx" ? openIdxScan(layout) : openImageFolderScan(layout, lenient);
}

// ---- ImageFolder --------------------------------------------------------------------------

interface PendingFile {
  split: ManifestEntry["split"];
  path: string;
  absolute: string;
  label: number;
}

async function openImageFolderScan(
  layout: ImageFolderLayout,
  lenient: boolean,
): Promise<DatasetScan> {
  let total = 0;
  for await (const folder of classFolders(layout, lenient)) total += folder.relatives.length;
  const formats = new FormatTally();
  return {
    layout,
    classes: layout.classes,
    total,
    formats,
    entries: (options = {}) => imageFolderEntries({ layout, formats, total, lenient, ...options }),
  };
}

interface ClassFolder {
  split: ManifestEntry["split"];
  name: string;
  /** Entry path prefix of the folder's files, e.g. "train/Bag/". */
  prefix: string;
  folder: string;
  label: number;
  /** Its files, sorted, relative to `folder`. */
  relatives: string[];
}

/**
 * The class folders of the tree in entries order: split, then path (class folders sort as
 * "name/", so class order by path may differ from class index order).
 */
async function* classFolders(
  layout: ImageFolderLayout,
  lenient: boolean,
): AsyncGenerator<ClassFolder> {
  const labelOf = new Map(layout.classes.map((name, index) => [name, index]));
  const inPathOrder = [...layout.classes].sort((a, b) => compareCodePoints(`${a}/`, `${b}/`));
  for (const { split, directory, prefix } of layout.splits) {
    const present = split === "train" ? inPathOrder : await presentClasses(directory, inPathOrder);
    for (const name of present) {
      const folder = join(directory, name);
      const relatives = await listClassFolder(folder);
      if (relatives.length === 0 && !lenient) {
        throw new UsageError(
          "dataset-empty-class",
          `The class folder ${folder} holds no images; expected at least one image per class folder. Add images or remove the folder.`,
        );
      }
      yield {
        split,
        name,
        prefix: `${prefix}${name}/`,
        folder,
        label: labelOf.get(name)!,
        relatives,
      };
    }
  }
}

/** The files of the tree in entries order, one class folder at a time. */
async function* imageFolderFiles(
  layout: ImageFolderLayout,
  lenient: boolean,
): AsyncGenerator<PendingFile[]> {
  for await (const { split, prefix, folder, label, relatives } of classFolders(layout, lenient)) {
    yield relatives.map((relative) => ({
      split,
      path: prefix + relative,
      absolute: join(folder, relative),
      label,
    }));
  }
}

async function presentClasses(directory: string, classes: string[]): Promise<string[]> {
  const present = new Set((await listDirectory(directory)).directories);
  return classes.filter((name) => present.has(name));
}

async function* imageFolderEntries(args: {
  layout: ImageFolderLayout;
  formats: FormatTally;
  total: number;
  lenient: boolean;
  signal?: AbortSignal;
  threads?: number;
}): AsyncGenerator<ManifestEntry[]> {
  // No more threads than batches: starting a thread costs time.
  const threads = Math.min(
    args.threads ?? availableParallelism(),
    Math.ceil(args.total / BATCH_FILES),
  );
  const pool = new HashPool(Math.max(1, threads));
  const inFlight: Array<{ files: PendingFile[]; results: Promise<HashResult[]> }> = [];
  try {
    for await (const folderFiles of imageFolderFiles(args.layout, args.lenient)) {
      for (let start = 0; start < folderFiles.length; start += BATCH_FILES) {
        const files = folderFiles.slice(start, start + BATCH_FILES);
        const results = pool.hash(files.map((file) => file.absolute));
        results.catch(() => {}); // observed when awaited below; no unhandled rejection meanwhile
        inFlight.push({ files, results });
        while (inFlight.length >= pool.size * BATCHES_PER_THREAD)
          yield await finishBatch(inFlight.shift()!, args);
      }
    }
    while (inFlight.length > 0) yield await finishBatch(inFlight.shift()!, args);
  } finally {
    await pool.close();
  }
}

async function finishBatch(
  batch: { files: PendingFile[]; results: Promise<HashResult[]> },
  args: { formats: FormatTally; lenient: boolean; signal?: AbortSignal },
): Promise<ManifestEntry[]> {
  const results = await batch.results;
  args.signal?.throwIfAborted();
  return batch.files.map((file, i) => {
    const result = results[i]!;
    if (!result.ok) {
      if (!args.lenient) throw imageError(file.absolute, result);
      const { split, path, label } = file;
      return { split, path, label, size: result.size ?? -1, sha256: result.sha256 ?? "" };
    }
    args.formats.add(result);
    return {
      split: file.split,
      path: file.path,
      label: file.label,
      size: result.size,
      sha256: result.sha256,
    };
  });
}

function imageError(path: string, result: Extract<HashResult, { ok: false }>): UsageError {
  const advice =
    result.reason === "unreadable"
      ? "Check that the file exists and that you may read it."
      : "Each file in a class folder must be a complete JPEG, PNG or WebP image; replace or remove this one.";
  return new UsageError(`image-${result.reason}`, `${path}: ${result.message}. ${advice}`);
}

// ---- idx ------------------------------------------------------------------------------------

async function openIdxScan(layout: IdxLayout): Promise<DatasetScan> {
  const labels = new Map<string, IdxLabels>();
  let maxLabel = -1;
  for (const split of SPLITS) {
    const files = layout.files[split];
    if (!files) continue;
    const read = await readIdxLabels(join(layout.root, files.labels));
    labels.set(split, read);
    for (const label of read.labels) maxLabel = Math.max(maxLabel, label);
  }
  const classes = Array.from({ length: maxLabel + 1 }, (_, i) => String(i));
  if (classes.length < 2) {
    throw new UsageError(
      "dataset-too-few-classes",
      `The idx labels in ${layout.root} use ${classes.length} class${classes.length === 1 ? "" : "es"}; expected at least 2.`,
    );
  }
  const total = [...labels.values()].reduce((sum, read) => sum + read.count, 0);
  const formats = new FormatTally();
  return {
    layout,
    classes,
    total,
    formats,
    entries: (options = {}) => idxEntries({ layout, labels, formats, ...options }),
  };
}

async function* idxEntries(args: {
  layout: IdxLayout;
  labels: Map<string, IdxLabels>;
  formats: FormatTally;
  signal?: AbortSignal;
}): AsyncGenerator<ManifestEntry[]> {
  let batch: ManifestEntry[] = [];
  for (const split of SPLITS) {
    const files = args.layout.files[split];
    const labels = args.labels.get(split);
    if (!files || !labels) continue;
    const path = join(args.layout.root, files.images);
    let header: IdxImagesHeader | undefined;
    let index = 0;
    for await (const item of streamIdxImages(path)) {
      if (!(item instanceof Uint8Array)) {
        header = validateIdxCounts(path, item, labels.count);
        continue;
      }
      const { width, height } = header!;
      args.formats.add({ container: "idx", mode: "gray", width, height });
      const sha256 = createHash("sha256").update(item).digest("hex");
      batch.push({ split, index, label: labels.labels[index]!, size: item.length, sha256 });
      index += 1;
      if (batch.length === IDX_BATCH) {
        args.signal?.throwIfAborted();
        yield batch;
        batch = [];
      }
    }
  }
  if (batch.length > 0) yield batch;
}

function validateIdxCounts(
  path: string,
  header: IdxImagesHeader,
  labelCount: number,
): IdxImagesHeader {
  if (header.count !== labelCount) {
    throw new UsageError(
      "idx-invalid",
      `${path} holds ${header.count} images but its label file holds ${labelCount} labels; expected the same count.`,
    );
  }
  return header;
}

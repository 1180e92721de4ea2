/**
 * Recognising a dataset's layout: an ImageFolder tree (`<root>/<class>/<image>`, optionally
 * under `train/` and `val/` or `test/`) or MNIST-style idx files, with the class list fixed by
 * sorted class-folder names so that a suspect model's label space can be mapped. Hidden entries
 * (names starting with ".") are skipped everywhere; plain files at the root are not data.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { UsageError } from "../errors.ts";
import { compareCodePoints, type Split } from "./format.ts";

export interface ImageFolderSplit {
  split: Split;
  /** Absolute folder holding the class folders. */
  directory: string;
  /** Prefix of entry paths for this split: "" or e.g. "train/". */
  prefix: string;
}

export interface ImageFolderLayout {
  kind: "imagefolder";
  root: string;
  classes: string[];
  splits: ImageFolderSplit[];
  /** Plain files at the root that are not part of the dataset (README, licence, ...). */
  ignoredFiles: string[];
}

export interface IdxFiles {
  /** File names relative to the dataset root. */
  images: string;
  labels: string;
}

export interface IdxLayout {
  kind: "idx";
  root: string;
  files: Partial<Record<Split, IdxFiles>>;
}

export type DatasetLayout = ImageFolderLayout | IdxLayout;

const IDX_NAME = /^(train|t10k)-(images-idx3|labels-idx1)-ubyte(\.gz)?$/;

/** Folder names that make a split layout (`val` is read as the test split). */
const SPLIT_NAMES = new Set(["train", "val", "test"]);

interface Listing {
  directories: string[];
  files: string[];
}

/** The non-hidden folders and files of a directory, each sorted by code point. */
export async function listDirectory(directory: string): Promise<Listing> {
  const entries = await readdir(directory, { withFileTypes: true });
  const directories: string[] = [];
  const files: string[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith(".")) continue;
    let isDirectory = entry.isDirectory();
    // A link counts as what it points to; a dangling link counts as a file (unreadable later).
    if (entry.isSymbolicLink()) isDirectory = await isDirectoryOrFalse(join(directory, entry.name));
    (isDirectory ? directories : files).push(entry.name);
  }
  directories.sort(compareCodePoints);
  files.sort(compareCodePoints);
  return { directories, files };
}

async function isDirectoryOrFalse(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

export async function detectLayout(root: string): Promise<DatasetLayout> {
  await validateRootIsDirectory(root);
  const listing = await listDirectory(root);
  const idxNames = listing.files.filter((name) => IDX_NAME.test(name));
  if (idxNames.length > 0 && listing.directories.length > 0) {
    throw new UsageError(
      "dataset-mixed-layout",
      `${root} mixes idx files (${idxNames.join(", ")}) with folders (${listing.directories.slice(0, 5).join(", ")}); expected either an ImageFolder tree or idx files. Move one of them elsewhere.`,
    );
  }
  if (idxNames.length > 0) return { kind: "idx", root, files: idxFilesOf(root, idxNames) };
  return imageFolderLayout(root, listing);
}

async function validateRootIsDirectory(root: string): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(root)).isDirectory();
  } catch (error) {
    throw new UsageError(
      "dataset-not-found",
      `No dataset at ${root}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (!isDirectory) {
    throw new UsageError(
      "dataset-not-found",
      `${root} is a file; expected a dataset folder (ImageFolder tree or idx files).`,
    );
  }
}

function idxFilesOf(root: string, names: string[]): Partial<Record<Split, IdxFiles>> {
  const files: Partial<Record<Split, IdxFiles>> = {};
  for (const [prefix, split] of [
    ["train", "train"],
    ["t10k", "test"],
  ] as const) {
    const images = pickOne(root, names, `${prefix}-images-idx3-ubyte`);
    const labels = pickOne(root, names, `${prefix}-labels-idx1-ubyte`);
    if (images === undefined && labels === undefined) continue;
    if (images === undefined || labels === undefined) {
      throw new UsageError(
        "dataset-idx-incomplete",
        `${root} has ${images ?? labels} but not its ${images === undefined ? "images" : "labels"} file (${prefix}-${images === undefined ? "images-idx3" : "labels-idx1"}-ubyte[.gz]).`,
      );
    }
    files[split] = { images, labels };
  }
  return files;
}

function pickOne(root: string, names: string[], stem: string): string | undefined {
  const found = names.filter((name) => name === stem || name === `${stem}.gz`);
  if (found.length > 1) {
    throw new UsageError(
      "dataset-idx-ambiguous",
      `${root} holds both ${found.join(" and ")}; keep one of them.`,
    );
  }
  return found[0];
}

async function imageFolderLayout(root: string, listing: Listing): Promise<ImageFolderLayout> {
  const names = new Set(listing.directories);
  const testName =
    names.has("val") && names.has("test")
      ? "both"
      : names.has("val")
        ? "val"
        : names.has("test")
          ? "test"
          : undefined;
  if (!names.has("train") || testName === undefined) {
    validateNotSplitAlone(root, listing.directories);
    const classes = validateClasses(root, listing.directories);
    return {
      kind: "imagefolder",
      root,
      classes,
      splits: [{ split: "train", directory: root, prefix: "" }],
      ignoredFiles: listing.files,
    };
  }
  if (testName === "both") {
    throw new UsageError(
      "dataset-splits-ambiguous",
      `${root} holds both val/ and test/; expected one of them as the test split.`,
    );
  }
  const extra = listing.directories.filter((name) => name !== "train" && name !== testName);
  if (extra.length > 0) {
    throw new UsageError(
      "dataset-splits-ambiguous",
      `${root} holds train/ and ${testName}/ and also ${extra.join(", ")}; expected only the split folders (or only class folders).`,
    );
  }
  const trainClasses = validateClasses(
    join(root, "train"),
    (await listDirectory(join(root, "train"))).directories,
  );
  const testClasses = (await listDirectory(join(root, testName))).directories;
  const unknown = testClasses.filter((name) => !trainClasses.includes(name));
  if (unknown.length > 0) {
    throw new UsageError(
      "dataset-classes-mismatch",
      `${join(root, testName)} has class folders that train/ lacks: ${unknown.join(", ")}; expected the test classes to be among the training classes.`,
    );
  }
  return {
    kind: "imagefolder",
    root,
    classes: trainClasses,
    splits: [
      { split: "train", directory: join(root, "train"), prefix: "train/" },
      { split: "test", directory: join(root, testName), prefix: `${testName}/` },
    ],
    ignoredFiles: listing.files,
  };
}

/**
 * A root holding a split folder (train/, val/ or test/) without its pair is not a class folder
 * tree: train/ alone is a split without a test split, and train/ beside other folders would make
 * "train" a class.
 */
function validateNotSplitAlone(root: string, directories: string[]): void {
  const splits = directories.filter((name) => SPLIT_NAMES.has(name));
  if (splits.length === 0) return;
  const others = directories.filter((name) => !SPLIT_NAMES.has(name));
  const layouts = `expected an ImageFolder (${root}/<class>/<images>, at least 2 class folders) or the split folders train/ and val/ (or test/), each holding the class folders`;
  if (others.length === 0 && splits.length === 1) {
    const only = splits[0]!;
    throw new UsageError(
      "dataset-split-alone",
      `${root} holds only ${only}/, a split folder, and no class folders; ${layouts}. To use ${only}/ alone, give ${join(root, only)} as the dataset.`,
    );
  }
  const named = splits.map((name) => `${name}/`).join(" and ");
  if (others.length === 0) {
    throw new UsageError(
      "dataset-split-alone",
      `${root} holds the split folders ${named} but no train/; ${layouts}. Add train/, or give one split folder as the dataset.`,
    );
  }
  throw new UsageError(
    "dataset-split-alone",
    `${root} holds the split folder${splits.length > 1 ? "s" : ""} ${named} beside ${others.map((name) => `${name}/`).join(", ")}, which would be read as classes; ${layouts}. Move the other folders out, or give one split folder as the dataset.`,
  );
}

function validateClasses(directory: string, classes: string[]): string[] {
  if (classes.length < 2) {
    throw new UsageError(
      "dataset-too-few-classes",
      `${directory} has ${classes.length} class folder${classes.length === 1 ? "" : "s"}${classes.length ? ` (${classes[0]})` : ""}; expected at least 2 (one folder per class holding its images).`,
    );
  }
  return classes;
}

/**
 * The files of one class folder, recursively, as POSIX paths relative to it, in code-point order
 * of the full path (a folder sorts as its name followed by "/"). Memory grows with the files of
 * one class folder, not with the dataset.
 */
export async function listClassFolder(directory: string, relative = ""): Promise<string[]> {
  const { directories, files } = await listDirectory(directory);
  const items = [
    ...files.map((name) => ({ name, key: name, isDirectory: false })),
    ...directories.map((name) => ({ name, key: `${name}/`, isDirectory: true })),
  ].sort((a, b) => compareCodePoints(a.key, b.key));
  const paths: string[] = [];
  for (const item of items) {
    const path = relative + item.name;
    if (item.isDirectory)
      paths.push(...(await listClassFolder(join(directory, item.name), `${path}/`)));
    else paths.push(path);
  }
  return paths;
}

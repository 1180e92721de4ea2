/**
 * The manifest file format `taggants.manifest/1` (docs/ARCHITECTURE.md, "Manifests"): a summary
 * JSON file and an entries JSON-lines file whose SHA-256 is the dataset's root hash. The root
 * hash is the dataset identity from which keys and the signing set are derived, and it is bound
 * into the commitment (METHOD.md, Publication).
 */
import { z } from "zod";

export const MANIFEST_SCHEMA = "taggants.manifest/1";

export type Split = "train" | "test";
/** Splits in the order their entries appear in the entries file. */
export const SPLITS: readonly Split[] = ["train", "test"];

export type Layout = "imagefolder" | "idx";

export type Container = "png" | "jpeg" | "webp" | "idx";
export type Mode = "gray" | "gray-alpha" | "rgb" | "rgba" | "cmyk";

/** One line of the entries file. Exactly one of `path` (ImageFolder) and `index` (idx) is set. */
export interface ManifestEntry {
  split: Split;
  path?: string;
  index?: number;
  /** Class index (position in the summary's `classes`). */
  label: number;
  /** Bytes of the file, or for idx the image's pixel byte count. */
  size: number;
  /** Hex SHA-256 of the file's bytes, or for idx of the image's raw pixel bytes. */
  sha256: string;
}

/** The JSON text of one entries line: keys in the documented order, no spaces. */
export function formatEntryLine(entry: ManifestEntry): string {
  const where =
    entry.path !== undefined ? `"path":${JSON.stringify(entry.path)}` : `"index":${entry.index}`;
  return `{"split":"${entry.split}",${where},"label":${entry.label},"size":${entry.size},"sha256":"${entry.sha256}"}\n`;
}

const SplitSchema = z.enum(["train", "test"]);
const hexHash = z.string().regex(/^[0-9a-f]{64}$/);

export const EntrySchema = z
  .object({
    split: SplitSchema,
    path: z.string().min(1).optional(),
    index: z.number().int().nonnegative().optional(),
    label: z.number().int().nonnegative(),
    size: z.number().int().nonnegative(),
    sha256: hexHash,
  })
  .refine((entry) => (entry.path === undefined) !== (entry.index === undefined), {
    message: "an entry has exactly one of path and index",
  });

const SplitSummarySchema = z.object({
  count: z.number().int().nonnegative(),
  /** Images per class index. */
  class_counts: z.array(z.number().int().nonnegative()),
});

const RangeSchema = z.object({ min: z.number().int(), max: z.number().int() });

export const FormatsSchema = z.object({
  /** Images per container: png, jpeg, webp, idx. */
  containers: z.record(z.string(), z.number().int()),
  /** Images per pixel mode: gray, gray-alpha, rgb, rgba, cmyk. */
  modes: z.record(z.string(), z.number().int()),
  /** Images per "WIDTHxHEIGHT", for the 32 most common sizes. */
  sizes: z.record(z.string(), z.number().int()),
  /** Number of distinct sizes (may exceed the sizes listed). */
  distinct_sizes: z.number().int(),
  width: RangeSchema,
  height: RangeSchema,
  /** The most channels of any image after decoding (1 gray, 3 RGB, 4 with alpha). */
  max_channels: z.number().int(),
});

const IdxFilesSchema = z.object({ images: z.string(), labels: z.string() });

export const SummarySchema = z.object({
  schema: z.literal(MANIFEST_SCHEMA),
  layout: z.enum(["imagefolder", "idx"]),
  classes: z.array(z.string()).min(2),
  splits: z.object({ train: SplitSummarySchema.optional(), test: SplitSummarySchema.optional() }),
  formats: FormatsSchema,
  entries: z.string(),
  root_hash: hexHash,
  idx: z.object({ train: IdxFilesSchema.optional(), test: IdxFilesSchema.optional() }).optional(),
  created_by: z.string(),
});

export type ManifestFile = z.infer<typeof SummarySchema>;
export type ManifestFormats = z.infer<typeof FormatsSchema>;

/** A loaded manifest summary, with the paths it was read from. */
export interface ManifestSummary extends ManifestFile {
  /** Absolute path of the summary `.json` file. */
  summaryPath: string;
  /** Absolute path of the entries `.jsonl` file. */
  entriesPath: string;
}

/** Compare strings by Unicode code point (the order of Python's `sorted` and of UTF-8 bytes). */
export function compareCodePoints(a: string, b: string): number {
  // UTF-16 code-unit order equals code-point order unless a surrogate pair is involved.
  if (!SURROGATE.test(a) && !SURROGATE.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

const SURROGATE = /[\uD800-\uDFFF]/;

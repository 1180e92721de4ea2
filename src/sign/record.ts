/**
 * The private signing record (method, "Publication"): what the dataset owner keeps to prove her
 * claim later and to reproduce or resume the signing — a reference to the key file (never the
 * secret itself), the signing indices per key, the parameters and seeds, the surrogate
 * checkpoints' hashes, tool versions and each key's final gradient cosine. It is written
 * atomically with mode 0600 and must never be published: the signing indices and cosines tell
 * which files carry taggants.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { UsageError } from "../errors.ts";
import { parseJsonFile } from "../invalid-file.ts";
import { writeFileAtomic } from "../manifest/atomic.ts";

export const SIGNING_RECORD_SCHEMA = "taggants.signing-record/1";

/** Crafting parameters, with their units in the names (ε in 1/255). */
export const SigningParamsSchema = z.object({
  key_count: z.number().int().positive(),
  key_resolution: z.number().int().positive(),
  /** Channels of the keys and taggants (the surrogate's input channels). */
  channels: z.number().int().positive(),
  eps_255: z.number().positive().max(255),
  budget: z.union([z.object({ fraction: z.number() }), z.object({ per_key: z.number().int() })]),
  images_per_key: z.number().int().positive(),
  steps: z.number().int().nonnegative(),
  restarts: z.number().int().positive(),
  step_size: z.number().positive(),
  aug_draws: z.number().int().positive(),
  perceptual: z.string(),
  perceptual_weight: z.number().nonnegative(),
  chunk_size: z.number().int().positive(),
});
export type SigningParams = z.infer<typeof SigningParamsSchema>;

const hexHash = z.string().regex(/^[0-9a-f]{64}$/);

export const SigningRecordSchema = z.object({
  schema: z.literal(SIGNING_RECORD_SCHEMA),
  created_at: z.string(),
  /** Hash of everything that determines the signed dataset; equal fingerprints skip work. */
  fingerprint: hexHash,
  key_file: z.string(),
  commitment: hexHash,
  original: z.object({ root: z.string(), manifest: z.string(), root_hash: hexHash }),
  signed: z.object({
    root: z.string(),
    manifest: z.string(),
    root_hash: hexHash,
    commitment_file: z.string(),
  }),
  params: SigningParamsSchema,
  seeds: z.object({ craft: z.number().int() }),
  surrogates: z.array(z.object({ path: z.string(), sha256: hexHash })),
  signing_indices: z.array(z.array(z.number().int().nonnegative())),
  /** Final cosine between each key's gradient and its signing images' summed gradient. */
  cosine: z.array(z.number()),
  objective: z.number(),
  /**
   * How the written files kept the crafted taggants: for JPEG signing images, the mean pixel-space
   * cosine between the taggant as written and as crafted (null without JPEG; lossless
   * containers keep it exactly).
   */
  written: z.object({
    containers: z.record(z.string(), z.number().int()),
    jpeg_retention_mean: z.number().nullable(),
    /**
     * Per-key gradient cosine of the signing images as crafted (8-bit) and as written, measured
     * on the surrogates; null when no signing image is a JPEG (lossless writes change nothing).
     */
    jpeg_cosine: z
      .object({ crafted: z.array(z.number()), written: z.array(z.number()) })
      .nullable(),
    psnr_mean: z.number().nullable(),
    linf_255_max: z.number(),
  }),
  tool_versions: z.record(z.string(), z.string()),
  timings_s: z.record(z.string(), z.number()),
});
export type SigningRecord = z.infer<typeof SigningRecordSchema>;

export async function saveSigningRecord(path: string, record: SigningRecord): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(record, null, 2) + "\n", { mode: 0o600 });
}

export async function loadSigningRecord(path: string): Promise<SigningRecord> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new UsageError(
      "signing-record-unreadable",
      `Cannot read the signing record ${path}: ${(error as Error).message}. Give the --record path used when signing.`,
      { cause: error },
    );
  }
  return parseJsonFile(text, SigningRecordSchema, {
    code: "signing-record-invalid",
    file: path,
    expected: `a taggants signing record (${SIGNING_RECORD_SCHEMA})`,
  });
}

/** SHA-256 of a canonical JSON encoding (object keys sorted) of `value`. */
export function fingerprintOf(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value)).digest("hex");
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

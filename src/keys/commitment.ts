/**
 * The public commitment to the keys (METHOD.md, Signing, step 1 and Publication): SHA-256 over a
 * canonical binary encoding of the keys and of both datasets' manifest root hashes. The owner
 * publishes it beside the signed dataset before any detection, so keys cannot be invented after
 * looking at a suspect model. The encoding (scheme version 1, see docs/KEYS.md), all integers
 * unsigned 32-bit big-endian:
 *
 *   "taggants/commitment" (19 ASCII bytes) ‖ version ‖ K ‖ resolution ‖ channels ‖ C
 *   ‖ for each key in index order: image bytes (CHW, channels·resolution² bytes) ‖ label
 *   ‖ original manifest root hash (32 bytes) ‖ signed manifest root hash (32 bytes)
 *
 * The key images carry 8·channels·resolution² secret bits each, so the hash reveals nothing
 * about them; the file itself holds only public parameters and hashes.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { CheckFailedError, UsageError } from "../errors.ts";
import { parseJsonFile } from "../invalid-file.ts";
import { writeFileAtomic } from "../manifest/atomic.ts";
import { createdBy } from "../manifest/version.ts";
import { validateKeyParams, type Key, type KeyParams } from "./derive.ts";

export const COMMITMENT_SCHEME_VERSION = 1;
export const COMMITMENT_SCHEMA = "taggants.commitment/1";
const DOMAIN = "taggants/commitment";
const HEX_HASH = /^[0-9a-f]{64}$/;

export interface CommitmentInput {
  params: KeyParams;
  keys: readonly Key[];
  /** Root hash of the original dataset's manifest (hex). */
  originalRoot: string;
  /** Root hash of the signed dataset's manifest (hex). */
  signedRoot: string;
}

/** What the public commitment file holds (camelCase here, snake_case in the file). */
export interface CommitmentRecord {
  schema: typeof COMMITMENT_SCHEMA;
  commitment: string;
  schemeVersion: number;
  keyCount: number;
  resolution: number;
  channels: number;
  classes: number;
  datasetId: string;
  originalRoot: string;
  signedRoot: string;
  createdBy: string;
}

function uint32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value);
  return buffer;
}

function rootBytes(name: string, hex: string): Buffer {
  if (!HEX_HASH.test(hex)) {
    throw new UsageError(
      "commitment-root-invalid",
      `The ${name} manifest root hash must be 64 lowercase hex digits; received "${hex}".`,
    );
  }
  return Buffer.from(hex, "hex");
}

/** Hex SHA-256 of the canonical encoding above. */
export function computeCommitment(input: CommitmentInput): string {
  const { params, keys } = input;
  validateKeyParams(params);
  const imageBytes = params.channels * params.resolution * params.resolution;
  if (keys.length !== params.count) {
    throw new UsageError(
      "commitment-keys-invalid",
      `Expected ${params.count} keys for the commitment; received ${keys.length}.`,
    );
  }
  const hash = createHash("sha256");
  hash.update(Buffer.from(DOMAIN, "ascii"));
  for (const value of [
    COMMITMENT_SCHEME_VERSION,
    params.count,
    params.resolution,
    params.channels,
    params.classes,
  ]) {
    hash.update(uint32(value));
  }
  keys.forEach((key, position) => {
    validateKey({ key, position, imageBytes, classes: params.classes });
    hash.update(key.image);
    hash.update(uint32(key.label));
  });
  hash.update(rootBytes("original", input.originalRoot));
  hash.update(rootBytes("signed", input.signedRoot));
  return hash.digest("hex");
}

function validateKey(args: {
  key: Key;
  position: number;
  imageBytes: number;
  classes: number;
}): void {
  const { key, position, imageBytes, classes } = args;
  const ok =
    key.index === position &&
    key.image.length === imageBytes &&
    Number.isInteger(key.label) &&
    key.label >= 0 &&
    key.label < classes;
  if (!ok) {
    throw new UsageError(
      "commitment-keys-invalid",
      `Key at position ${position} does not fit the parameters: expected index ${position}, ${imageBytes} image bytes and a label in [0, ${classes}); received index ${key.index}, ${key.image.length} bytes, label ${key.label}.`,
    );
  }
}

/** Compute the commitment and write the public commitment file (atomically). */
export async function saveCommitment(
  path: string,
  input: CommitmentInput,
): Promise<CommitmentRecord> {
  const record: CommitmentRecord = {
    schema: COMMITMENT_SCHEMA,
    commitment: computeCommitment(input),
    schemeVersion: COMMITMENT_SCHEME_VERSION,
    keyCount: input.params.count,
    resolution: input.params.resolution,
    channels: input.params.channels,
    classes: input.params.classes,
    datasetId: input.params.datasetId,
    originalRoot: input.originalRoot,
    signedRoot: input.signedRoot,
    createdBy: createdBy(),
  };
  await writeFileAtomic(path, JSON.stringify(commitmentJson(record), null, 2) + "\n");
  return record;
}

/** A commitment record in its public JSON form: the commitment file's snake_case fields. */
export function commitmentJson(record: CommitmentRecord) {
  return {
    schema: record.schema,
    commitment: record.commitment,
    scheme_version: record.schemeVersion,
    key_count: record.keyCount,
    resolution: record.resolution,
    channels: record.channels,
    classes: record.classes,
    dataset_id: record.datasetId,
    original_root: record.originalRoot,
    signed_root: record.signedRoot,
    created_by: record.createdBy,
  };
}

const hexHash = z.string().regex(HEX_HASH);
const positiveInt = z.number().int().positive();
const CommitmentFile = z.object({
  schema: z.literal(COMMITMENT_SCHEMA),
  commitment: hexHash,
  scheme_version: z.literal(COMMITMENT_SCHEME_VERSION),
  key_count: positiveInt,
  resolution: positiveInt,
  channels: positiveInt,
  classes: positiveInt,
  dataset_id: z.string().min(1),
  original_root: hexHash,
  signed_root: hexHash,
  created_by: z.string(),
});

export async function loadCommitment(path: string): Promise<CommitmentRecord> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new UsageError(
      "commitment-file-invalid",
      `Cannot read the commitment file ${path}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const parsed = parseJsonFile(text, CommitmentFile, {
    code: "commitment-file-invalid",
    file: path,
    expected: `a taggants commitment file (${COMMITMENT_SCHEMA})`,
  });
  return {
    schema: parsed.schema,
    commitment: parsed.commitment,
    schemeVersion: parsed.scheme_version,
    keyCount: parsed.key_count,
    resolution: parsed.resolution,
    channels: parsed.channels,
    classes: parsed.classes,
    datasetId: parsed.dataset_id,
    originalRoot: parsed.original_root,
    signedRoot: parsed.signed_root,
    createdBy: parsed.created_by,
  };
}

/** The key parameters a commitment record was made with. */
export function keyParamsOf(record: CommitmentRecord): KeyParams {
  return {
    count: record.keyCount,
    resolution: record.resolution,
    channels: record.channels,
    classes: record.classes,
    datasetId: record.datasetId,
  };
}

/**
 * Throw CheckFailedError unless `keys` reproduce the published commitment. Detection calls this
 * before querying any suspect model.
 */
export function validateKeysAgainstCommitment(args: {
  record: CommitmentRecord;
  keys: readonly Key[];
}): void {
  const { record, keys } = args;
  let recomputed: string;
  try {
    recomputed = computeCommitment({
      params: keyParamsOf(record),
      keys,
      originalRoot: record.originalRoot,
      signedRoot: record.signedRoot,
    });
  } catch (error) {
    throw new CheckFailedError(
      "commitment-mismatch",
      `The keys do not match the commitment ${record.commitment}: ${(error as Error).message} Use the key file and dataset that were used for signing.`,
      { cause: error },
    );
  }
  if (recomputed !== record.commitment) {
    throw new CheckFailedError(
      "commitment-mismatch",
      `The keys do not reproduce the published commitment: expected ${record.commitment}, the keys give ${recomputed}. Detection refuses to run with keys other than the committed ones; use the key file and dataset that were used for signing.`,
    );
  }
}

/**
 * Key derivation (METHOD.md, Signing, step 1): K keys, each a uniform-noise key image and a key
 * label drawn uniformly and independently over the C classes, all derived from the key secret and
 * the dataset identity so that the same inputs give bit-identical keys everywhere.
 *
 * Two keyed streams (see random.ts), read in key order:
 *   images: context "key-images/<datasetId>/<channels>x<resolution>x<resolution>"; key i's image
 *           is bytes [i·L, (i+1)·L) of the stream, L = channels·resolution², laid out CHW;
 *   labels: context "key-labels/<datasetId>"; key i's label is the (i+1)-th uniformInt(C) draw.
 * Deriving more keys therefore extends, never changes, the first ones. The dataset identity is
 * the root hash of the original dataset's manifest.
 *
 * The worker upsamples key images (nearest neighbour) to the suspect model's input size.
 */
import { UsageError } from "../errors.ts";
import { KeyedStream } from "./random.ts";

export interface KeyParams {
  /** K, the number of keys. */
  count: number;
  /** Side of the square key image in pixels, before nearest-neighbour upsampling. */
  resolution: number;
  /** The dataset's channels: 1 (gray) or 3 (RGB). */
  channels: number;
  /** C, the number of classes. */
  classes: number;
  /** The original dataset's manifest root hash (hex). */
  datasetId: string;
}

export interface Key {
  index: number;
  /** uint8, channels × resolution × resolution (CHW). */
  image: Uint8Array;
  /** Class index in [0, C). */
  label: number;
}

/** Key image side used for images of at least 256 pixels (the reference's 64×64). */
export const MAX_KEY_RESOLUTION = 64;

/**
 * The default key image side for a dataset whose images are `imageSize` pixels on their short
 * side: a quarter of it, at least 1 and at most 64, so each noise pixel covers at least 4×4 image
 * pixels and survives resizing (28 → 7 for Fashion-MNIST, 32 → 8, 256 and up → 64).
 */
export function defaultKeyResolution(imageSize: number): number {
  if (!Number.isInteger(imageSize) || imageSize < 1) {
    throw new UsageError(
      "key-params-invalid",
      `The image size must be a positive integer; received ${imageSize}.`,
    );
  }
  return Math.min(MAX_KEY_RESOLUTION, Math.max(1, Math.floor(imageSize / 4)));
}

export function validateKeyParams(params: KeyParams): void {
  const problems: string[] = [];
  const isInt = (value: number, min: number, max: number): boolean =>
    Number.isInteger(value) && value >= min && value <= max;
  if (!isInt(params.count, 1, 1_000_000_000))
    problems.push(`count ${params.count} (expected an integer >= 1)`);
  if (!isInt(params.resolution, 1, 4096)) {
    problems.push(`resolution ${params.resolution} (expected an integer from 1 to 4096)`);
  }
  if (params.channels !== 1 && params.channels !== 3) {
    problems.push(`channels ${params.channels} (expected 1 or 3)`);
  }
  if (!isInt(params.classes, 2, 2 ** 32 - 1))
    problems.push(`classes ${params.classes} (expected an integer >= 2)`);
  if (typeof params.datasetId !== "string" || params.datasetId.length === 0) {
    problems.push("datasetId (expected the original manifest's root hash)");
  }
  if (problems.length > 0) {
    throw new UsageError("key-params-invalid", `Invalid key parameters: ${problems.join("; ")}.`);
  }
}

/** The K key labels alone (the same draws as `deriveKeys`), each uniform over [0, classes). */
export function deriveKeyLabels(
  secret: Uint8Array,
  params: Pick<KeyParams, "count" | "classes" | "datasetId">,
): Uint32Array {
  const stream = new KeyedStream(secret, `key-labels/${params.datasetId}`);
  const labels = new Uint32Array(params.count);
  for (let i = 0; i < params.count; i++) labels[i] = stream.uniformInt(params.classes);
  return labels;
}

/** Derive the K keys for a dataset from the key secret. */
export function deriveKeys(secret: Uint8Array, params: KeyParams): Key[] {
  validateKeyParams(params);
  const { count, resolution, channels, datasetId } = params;
  const imageBytes = channels * resolution * resolution;
  const images = new KeyedStream(
    secret,
    `key-images/${datasetId}/${channels}x${resolution}x${resolution}`,
  ).bytes(count * imageBytes);
  const labels = deriveKeyLabels(secret, params);
  return Array.from({ length: count }, (_, index) => ({
    index,
    image: images.slice(index * imageBytes, (index + 1) * imageBytes),
    label: labels[index]!,
  }));
}

/**
 * Small real image datasets for the signing tests: an ImageFolder tree of gray PNG, RGB PNG and
 * JPEG files cut from Fashion-MNIST, and an idx (gzip) copy of its first images.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import sharp from "sharp";

export const FASHION_MNIST =
  process.env.TAGGANTS_FASHION_MNIST ?? "/usr/share/datasets/fashion-mnist";

export interface IdxSample {
  images: Uint8Array; // [n, 28, 28]
  labels: Uint8Array; // [n]
  count: number;
}

/** The first `count` training images and labels of Fashion-MNIST. */
export async function loadFashionSample(count: number): Promise<IdxSample> {
  const images = gunzipSync(await readFile(join(FASHION_MNIST, "train-images-idx3-ubyte.gz")));
  const labels = gunzipSync(await readFile(join(FASHION_MNIST, "train-labels-idx1-ubyte.gz")));
  return {
    images: new Uint8Array(images.subarray(16, 16 + count * 784)),
    labels: new Uint8Array(labels.subarray(8, 8 + count)),
    count,
  };
}

/** An idx dataset (gzip, as published) holding the first `count` Fashion-MNIST images. */
export async function writeIdxDataset(root: string, sample: IdxSample): Promise<void> {
  await mkdir(root, { recursive: true });
  const header = Buffer.alloc(16);
  header.writeUInt32BE(0x803, 0);
  header.writeUInt32BE(sample.count, 4);
  header.writeUInt32BE(28, 8);
  header.writeUInt32BE(28, 12);
  const labelHeader = Buffer.alloc(8);
  labelHeader.writeUInt32BE(0x801, 0);
  labelHeader.writeUInt32BE(sample.count, 4);
  await writeFile(
    join(root, "train-images-idx3-ubyte.gz"),
    gzipSync(Buffer.concat([header, sample.images]), { level: 9 }),
  );
  await writeFile(
    join(root, "train-labels-idx1-ubyte.gz"),
    gzipSync(Buffer.concat([labelHeader, sample.labels])),
  );
}

export type FixtureKind = "png-gray" | "png-rgb" | "jpeg-rgb" | "jpeg-gray";

/** One Fashion-MNIST image as gray or RGB (the RGB copy tints the image per channel). */
export async function encodeFixture(pixels: Uint8Array, kind: FixtureKind): Promise<Buffer> {
  const gray = kind.endsWith("gray");
  const raw = gray ? pixels : tint(pixels);
  let image = sharp(raw, { raw: { width: 28, height: 28, channels: gray ? 1 : 3 } });
  if (gray) image = image.toColourspace("b-w");
  return kind.startsWith("png") ? image.png().toBuffer() : image.jpeg({ quality: 83 }).toBuffer();
}

function tint(gray: Uint8Array): Uint8Array {
  const out = new Uint8Array(gray.length * 3);
  for (let i = 0; i < gray.length; i++) {
    out[3 * i] = gray[i]!;
    out[3 * i + 1] = Math.round(gray[i]! * 0.7);
    out[3 * i + 2] = 255 - gray[i]!;
  }
  return out;
}

/**
 * An ImageFolder tree `train/<class>/<n>.<ext>` and `test/<class>/…` plus a README, with every
 * image of `kind`. Returns the training paths in manifest order (sorted by path).
 */
export async function writeImageFolder(options: {
  root: string;
  sample: IdxSample;
  kind: FixtureKind;
  testCount?: number;
}): Promise<string[]> {
  const { root, sample, kind } = options;
  const testCount = options.testCount ?? 2;
  const extension = kind.startsWith("png") ? "png" : "jpg";
  const trainPaths: string[] = [];
  for (let i = 0; i < sample.count; i++) {
    const split = i < testCount ? "test" : "train";
    const directory = join(root, split, `class${sample.labels[i]}`);
    await mkdir(directory, { recursive: true });
    const name = `${String(i).padStart(4, "0")}.${extension}`;
    await writeFile(join(directory, name), await encodeFixture(pixelsOf(sample, i), kind));
    if (split === "train") trainPaths.push(`train/class${sample.labels[i]}/${name}`);
  }
  await writeFile(join(root, "README.txt"), "A small sample of Fashion-MNIST for tests.\n");
  return trainPaths.sort();
}

export function pixelsOf(sample: IdxSample, index: number): Uint8Array {
  return sample.images.slice(index * 784, (index + 1) * 784);
}

/** Add a taggant-like ±ε pattern, clipped to [0, 255] (a stand-in for crafted pixels). */
export function perturb(pixels: Uint8Array, eps255: number, seed: number): Uint8Array {
  return pixels.map((value, i) => {
    const sign = ((i * 2654435761 + seed * 97) >>> 7) % 2 === 0 ? 1 : -1;
    return Math.min(255, Math.max(0, value + sign * eps255));
  });
}

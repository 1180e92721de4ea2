/**
 * Regenerates the small real samples under test/fixtures/ from Fashion-MNIST (found like the
 * rest of taggants finds it: $TAGGANTS_DATA, Debian's package, or the user cache):
 *   fashion-mnist-idx/  the first 300 training and 100 test images as gzip idx files;
 *   imagefolder/        train/ (8 per class) and test/ (2 per class) as gray PNGs;
 *   formats/            RGB and RGBA PNG, gray and RGB JPEG, RGB and RGBA WebP.
 * Run: node --import tsx scripts/make-fixtures.ts
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import sharp from "sharp";
import { resolveFashionMnist } from "../src/env/dataset.ts";
import { readIdxImages, readIdxLabels } from "../src/manifest/idx.ts";

const FIXTURES = new URL("../test/fixtures/", import.meta.url).pathname;
const CLASS_NAMES = [
  "T-shirt_top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle_boot",
];
const SIDE = 28;

function idxImagesFile(data: Uint8Array, count: number): Buffer {
  const header = Buffer.alloc(16);
  header.writeUInt32BE(0x803, 0);
  header.writeUInt32BE(count, 4);
  header.writeUInt32BE(SIDE, 8);
  header.writeUInt32BE(SIDE, 12);
  return Buffer.concat([header, data.subarray(0, count * SIDE * SIDE)]);
}

function idxLabelsFile(labels: Uint8Array, count: number): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(0x801, 0);
  header.writeUInt32BE(count, 4);
  return Buffer.concat([header, labels.subarray(0, count)]);
}

/** gzip without a timestamp or name, so regenerating gives the same bytes. */
const gzip = (bytes: Buffer): Buffer => gzipSync(bytes, { level: 9 });

async function writeIdx(source: string): Promise<void> {
  const out = join(FIXTURES, "fashion-mnist-idx");
  await mkdir(out, { recursive: true });
  for (const [prefix, count] of [
    ["train", 300],
    ["t10k", 100],
  ] as const) {
    const images = await readIdxImages(join(source, `${prefix}-images-idx3-ubyte.gz`));
    const labels = await readIdxLabels(join(source, `${prefix}-labels-idx1-ubyte.gz`));
    await writeFile(
      join(out, `${prefix}-images-idx3-ubyte.gz`),
      gzip(idxImagesFile(images.data, count)),
    );
    await writeFile(
      join(out, `${prefix}-labels-idx1-ubyte.gz`),
      gzip(idxLabelsFile(labels.labels, count)),
    );
  }
}

function imageAt(data: Uint8Array, index: number): Buffer {
  return Buffer.from(data.subarray(index * SIDE * SIDE, (index + 1) * SIDE * SIDE));
}

async function writeGrayPng(path: string, pixels: Buffer): Promise<void> {
  const png = await sharp(pixels, { raw: { width: SIDE, height: SIDE, channels: 1 } })
    .toColourspace("b-w")
    .png({ compressionLevel: 9 })
    .toBuffer();
  await writeFile(path, png);
}

/** The first `perClass` images of each class, starting the search at `start`. */
function pickPerClass(labels: Uint8Array, perClass: number): number[][] {
  const picked: number[][] = CLASS_NAMES.map(() => []);
  for (let i = 0; i < labels.length && picked.some((list) => list.length < perClass); i++) {
    const list = picked[labels[i]!]!;
    if (list.length < perClass) list.push(i);
  }
  return picked;
}

async function writeImageFolder(source: string): Promise<void> {
  for (const [split, prefix, perClass] of [
    ["train", "train", 8],
    ["test", "t10k", 2],
  ] as const) {
    const images = await readIdxImages(join(source, `${prefix}-images-idx3-ubyte.gz`));
    const labels = await readIdxLabels(join(source, `${prefix}-labels-idx1-ubyte.gz`));
    for (const [label, indices] of pickPerClass(labels.labels, perClass).entries()) {
      const folder = join(FIXTURES, "imagefolder", split, CLASS_NAMES[label]!);
      await mkdir(folder, { recursive: true });
      for (const index of indices) {
        await writeGrayPng(
          join(folder, `${String(index).padStart(5, "0")}.png`),
          imageAt(images.data, index),
        );
      }
    }
  }
}

/** Colour samples: three Fashion-MNIST images as R, G, B (and a fourth as alpha). */
async function writeFormats(source: string): Promise<void> {
  const images = await readIdxImages(join(source, "t10k-images-idx3-ubyte.gz"));
  const planes = [0, 1, 2, 3].map((i) => imageAt(images.data, i));
  const interleave = (channels: number): Buffer => {
    const out = Buffer.alloc(SIDE * SIDE * channels);
    for (let p = 0; p < SIDE * SIDE; p++) {
      for (let c = 0; c < channels; c++)
        out[p * channels + c] = c === 3 ? 64 + (planes[3]![p]! >> 1) : planes[c]![p]!;
    }
    return out;
  };
  const raw = (channels: number) =>
    sharp(interleave(channels), {
      raw: { width: SIDE, height: SIDE, channels: channels as 3 | 4 },
    });
  const out = join(FIXTURES, "formats");
  await mkdir(out, { recursive: true });
  await writeFile(join(out, "rgb.png"), await raw(3).png().toBuffer());
  await writeFile(join(out, "rgba.png"), await raw(4).png().toBuffer());
  await writeFile(join(out, "rgb.jpg"), await raw(3).jpeg({ quality: 90 }).toBuffer());
  await writeFile(
    join(out, "rgb-progressive.jpg"),
    await raw(3).jpeg({ quality: 90, progressive: true }).toBuffer(),
  );
  await writeFile(
    join(out, "gray.jpg"),
    await sharp(planes[0]!, { raw: { width: SIDE, height: SIDE, channels: 1 } })
      .toColourspace("b-w")
      .jpeg()
      .toBuffer(),
  );
  await writeFile(join(out, "rgb.webp"), await raw(3).webp({ quality: 90 }).toBuffer());
  await writeFile(join(out, "rgba.webp"), await raw(4).webp({ lossless: true }).toBuffer());
}

const source = resolveFashionMnist();
for (const folder of ["fashion-mnist-idx", "imagefolder", "formats"]) {
  await rm(join(FIXTURES, folder), { recursive: true, force: true });
}
await writeIdx(source);
await writeImageFolder(source);
await writeFormats(source);
console.error(`fixtures written to ${FIXTURES}`);

/**
 * The experiment's figure, `taggants.png` (issue 6, step 7; the paper's Figure 2): a few signing
 * images, their taggants amplified ×10 around mid-gray, and the signed images, read back from the
 * original and the signed dataset on disk; below them, the distribution of the PSNR of every
 * signed image against its original. Drawn with sharp (tiles as raw pixels, labels and the
 * histogram as SVG).
 *
 * The figure shows which images carry taggants: it belongs to the private experiment report,
 * never beside the published dataset.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import sharp, { type OverlayOptions } from "sharp";
import { readEntries, readIdxImages, type ManifestSummary } from "../manifest/index.ts";
import { decodeImage, type PlanarImage } from "../sign/image-codec.ts";

export interface SigningPair {
  index: number;
  original: PlanarImage;
  signed: PlanarImage;
}

const TILE = 112;
const GAP = 8;
const LABEL_WIDTH = 150;
const HISTOGRAM_HEIGHT = 220;
const BINS = 20;
/** Taggant amplification in the figure. */
const AMPLIFY = 10;

/** Read the original and signed pixels of training images `indices` from disk. */
export async function loadSigningPairs(options: {
  manifest: ManifestSummary;
  originalRoot: string;
  signedRoot: string;
  indices: readonly number[];
  channels: number;
}): Promise<SigningPair[]> {
  const { manifest, indices, channels } = options;
  if (manifest.layout === "idx") {
    const file = manifest.idx!.train!.images;
    const original = await readIdxImages(join(options.originalRoot, file));
    const signed = await readIdxImages(join(options.signedRoot, file));
    const size = original.height * original.width;
    const plane = (data: Uint8Array, index: number): PlanarImage => ({
      data: data.slice(index * size, (index + 1) * size),
      channels: 1,
      height: original.height,
      width: original.width,
    });
    return indices.map((index) => ({
      index,
      original: plane(original.data, index),
      signed: plane(signed.data, index),
    }));
  }
  const wanted = new Set(indices);
  const paths = new Map<number, string>();
  let position = 0;
  for await (const entry of readEntries(manifest.summaryPath, { split: "train" })) {
    if (wanted.has(position)) paths.set(position, entry.path!);
    position += 1;
  }
  const pairs: SigningPair[] = [];
  for (const index of indices) {
    const path = paths.get(index)!;
    pairs.push({
      index,
      original: await decodeImage(
        new Uint8Array(await readFile(join(options.originalRoot, path))),
        channels,
      ),
      signed: await decodeImage(
        new Uint8Array(await readFile(join(options.signedRoot, path))),
        channels,
      ),
    });
  }
  return pairs;
}

/** PSNR (dB) of a signed image against its original; Infinity when identical. */
export function computePsnr(original: PlanarImage, signed: PlanarImage): number {
  let squared = 0;
  for (let i = 0; i < original.data.length; i++) {
    const difference = signed.data[i]! - original.data[i]!;
    squared += difference * difference;
  }
  const mse = squared / original.data.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

/** The taggant amplified ×10 around mid-gray (128), clipped to [0, 255]. */
export function amplifiedTaggant(pair: SigningPair): PlanarImage {
  const data = pair.signed.data.map((value, i) =>
    Math.max(0, Math.min(255, 128 + AMPLIFY * (value - pair.original.data[i]!))),
  );
  return { ...pair.signed, data };
}

/** Write the figure: `shown` pairs in columns, and the histogram of `psnr` (all signing images). */
export async function saveTaggantFigure(options: {
  path: string;
  shown: readonly SigningPair[];
  psnr: readonly number[];
  title: string;
}): Promise<void> {
  const { shown } = options;
  const gridWidth = shown.length * (TILE + GAP) - GAP;
  const width = LABEL_WIDTH + gridWidth + 2 * GAP;
  const gridTop = 40;
  const histogramTop = gridTop + 3 * (TILE + GAP) + 16;
  const height = histogramTop + HISTOGRAM_HEIGHT + GAP;
  const rows: Array<{ label: string; image: (pair: SigningPair) => PlanarImage }> = [
    { label: "signing image", image: (pair) => pair.original },
    { label: `taggant ×${AMPLIFY}`, image: amplifiedTaggant },
    { label: "signed image", image: (pair) => pair.signed },
  ];
  const tiles: OverlayOptions[] = [];
  for (const [row, { image }] of rows.entries()) {
    for (const [column, pair] of shown.entries()) {
      tiles.push({
        input: await tilePng(image(pair)),
        left: LABEL_WIDTH + GAP + column * (TILE + GAP),
        top: gridTop + row * (TILE + GAP),
      });
    }
  }
  const svg = overlaySvg({
    width,
    height,
    title: options.title,
    rows: rows.map((row) => row.label),
    gridTop,
    histogramTop,
    psnr: options.psnr,
    gridWidth,
  });
  await sharp({ create: { width, height, channels: 3, background: "#ffffff" } })
    .composite([...tiles, { input: Buffer.from(svg), left: 0, top: 0 }])
    .png()
    .toFile(options.path);
}

async function tilePng(image: PlanarImage): Promise<Buffer> {
  const { channels, height, width } = image;
  const interleaved = new Uint8Array(image.data.length);
  const plane = height * width;
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < plane; i++) interleaved[i * channels + c] = image.data[c * plane + i]!;
  }
  let tile = sharp(interleaved, { raw: { width, height, channels: channels as 1 | 3 } });
  if (channels === 1) tile = tile.toColourspace("b-w");
  return tile.resize(TILE, TILE, { kernel: "nearest", fit: "fill" }).png().toBuffer();
}

function overlaySvg(options: {
  width: number;
  height: number;
  title: string;
  rows: string[];
  gridTop: number;
  histogramTop: number;
  psnr: readonly number[];
  gridWidth: number;
}): string {
  const text = (x: number, y: number, value: string, extra = ""): string =>
    `<text x="${x}" y="${y}" font-family="DejaVu Sans, Arial, sans-serif" font-size="13" ${extra}>${escapeXml(value)}</text>`;
  const parts = [text(GAP, 24, options.title, 'font-weight="bold"')];
  options.rows.forEach((label, row) =>
    parts.push(text(GAP, options.gridTop + row * (TILE + GAP) + TILE / 2 + 4, label)),
  );
  parts.push(
    histogramSvg({
      left: LABEL_WIDTH + GAP,
      top: options.histogramTop,
      width: Math.max(options.gridWidth, 240),
      psnr: options.psnr,
      text,
    }),
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${options.width}" height="${options.height}">${parts.join("")}</svg>`;
}

function histogramSvg(options: {
  left: number;
  top: number;
  width: number;
  psnr: readonly number[];
  text: (x: number, y: number, value: string, extra?: string) => string;
}): string {
  const { left, top, text } = options;
  const finite = options.psnr.filter(Number.isFinite);
  const plotHeight = HISTOGRAM_HEIGHT - 60;
  const parts = [text(GAP, top + 14, "PSNR of the"), text(GAP, top + 30, "signed images (dB)")];
  if (finite.length === 0)
    return parts.join("") + text(left, top + 40, "no signed image differs from its original");
  const low = Math.floor(Math.min(...finite));
  const high = Math.max(low + 1, Math.ceil(Math.max(...finite)));
  const counts = new Array<number>(BINS).fill(0);
  for (const value of finite)
    counts[Math.min(BINS - 1, Math.floor(((value - low) / (high - low)) * BINS))]! += 1;
  const tallest = Math.max(...counts);
  const barWidth = options.width / BINS;
  const base = top + 20 + plotHeight;
  counts.forEach((count, bin) => {
    const barHeight = (count / tallest) * plotHeight;
    parts.push(
      `<rect x="${(left + bin * barWidth).toFixed(1)}" y="${(base - barHeight).toFixed(1)}" width="${(barWidth - 1).toFixed(1)}" height="${barHeight.toFixed(1)}" fill="#4c72b0"/>`,
    );
  });
  parts.push(
    `<line x1="${left}" y1="${base}" x2="${left + options.width}" y2="${base}" stroke="#000"/>`,
  );
  parts.push(
    text(left, base + 18, `${low} dB`),
    text(left + options.width - 50, base + 18, `${high} dB`),
  );
  const mean = finite.reduce((a, b) => a + b, 0) / finite.length;
  parts.push(
    text(
      left,
      base + 36,
      `${finite.length} images, mean ${mean.toFixed(1)} dB, tallest bar ${tallest}`,
    ),
  );
  return parts.join("");
}

function escapeXml(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * Reading and writing single image files for the signed dataset (method, "Quantisation and
 * format"): a signed image is written in its original container with the original's settings —
 * PNG stays PNG with the same bit depth, colour type, interlace and ancillary chunks; JPEG is
 * re-encoded at the original's estimated quality, subsampling and scan mode with the original's
 * metadata segments; lossless WebP stays lossless. Formats that cannot be written faithfully
 * (16-bit or palette PNG, lossy or extended WebP, CMYK JPEG) are not eligible for signing: the
 * signing set skips them, so no signed file ever changes kind.
 *
 * Pixels cross this module as channel-major uint8 `[C, H, W]` (the worker's layout); sharp works
 * on interleaved `[H, W, C]`.
 */
import sharp from "sharp";
import { TaggantsError } from "../errors.ts";
import { estimateJpegQuality, spliceJpegMetadata } from "./jpeg.ts";
import { readPngHeader, splicePngImageData } from "./png.ts";

export type ImageContainer = "png" | "jpeg" | "webp";

export interface ImageFormat {
  container: ImageContainer;
  width: number;
  height: number;
  /** Colour channels, alpha excluded: 1 (gray) or 3 (RGB); 4 for CMYK JPEG. */
  colourChannels: number;
  hasAlpha: boolean;
  bitDepth: number;
  palette: boolean;
  interlaced: boolean;
  jpeg?: { quality: number; exactQuality: boolean; chromaSubsampling: string; cmyk: boolean };
  webp?: { lossless: boolean; extended: boolean };
}

/** Channel-major uint8 pixels `[channels, height, width]`. */
export interface PlanarImage {
  data: Uint8Array;
  channels: number;
  height: number;
  width: number;
}

export async function inspectImage(bytes: Uint8Array): Promise<ImageFormat> {
  const meta = await sharp(bytes).metadata();
  const container =
    meta.format === "jpeg" || meta.format === "png" || meta.format === "webp"
      ? meta.format
      : undefined;
  if (!container) {
    throw new TaggantsError(
      "image-format-unsupported",
      `Expected a PNG, JPEG or WebP image; sharp reads this one as ${meta.format ?? "unknown"}.`,
    );
  }
  const hasAlpha = meta.hasAlpha;
  const format: ImageFormat = {
    container,
    width: meta.width,
    height: meta.height,
    colourChannels: meta.channels - (hasAlpha ? 1 : 0),
    hasAlpha,
    bitDepth: meta.depth === "ushort" ? 16 : 8,
    palette: meta.isPalette,
    interlaced: meta.isProgressive,
  };
  if (container === "png") format.bitDepth = readPngHeader(bytes).bitDepth;
  if (container === "jpeg") {
    const { quality, exact } = estimateJpegQuality(bytes);
    const chromaSubsampling = meta.chromaSubsampling ?? "4:4:4";
    format.jpeg = { quality, exactQuality: exact, chromaSubsampling, cmyk: meta.space === "cmyk" };
  }
  if (container === "webp") format.webp = readWebpKind(bytes);
  return format;
}

/**
 * Why an image cannot carry a taggant written faithfully in its own format, or undefined when it
 * can. `channels` is the number of channels the taggants are crafted in.
 */
export function signingIneligibility(format: ImageFormat, channels: number): string | undefined {
  if (format.palette) return "palette PNG (re-encoding would change the palette)";
  if (format.bitDepth !== 8) return `${format.bitDepth}-bit samples (taggants are 8-bit)`;
  if (format.jpeg?.cmyk) return "CMYK JPEG";
  if (format.webp && !format.webp.lossless) return "lossy WebP";
  if (format.webp?.extended) return "WebP with extended (VP8X) metadata chunks";
  if (format.colourChannels !== channels) {
    return `${format.colourChannels} colour channels where the taggants have ${channels}`;
  }
  return undefined;
}

/** Decode an 8-bit image to planar pixels (alpha dropped), as the worker reads it. */
export async function decodeImage(bytes: Uint8Array, channels: number): Promise<PlanarImage> {
  let pipeline = sharp(bytes).removeAlpha();
  if (channels === 1) pipeline = pipeline.toColourspace("b-w");
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== channels) {
    throw new TaggantsError(
      "image-channels-mismatch",
      `Expected an image with ${channels} channel(s); decoded ${info.channels}.`,
    );
  }
  return { data: toPlanar(data, info), channels, height: info.height, width: info.width };
}

/** Encode `pixels` in the container and with the settings of `original`. */
export async function encodeLike(options: {
  original: Uint8Array;
  format: ImageFormat;
  pixels: PlanarImage;
}): Promise<Uint8Array> {
  const { original, format, pixels } = options;
  const reason = signingIneligibility(format, pixels.channels);
  if (reason) {
    throw new TaggantsError(
      "image-not-signable",
      `Cannot write a signed image as ${format.container} with ${reason}; such images are excluded from the signing set.`,
    );
  }
  if (pixels.width !== format.width || pixels.height !== format.height) {
    throw new TaggantsError(
      "image-size-mismatch",
      `The signed image is ${pixels.width}×${pixels.height} but its original is ${format.width}×${format.height}; taggants must be crafted at the original resolution.`,
    );
  }
  const interleaved = await interleaveWithAlpha(original, format, pixels);
  let pipeline = sharp(interleaved.data, {
    raw: {
      width: pixels.width,
      height: pixels.height,
      channels: interleaved.channels as 1 | 2 | 3 | 4,
    },
  });
  if (format.colourChannels === 1) pipeline = pipeline.toColourspace("b-w");
  if (format.container === "png") {
    const encoded = await pipeline
      .png({ progressive: format.interlaced, palette: false })
      .toBuffer();
    return splicePngImageData({ original, encoded });
  }
  if (format.container === "jpeg") {
    const jpeg = format.jpeg!;
    const encoded = await pipeline
      .jpeg({
        quality: jpeg.quality,
        progressive: format.interlaced,
        chromaSubsampling: jpeg.chromaSubsampling === "4:4:4" ? "4:4:4" : "4:2:0",
      })
      .toBuffer();
    return spliceJpegMetadata({ original, encoded });
  }
  return new Uint8Array(await pipeline.webp({ lossless: true, exact: true }).toBuffer());
}

/** Interleave planar colour channels and append the original's alpha channel if it has one. */
async function interleaveWithAlpha(
  original: Uint8Array,
  format: ImageFormat,
  pixels: PlanarImage,
): Promise<{ data: Uint8Array; channels: number }> {
  const { channels, height, width } = pixels;
  const plane = height * width;
  const total = channels + (format.hasAlpha ? 1 : 0);
  const data = new Uint8Array(plane * total);
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < plane; i++) data[i * total + c] = pixels.data[c * plane + i]!;
  }
  if (format.hasAlpha) {
    const alpha = await sharp(original).extractChannel("alpha").raw().toBuffer();
    for (let i = 0; i < plane; i++) data[i * total + channels] = alpha[i]!;
  }
  return { data, channels: total };
}

function toPlanar(
  data: Uint8Array,
  info: { channels: number; height: number; width: number },
): Uint8Array {
  const plane = info.height * info.width;
  const out = new Uint8Array(plane * info.channels);
  for (let c = 0; c < info.channels; c++) {
    for (let i = 0; i < plane; i++) out[c * plane + i] = data[i * info.channels + c]!;
  }
  return out;
}

/** WebP kind from the RIFF container: VP8L is lossless, VP8 lossy, VP8X extended. */
function readWebpKind(bytes: Uint8Array): { lossless: boolean; extended: boolean } {
  const fourcc = String.fromCharCode(...bytes.subarray(12, 16));
  if (fourcc === "VP8L") return { lossless: true, extended: false };
  if (fourcc === "VP8 ") return { lossless: false, extended: false };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 12;
  let lossless = false;
  while (offset + 8 <= bytes.length) {
    const chunk = String.fromCharCode(...bytes.subarray(offset, offset + 4));
    if (chunk === "VP8L") lossless = true;
    offset += 8 + view.getUint32(offset + 4, true) + (view.getUint32(offset + 4, true) % 2);
  }
  return { lossless, extended: true };
}

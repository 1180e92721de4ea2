/**
 * Key images as a suspect receives them (METHOD.md, Detection: "query the suspect model with each
 * key image through the suspect's own preprocessing"). A key image is uint8 noise at the key
 * resolution r (CHW, r×r); a served model wants its own input size, so the noise is upsampled
 * with nearest neighbour — the same rule as the worker's `predict` (source index =
 * floor(destination index · r / size), as torch's `interpolate(mode="nearest")`) — so that every
 * noise pixel stays a flat block and survives the suspect's resizing.
 */
import { createHash } from "node:crypto";
import sharp from "sharp";
import { UsageError } from "../errors.ts";

/** A uint8 image, CHW. */
export interface ImageTensor {
  channels: number;
  height: number;
  width: number;
  /** channels × height × width bytes, CHW. */
  data: Uint8Array;
}

export interface ImageSize {
  height: number;
  width: number;
  /** Channels the suspect expects: the key's own, or 3 for a gray key sent to an RGB model. */
  channels: number;
}

/** Upsample (nearest) and, for a gray key sent to an RGB model, replicate the channel. */
export function resizeKeyImage(image: ImageTensor, size: ImageSize): ImageTensor {
  validateChannels(image.channels, size.channels);
  const { height, width, channels } = size;
  const data = new Uint8Array(channels * height * width);
  const rows = Array.from({ length: height }, (_, y) => Math.floor((y * image.height) / height));
  const cols = Array.from({ length: width }, (_, x) => Math.floor((x * image.width) / width));
  for (let c = 0; c < channels; c++) {
    const sourcePlane = (image.channels === 1 ? 0 : c) * image.height * image.width;
    for (let y = 0; y < height; y++) {
      const sourceRow = sourcePlane + rows[y]! * image.width;
      const target = (c * height + y) * width;
      for (let x = 0; x < width; x++) data[target + x] = image.data[sourceRow + cols[x]!]!;
    }
  }
  return { channels, height, width, data };
}

function validateChannels(keyChannels: number, suspectChannels: number): void {
  if (keyChannels === suspectChannels || (keyChannels === 1 && suspectChannels === 3)) return;
  throw new UsageError(
    "detect-channels-mismatch",
    `The suspect expects ${suspectChannels}-channel images but the keys have ${keyChannels} channels; only gray keys can be sent to an RGB model (the channel is replicated). Check the suspect's input shape or the adapter config's "channels".`,
  );
}

/** CHW → HWC (interleaved), the layout of image files and of NHWC tensors. */
export function toInterleaved(image: ImageTensor): Uint8Array {
  const { channels, height, width, data } = image;
  const out = new Uint8Array(data.length);
  const plane = height * width;
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < plane; p++) out[p * channels + c] = data[c * plane + p]!;
  }
  return out;
}

/** A lossless PNG of the image (gray stays one channel, see ECOSYSTEM.md on sharp). */
export async function encodePng(image: ImageTensor): Promise<Uint8Array> {
  const raw = sharp(Buffer.from(toInterleaved(image)), {
    raw: { width: image.width, height: image.height, channels: image.channels as 1 | 3 },
  });
  const piped = image.channels === 1 ? raw.toColourspace("b-w") : raw;
  const png = await piped
    .png({ compressionLevel: 9, adaptiveFiltering: false, palette: false })
    .toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

/** Versions of the PNG encoder, recorded so that a verifier knows whether bytes can match. */
export function pngEncoderVersion(): string {
  return `sharp ${sharp.versions.sharp ?? "?"}, libvips ${sharp.versions.vips}`;
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

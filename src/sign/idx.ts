/**
 * Rewriting an MNIST-style idx image file with signed images in place (method, "Quantisation and
 * format": idx stays idx). Only the pixels of the signed images change; the header and every other
 * image keep their bytes. A gzip original stays gzip with the original's gzip header (name,
 * modification time, flags, OS) so the compressed file carries no new metadata.
 */
import { crc32, deflateRawSync, gunzipSync } from "node:zlib";
import { TaggantsError } from "../errors.ts";
import { concatBytes } from "./jpeg.ts";

const IDX_UBYTE_IMAGES = 0x00000803;

export interface IdxImageHeader {
  count: number;
  rows: number;
  cols: number;
  /** Byte offset of the first image's pixels. */
  dataOffset: number;
}

export function isGzip(bytes: Uint8Array): boolean {
  return bytes[0] === 0x1f && bytes[1] === 0x8b;
}

export function parseIdxImageHeader(raw: Uint8Array): IdxImageHeader {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (raw.length < 16 || view.getUint32(0) !== IDX_UBYTE_IMAGES) {
    throw new TaggantsError(
      "idx-malformed",
      `Expected an idx3 unsigned-byte image file (magic 0x00000803); received magic 0x${raw.length >= 4 ? view.getUint32(0).toString(16).padStart(8, "0") : "(short file)"}.`,
    );
  }
  const header = {
    count: view.getUint32(4),
    rows: view.getUint32(8),
    cols: view.getUint32(12),
    dataOffset: 16,
  };
  if (raw.length !== 16 + header.count * header.rows * header.cols) {
    throw new TaggantsError(
      "idx-malformed",
      `The idx header announces ${header.count} images of ${header.rows}×${header.cols} (${16 + header.count * header.rows * header.cols} bytes) but the file holds ${raw.length} bytes; it is truncated or corrupt.`,
    );
  }
  return header;
}

/**
 * The idx image file `original` (gzip or raw) with image `index` replaced by `pixels` (one
 * channel, rows × cols) for every entry of `replacements`.
 */
export function replaceIdxImages(options: {
  original: Uint8Array;
  replacements: ReadonlyMap<number, Uint8Array>;
}): Uint8Array {
  const gzipped = isGzip(options.original);
  const raw = gzipped ? new Uint8Array(gunzipSync(options.original)) : options.original.slice();
  const header = parseIdxImageHeader(raw);
  const size = header.rows * header.cols;
  for (const [index, pixels] of options.replacements) {
    if (!Number.isInteger(index) || index < 0 || index >= header.count) {
      throw new TaggantsError(
        "idx-index-out-of-range",
        `Signed image index ${index} is outside the idx file's ${header.count} images.`,
      );
    }
    if (pixels.length !== size) {
      throw new TaggantsError(
        "image-size-mismatch",
        `A signed idx image has ${pixels.length} bytes; the file's images are ${header.rows}×${header.cols} = ${size} bytes, one channel.`,
      );
    }
    raw.set(pixels, header.dataOffset + index * size);
  }
  return gzipped ? gzipWithHeaderOf(options.original, raw) : raw;
}

/** A single-member gzip of `data` reusing the header bytes of `template` (RFC 1952). */
function gzipWithHeaderOf(template: Uint8Array, data: Uint8Array): Uint8Array {
  const headerEnd = gzipHeaderLength(template);
  // XFL announces the compression level the original used: 2 = best, 4 = fastest, else default.
  const xfl = template[8];
  const level = xfl === 2 ? 9 : xfl === 4 ? 1 : 6;
  const trailer = new Uint8Array(8);
  const view = new DataView(trailer.buffer);
  view.setUint32(0, crc32(data), true);
  view.setUint32(4, data.length % 2 ** 32, true);
  return concatBytes([template.subarray(0, headerEnd), deflateRawSync(data, { level }), trailer]);
}

function gzipHeaderLength(gz: Uint8Array): number {
  const flags = gz[3]!;
  let offset = 10;
  if (flags & 0x04) offset += 2 + (gz[offset]! | (gz[offset + 1]! << 8)); // FEXTRA
  if (flags & 0x08) offset = gz.indexOf(0, offset) + 1; // FNAME, zero-terminated
  if (flags & 0x10) offset = gz.indexOf(0, offset) + 1; // FCOMMENT, zero-terminated
  if (flags & 0x02) offset += 2; // FHCRC
  if (offset <= 0 || offset > gz.length) {
    throw new TaggantsError("gzip-malformed", "The original idx file's gzip header is malformed.");
  }
  return offset;
}

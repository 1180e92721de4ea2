/**
 * Reading an image's container, size and pixel mode from its bytes, and checking that the
 * container's structure is complete (PNG chunks up to IEND, JPEG segments up to EOI, WebP RIFF
 * chunks up to the declared length), without decoding pixels. This is what lets the manifest
 * reject non-image files and truncated images at hashing speed. Corruption inside compressed
 * pixel data is not detected here.
 *
 * Plain JavaScript (typed by JSDoc; image-header.ts gives the TypeScript view) because the
 * manifest's hashing threads load it directly: registering the TypeScript loader in a thread
 * costs about a second.
 */

import { Buffer } from "node:buffer";

/** Thrown for bytes that are not a complete JPEG, PNG or WebP image. */
export class ImageHeaderError extends Error {
  /**
   * @param {"not-an-image" | "truncated" | "malformed"} reason
   * @param {string} message
   */
  constructor(reason, message) {
    super(message);
    this.reason = reason;
  }
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * @param {Uint8Array} bytes the whole file
 * @returns {{ container: "png" | "jpeg" | "webp", width: number, height: number, mode: "gray" | "gray-alpha" | "rgb" | "rgba" | "cmyk" }}
 */
export function parseImageHeader(bytes) {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (startsWith(buffer, PNG_SIGNATURE)) return parsePng(buffer);
  if (startsWith(buffer, [0xff, 0xd8, 0xff])) return parseJpeg(buffer);
  if (
    buffer.length >= 12 &&
    buffer.toString("latin1", 0, 4) === "RIFF" &&
    buffer.toString("latin1", 8, 12) === "WEBP"
  ) {
    return parseWebp(buffer);
  }
  const head = buffer.subarray(0, 8).toString("hex") || "none: empty file";
  throw new ImageHeaderError("not-an-image", `not a JPEG, PNG or WebP image (first bytes ${head})`);
}

function startsWith(buffer, prefix) {
  return buffer.length >= prefix.length && prefix.every((byte, i) => buffer[i] === byte);
}

function truncated(container) {
  return new ImageHeaderError(
    "truncated",
    `truncated ${container} (the file ends before the image does)`,
  );
}

/** PNG colour type → mode once decoded (palette images decode to RGB, or RGBA with tRNS). */
const PNG_MODES = { 0: "gray", 2: "rgb", 3: "rgb", 4: "gray-alpha", 6: "rgba" };

function parsePng(buffer) {
  if (buffer.length < 33 || buffer.toString("latin1", 12, 16) !== "IHDR") throw truncated("PNG");
  const width = buffer.readUInt32BE(16);
  const height = buffer.readUInt32BE(20);
  const colorType = buffer[25];
  let mode = PNG_MODES[colorType];
  if (mode === undefined)
    throw new ImageHeaderError("malformed", `PNG with unknown colour type ${colorType}`);
  // Walk the chunks: length (4) ‖ type (4) ‖ data ‖ CRC (4), up to IEND.
  let position = 8;
  for (;;) {
    if (position + 12 > buffer.length) throw truncated("PNG");
    const length = buffer.readUInt32BE(position);
    const type = buffer.toString("latin1", position + 4, position + 8);
    position += 12 + length;
    if (position > buffer.length) throw truncated("PNG");
    if (type === "tRNS" && colorType === 3) mode = "rgba";
    if (type === "IEND") break;
  }
  return { container: "png", width, height, mode };
}

const JPEG_MODES = { 1: "gray", 3: "rgb", 4: "cmyk" };

/** SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC). */
function isStartOfFrame(marker) {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

function parseJpeg(buffer) {
  let frame;
  let position = 2;
  // Walk the segments up to EOI (FFD9); after each scan (SOS, FFDA) skip the entropy-coded data.
  for (;;) {
    if (position + 2 > buffer.length) throw truncated("JPEG");
    if (buffer[position] !== 0xff) {
      throw new ImageHeaderError("malformed", `JPEG without a marker at byte ${position}`);
    }
    const marker = buffer[position + 1];
    position += 2;
    if (marker === 0xff) {
      position -= 1; // a fill byte before the marker
      continue;
    }
    if (marker === 0xd9) break;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // no length field
    if (position + 2 > buffer.length) throw truncated("JPEG");
    const length = buffer.readUInt16BE(position);
    if (isStartOfFrame(marker)) frame = readJpegFrame(buffer, position);
    position += length;
    if (marker === 0xda) position = skipEntropyCodedData(buffer, position);
  }
  if (frame === undefined)
    throw new ImageHeaderError("malformed", "JPEG without a frame header (SOF)");
  return { container: "jpeg", ...frame };
}

function readJpegFrame(buffer, position) {
  if (position + 8 > buffer.length) throw truncated("JPEG");
  const height = buffer.readUInt16BE(position + 3);
  const width = buffer.readUInt16BE(position + 5);
  const components = buffer[position + 7];
  const mode = JPEG_MODES[components];
  if (mode === undefined)
    throw new ImageHeaderError("malformed", `JPEG with ${components} components`);
  return { width, height, mode };
}

/** Position of the next marker after a scan: an 0xFF not followed by 0x00, a restart or a fill. */
function skipEntropyCodedData(buffer, start) {
  let position = start;
  for (;;) {
    position = buffer.indexOf(0xff, position);
    if (position < 0 || position + 1 >= buffer.length) throw truncated("JPEG");
    const next = buffer[position + 1];
    if (next === 0x00 || (next >= 0xd0 && next <= 0xd7) || next === 0xff) position += 1;
    else return position;
  }
}

function parseWebp(buffer) {
  const end = 8 + buffer.readUInt32LE(4);
  if (end > buffer.length) throw truncated("WebP");
  let header;
  let hasAlpha = false;
  let position = 12;
  // RIFF chunks: type (4) ‖ length (4, little-endian) ‖ data, padded to an even length.
  while (position < end) {
    if (position + 8 > end) throw truncated("WebP");
    const type = buffer.toString("latin1", position, position + 4);
    const length = buffer.readUInt32LE(position + 4);
    const body = position + 8;
    if (body + length > end) throw truncated("WebP");
    if (type === "VP8X") {
      hasAlpha = (buffer[body] & 0x10) !== 0;
      const width = 1 + buffer.readUIntLE(body + 4, 3);
      header = { width, height: 1 + buffer.readUIntLE(body + 7, 3) };
    } else if (type === "VP8 " && header === undefined && length >= 10) {
      header = {
        width: buffer.readUInt16LE(body + 6) & 0x3fff,
        height: buffer.readUInt16LE(body + 8) & 0x3fff,
      };
    } else if (type === "VP8L" && header === undefined && length >= 5) {
      const bits = buffer.readUInt32LE(body + 1);
      hasAlpha = ((bits >>> 28) & 1) === 1;
      header = { width: 1 + (bits & 0x3fff), height: 1 + ((bits >>> 14) & 0x3fff) };
    }
    position = body + length + (length % 2);
  }
  if (header === undefined) {
    throw new ImageHeaderError("malformed", "WebP without an image chunk (VP8, VP8L or VP8X)");
  }
  return { container: "webp", ...header, mode: hasAlpha ? "rgba" : "rgb" };
}

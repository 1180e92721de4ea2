/**
 * PNG chunk splicing for the signed-dataset writer (method, "Quantisation and format"): a signed
 * PNG is the original file with its image data (IDAT) replaced by the newly encoded image data.
 * Every other chunk (IHDR, PLTE, tEXt, pHYs, iCCP, …) is the original's, in the original order,
 * so nothing in the file's structure marks it as signed. The new IHDR must equal the original's
 * (same size, bit depth, colour type, interlace); otherwise the encoder changed the format and we
 * refuse rather than write a file that differs in kind.
 */
import { TaggantsError } from "../errors.ts";
import { concatBytes } from "./jpeg.ts";

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

interface Chunk {
  type: string;
  /** The whole chunk: length, type, data and CRC. */
  bytes: Uint8Array;
  data: Uint8Array;
}

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  /** 0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA. */
  colourType: number;
  interlaced: boolean;
}

export function readPngHeader(png: Uint8Array): PngHeader {
  const ihdr = readChunks(png)[0];
  if (!ihdr || ihdr.type !== "IHDR") throw malformed("the first chunk is not IHDR");
  const view = new DataView(ihdr.data.buffer, ihdr.data.byteOffset, ihdr.data.byteLength);
  return {
    width: view.getUint32(0),
    height: view.getUint32(4),
    bitDepth: ihdr.data[8]!,
    colourType: ihdr.data[9]!,
    interlaced: ihdr.data[12] === 1,
  };
}

/** The original's chunks with the encoded file's IDAT chunks in place of the original's. */
export function splicePngImageData(options: {
  original: Uint8Array;
  encoded: Uint8Array;
}): Uint8Array {
  const original = readChunks(options.original);
  const encoded = readChunks(options.encoded);
  const originalHeader = original[0]!.data;
  const encodedHeader = encoded[0]!.data;
  if (!sameBytes(originalHeader, encodedHeader)) {
    throw new TaggantsError(
      "png-format-changed",
      `The PNG encoder changed the image header (original ${describe(readPngHeader(options.original))}, encoded ${describe(readPngHeader(options.encoded))}); refusing to write a signed file whose format differs from its original. Report this with the original file.`,
    );
  }
  const newData = encoded.filter((chunk) => chunk.type === "IDAT").map((chunk) => chunk.bytes);
  const parts: Uint8Array[] = [SIGNATURE];
  let inserted = false;
  for (const chunk of original) {
    if (chunk.type !== "IDAT") parts.push(chunk.bytes);
    else if (!inserted) {
      parts.push(...newData);
      inserted = true;
    }
  }
  return concatBytes(parts);
}

function readChunks(png: Uint8Array): Chunk[] {
  if (png.length < 8 || !sameBytes(png.subarray(0, 8), SIGNATURE)) {
    throw malformed("the PNG signature is missing");
  }
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: Chunk[] = [];
  let offset = 8;
  while (offset < png.length) {
    if (offset + 12 > png.length) throw malformed(`a chunk header is cut at byte ${offset}`);
    const length = view.getUint32(offset);
    const end = offset + 12 + length;
    if (end > png.length) throw malformed(`a chunk is cut at byte ${offset}`);
    const type = String.fromCharCode(...png.subarray(offset + 4, offset + 8));
    chunks.push({
      type,
      bytes: png.subarray(offset, end),
      data: png.subarray(offset + 8, end - 4),
    });
    offset = end;
    if (type === "IEND") break;
  }
  return chunks;
}

function describe(header: PngHeader): string {
  const interlace = header.interlaced ? ", interlaced" : "";
  return `${header.width}×${header.height}, ${header.bitDepth}-bit, colour type ${header.colourType}${interlace}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function malformed(what: string): TaggantsError {
  return new TaggantsError(
    "png-malformed",
    `Expected a well-formed PNG file, but ${what}. Check the original file.`,
  );
}

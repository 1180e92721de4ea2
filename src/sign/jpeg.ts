/**
 * JPEG details the signed-dataset writer needs to re-encode a signed image like its original
 * (method, "Quantisation and format"): the quality the original was saved at, estimated from its
 * quantisation tables, and the original's metadata segments, spliced into the new file so that a
 * signed JPEG carries exactly the APPn/COM segments its original carried.
 *
 * Quality estimation: libjpeg (and libjpeg-turbo, mozjpeg with its default table, libvips, Pillow)
 * scale the standard tables of ITU-T T.81 Annex K by `q < 50 ? 5000 / q : 200 − 2q` percent,
 * rounding and clamping to [1, 255]. We parse the DQT segments and choose the quality whose scaled
 * tables are nearest (sum of absolute differences); `exact` says whether they matched exactly.
 * Encoders with their own tables (many cameras) get the nearest standard quality.
 */
import { UsageError } from "../errors.ts";

/** Standard luminance table, ITU-T T.81 Annex K.1, natural (row-major) order. */
const STANDARD_LUMINANCE = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
  14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
  92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/** Standard chrominance table, ITU-T T.81 Annex K.2, natural order. */
const STANDARD_CHROMINANCE = [
  17,
  18,
  24,
  47,
  99,
  99,
  99,
  99,
  18,
  21,
  26,
  66,
  99,
  99,
  99,
  99,
  24,
  26,
  56,
  99,
  99,
  99,
  99,
  99,
  47,
  66,
  99,
  99,
  99,
  99,
  99,
  99,
  ...Array<number>(32).fill(99),
];

/** ZIGZAG[k] is the natural-order position of the k-th coefficient stored in a DQT segment. */
const ZIGZAG = [
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
  13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52,
  45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

const SOI = 0xd8;
const SOS = 0xda;
const DQT = 0xdb;

export interface JpegQuality {
  /** libjpeg quality, 1–100. */
  quality: number;
  /** True when the file's tables are exactly the standard tables at this quality. */
  exact: boolean;
}

interface Segment {
  marker: number;
  /** The whole segment, marker bytes included. */
  bytes: Uint8Array;
}

/** Estimate the quality a JPEG was saved at from its quantisation tables. */
export function estimateJpegQuality(jpeg: Uint8Array): JpegQuality {
  const tables = readQuantisationTables(jpeg);
  const luminance = tables.get(0);
  if (!luminance) {
    throw new UsageError(
      "jpeg-no-quantisation-table",
      "Expected a JPEG with a luminance quantisation table (DQT id 0); found none. The file may be truncated or not a baseline/progressive JPEG.",
    );
  }
  const chrominance = tables.get(1);
  let best: JpegQuality = { quality: 1, exact: false };
  let bestError = Infinity;
  for (let quality = 1; quality <= 100; quality++) {
    let error = tableDistance(luminance, scaleTable(STANDARD_LUMINANCE, quality));
    if (chrominance) error += tableDistance(chrominance, scaleTable(STANDARD_CHROMINANCE, quality));
    // Ties go to the higher quality: near q = 100 several qualities give all-ones tables.
    if (error <= bestError) {
      bestError = error;
      best = { quality, exact: error === 0 };
    }
  }
  return best;
}

/** libjpeg's `jpeg_quality_scaling` followed by `jpeg_add_quant_table` with baseline clamping. */
export function scaleTable(table: readonly number[], quality: number): number[] {
  const scale = quality < 50 ? Math.floor(5000 / quality) : 200 - quality * 2;
  return table.map((value) => Math.min(255, Math.max(1, Math.floor((value * scale + 50) / 100))));
}

function tableDistance(a: readonly number[], b: readonly number[]): number {
  let sum = 0;
  for (let i = 0; i < 64; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum;
}

/** Quantisation tables by id, in natural order. */
export function readQuantisationTables(jpeg: Uint8Array): Map<number, number[]> {
  const tables = new Map<number, number[]>();
  for (const segment of readHeaderSegments(jpeg).segments) {
    if (segment.marker !== DQT) continue;
    const body = segment.bytes;
    let offset = 4;
    while (offset < body.length) {
      const precision = body[offset]! >> 4;
      const id = body[offset]! & 0x0f;
      offset += 1;
      const natural = new Array<number>(64).fill(0);
      for (let k = 0; k < 64; k++) {
        natural[ZIGZAG[k]!] =
          precision === 0
            ? body[offset + k]!
            : (body[offset + 2 * k]! << 8) | body[offset + 2 * k + 1]!;
      }
      offset += precision === 0 ? 64 : 128;
      tables.set(id, natural);
    }
  }
  return tables;
}

/**
 * Replace the metadata of `encoded` (a JPEG we just wrote) by the original's: every APPn and COM
 * segment of the original, in its order, right after SOI; the encoded file's own APPn/COM
 * segments are dropped; its tables, frame header and scan data are kept as they are.
 */
export function spliceJpegMetadata(options: {
  original: Uint8Array;
  encoded: Uint8Array;
}): Uint8Array {
  const original = readHeaderSegments(options.original);
  const encoded = readHeaderSegments(options.encoded);
  const isMetadata = (marker: number): boolean =>
    (marker >= 0xe0 && marker <= 0xef) || marker === 0xfe;
  const parts: Uint8Array[] = [Uint8Array.of(0xff, SOI)];
  for (const segment of original.segments)
    if (isMetadata(segment.marker)) parts.push(segment.bytes);
  for (const segment of encoded.segments)
    if (!isMetadata(segment.marker)) parts.push(segment.bytes);
  parts.push(options.encoded.subarray(encoded.scanStart));
  return concatBytes(parts);
}

/** The length-prefixed segments between SOI and the first SOS, and where SOS begins. */
function readHeaderSegments(jpeg: Uint8Array): { segments: Segment[]; scanStart: number } {
  if (jpeg[0] !== 0xff || jpeg[1] !== SOI) {
    throw new UsageError(
      "jpeg-malformed",
      "Expected a JPEG file starting with the SOI marker (FF D8); received other bytes.",
    );
  }
  const segments: Segment[] = [];
  let offset = 2;
  while (offset + 4 <= jpeg.length) {
    if (jpeg[offset] !== 0xff) throw malformed(offset);
    const marker = jpeg[offset + 1]!;
    if (marker === 0xff) {
      offset += 1; // fill byte
      continue;
    }
    if (marker === SOS) return { segments, scanStart: offset };
    const length = (jpeg[offset + 2]! << 8) | jpeg[offset + 3]!;
    if (length < 2 || offset + 2 + length > jpeg.length) throw malformed(offset);
    segments.push({ marker, bytes: jpeg.subarray(offset, offset + 2 + length) });
    offset += 2 + length;
  }
  throw malformed(offset);
}

function malformed(offset: number): UsageError {
  return new UsageError(
    "jpeg-malformed",
    `Expected a JPEG marker segment at byte ${offset}; the file is truncated or corrupt. Check the original file.`,
  );
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

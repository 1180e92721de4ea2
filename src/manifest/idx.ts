/**
 * Readers for MNIST-style idx files (raw or gzip-compressed, told apart by their first bytes):
 * `idx3-ubyte` images (count × height × width uint8) and `idx1-ubyte` labels (count uint8).
 * Used to index idx datasets such as Fashion-MNIST and, by other stages, to read their pixels.
 */
import { createReadStream } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { createGunzip, gunzipSync } from "node:zlib";
import { UsageError } from "../errors.ts";

export const IDX_IMAGES_MAGIC = 0x00000803;
export const IDX_LABELS_MAGIC = 0x00000801;

export interface IdxImages {
  count: number;
  height: number;
  width: number;
  /** count × height × width bytes, row-major. */
  data: Uint8Array;
}

export interface IdxLabels {
  count: number;
  labels: Uint8Array;
}

export interface IdxImagesHeader {
  count: number;
  height: number;
  width: number;
}

function idxError(path: string, message: string, cause?: unknown): UsageError {
  return new UsageError("idx-invalid", `${path}: ${message}`, { cause });
}

async function isGzip(path: string): Promise<boolean> {
  const handle = await open(path, "r");
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

async function readIdxBytes(path: string): Promise<Buffer> {
  const raw = await readFile(path);
  if (raw[0] !== 0x1f || raw[1] !== 0x8b) return raw;
  try {
    return gunzipSync(raw);
  } catch (error) {
    throw idxError(
      path,
      `cannot decompress (${(error as Error).message}); the file is truncated or corrupt.`,
      error,
    );
  }
}

function parseImagesHeader(path: string, head: Buffer): IdxImagesHeader {
  if (head.length < 16 || head.readUInt32BE(0) !== IDX_IMAGES_MAGIC) {
    throw idxError(
      path,
      `expected an idx3-ubyte image file (magic 0x00000803); received ${head.length < 4 ? "a file shorter than its header" : `magic 0x${head.readUInt32BE(0).toString(16).padStart(8, "0")}`}.`,
    );
  }
  return {
    count: head.readUInt32BE(4),
    height: head.readUInt32BE(8),
    width: head.readUInt32BE(12),
  };
}

/** Read a whole idx3-ubyte image file into memory. */
export async function readIdxImages(path: string): Promise<IdxImages> {
  const bytes = await readIdxBytes(path);
  const header = parseImagesHeader(path, bytes);
  const expected = 16 + header.count * header.height * header.width;
  if (bytes.length !== expected) {
    throw idxError(
      path,
      `expected ${expected} bytes for ${header.count} images of ${header.height}×${header.width}; received ${bytes.length} (truncated or corrupt).`,
    );
  }
  return { ...header, data: new Uint8Array(bytes.buffer, bytes.byteOffset + 16, expected - 16) };
}

/** Read a whole idx1-ubyte label file into memory. */
export async function readIdxLabels(path: string): Promise<IdxLabels> {
  const bytes = await readIdxBytes(path);
  if (bytes.length < 8 || bytes.readUInt32BE(0) !== IDX_LABELS_MAGIC) {
    throw idxError(path, "expected an idx1-ubyte label file (magic 0x00000801).");
  }
  const count = bytes.readUInt32BE(4);
  if (bytes.length !== 8 + count) {
    throw idxError(
      path,
      `expected ${8 + count} bytes for ${count} labels; received ${bytes.length} (truncated or corrupt).`,
    );
  }
  return { count, labels: new Uint8Array(bytes.buffer, bytes.byteOffset + 8, count) };
}

/**
 * Stream an idx3-ubyte image file: first the header, then one image (height × width bytes,
 * a view valid until the next iteration) at a time, in constant memory.
 */
export async function* streamIdxImages(
  path: string,
): AsyncGenerator<IdxImagesHeader | Uint8Array, void, undefined> {
  const file = createReadStream(path, { highWaterMark: 1 << 20 });
  const source = (await isGzip(path)) ? file.pipe(createGunzip()) : file;
  file.on("error", (error) => source.destroy(error));
  let pending: Buffer = Buffer.alloc(0);
  let header: IdxImagesHeader | undefined;
  let imageBytes = 0;
  let seen = 0;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let offset = 0;
      if (header === undefined) {
        if (pending.length < 16) continue;
        header = parseImagesHeader(path, pending);
        yield header;
        imageBytes = header.height * header.width;
        offset = 16;
      }
      while (pending.length - offset >= imageBytes && seen < header.count) {
        yield pending.subarray(offset, offset + imageBytes);
        offset += imageBytes;
        seen += 1;
      }
      if (seen === header.count && offset < pending.length) {
        throw idxError(path, `has bytes after its ${header.count} images; the file is corrupt.`);
      }
      pending = pending.subarray(offset);
    }
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw idxError(
      path,
      `cannot read (${(error as Error).message}); the file is truncated or corrupt.`,
      error,
    );
  } finally {
    source.destroy();
  }
  if (header === undefined || seen < header.count) {
    throw idxError(path, `ends after ${seen} of ${header?.count ?? "?"} images (truncated).`);
  }
}

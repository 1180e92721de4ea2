/**
 * A worker thread of the hashing pool (hash-pool.ts): reads each file of a batch, checks its
 * image container (image-header.ts) and computes its SHA-256. Synchronous reads are the fastest
 * way to read many small files; running several such threads gives the parallelism.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import { ImageHeaderError, parseImageHeader } from "./image-header.ts";
import type { HashRequest, HashResult } from "./hash-pool.ts";

function hashImageFile(path: string): HashResult {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    return { ok: false, reason: "unreadable", message: (error as Error).message };
  }
  try {
    const header = parseImageHeader(bytes);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    return { ok: true, size: bytes.length, sha256, ...header };
  } catch (error) {
    if (error instanceof ImageHeaderError)
      return { ok: false, reason: error.reason, message: error.message };
    return { ok: false, reason: "malformed", message: (error as Error).message };
  }
}

parentPort?.on("message", (request: HashRequest) => {
  parentPort?.postMessage({ id: request.id, results: request.paths.map(hashImageFile) });
});

/**
 * A thread of the manifest's hashing pool (hash-pool.ts): for each file of a batch, read it,
 * check its image container (image-header-core.js) and compute its SHA-256. Synchronous reads
 * are the fastest way to read many small files; several such threads give the parallelism.
 * Plain JavaScript so that a thread starts without the TypeScript loader.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import { ImageHeaderError, parseImageHeader } from "./image-header-core.js";

/** @returns {import("./hash-pool.ts").HashResult} */
function hashImageFile(path) {
  let bytes;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    return { ok: false, reason: "unreadable", message: error.message };
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  try {
    return { ok: true, size: bytes.length, sha256, ...parseImageHeader(bytes) };
  } catch (error) {
    const reason = error instanceof ImageHeaderError ? error.reason : "malformed";
    return { ok: false, reason, message: error.message, size: bytes.length, sha256 };
  }
}

parentPort.on("message", (request) => {
  parentPort.postMessage({ id: request.id, results: request.paths.map(hashImageFile) });
});

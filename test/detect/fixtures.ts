/**
 * What the detection tests share: a real manifest of the small Fashion-MNIST ImageFolder in
 * test/fixtures, a fixed key secret, its keys and public commitment, and fake suspect models that
 * stand in for trained networks (the expensive edge). A "signed" fake model ranks a signing
 * key's label first when it sees that key image (at any nearest-upsampled size), as a model
 * trained on the signed data does at best; every other image, control keys included, gets a
 * ranking drawn from a hash of its pixels, as a model that never saw the keys.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { rmSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { saveCommitment, type CommitmentRecord } from "../../src/keys/commitment.ts";
import { deriveKeys, type Key } from "../../src/keys/derive.ts";
import { buildManifest } from "../../src/manifest/build.ts";
import type { ManifestSummary } from "../../src/manifest/format.ts";
import { resizeKeyImage, type ImageTensor } from "../../src/detect/images.ts";
import type { ImageBatch, Predictor } from "../../src/detect/predictor.ts";
import { Terminal } from "../../src/cli/terminal.ts";
import { Writable } from "node:stream";

export const IMAGEFOLDER = new URL("../fixtures/imagefolder", import.meta.url).pathname;
export const SECRET_HEX = "5ec7e7".padEnd(64, "0a");
export const KEY_COUNT = 20;
export const RESOLUTION = 7;

export interface DetectionFixture {
  dir: string;
  keyFile: string;
  commitmentFile: string;
  manifestFile: string;
  manifest: ManifestSummary;
  record: CommitmentRecord;
  /** The K committed keys. */
  keys: Key[];
  /** Keys K.. of the same derivation (the control keys of a run with that many). */
  controls: Key[];
}

let shared: Promise<DetectionFixture> | undefined;

/** One fixture per test file (built once: the manifest hashes real files). */
export function detectionFixture(): Promise<DetectionFixture> {
  shared ??= makeFixture();
  return shared;
}

async function makeFixture(): Promise<DetectionFixture> {
  const dir = await mkdtemp(join(tmpdir(), "taggants-detect-"));
  // Each ava test file runs in its own process: remove its fixture when that process ends.
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const manifestFile = join(dir, "dataset.json");
  const manifest = await buildManifest({ root: IMAGEFOLDER, out: manifestFile, threads: 1 });
  const keyFile = join(dir, "key.secret");
  await writeFile(keyFile, SECRET_HEX + "\n", { mode: 0o600 });
  const secret = new Uint8Array(Buffer.from(SECRET_HEX, "hex"));
  const params = {
    count: KEY_COUNT,
    resolution: RESOLUTION,
    channels: 1,
    classes: manifest.classes.length,
    datasetId: manifest.root_hash,
  };
  const all = deriveKeys(secret, { ...params, count: 2 * KEY_COUNT });
  const keys = all.slice(0, KEY_COUNT);
  const commitmentFile = join(dir, "commitment.json");
  const record = await saveCommitment(commitmentFile, {
    params,
    keys,
    originalRoot: manifest.root_hash,
    signedRoot: manifest.root_hash,
  });
  return {
    dir,
    keyFile,
    commitmentFile,
    manifestFile,
    manifest,
    record,
    keys,
    controls: all.slice(KEY_COUNT),
  };
}

export function keyImage(key: Key): ImageTensor {
  return { channels: 1, height: RESOLUTION, width: RESOLUTION, data: key.image };
}

/** A stand-in for a classifier: a class ranking (best first) for one CHW uint8 image. */
export class FakeModel {
  private readonly known = new Map<string, Map<string, number>>();

  constructor(
    readonly classes: number,
    /** Keys the model "was trained on": their images rank their label first. */
    private readonly signingKeys: readonly Key[] = [],
  ) {}

  rank(image: ImageTensor): number[] {
    const label = this.lookup(image);
    const order = hashRanking(image.data, this.classes);
    if (label === undefined) return order;
    return [label, ...order.filter((c) => c !== label)];
  }

  private lookup(image: ImageTensor): number | undefined {
    const size = `${image.channels}x${image.height}x${image.width}`;
    let table = this.known.get(size);
    if (!table) {
      table = new Map();
      for (const key of this.signingKeys) {
        const resized = resizeKeyImage(keyImage(key), image);
        table.set(sha(resized.data), key.label);
      }
      this.known.set(size, table);
    }
    return table.get(sha(image.data));
  }
}

function sha(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A permutation of the classes drawn from the image's hash. */
function hashRanking(data: Uint8Array, classes: number): number[] {
  const digest = createHash("sha256").update(data).digest();
  return Array.from({ length: classes }, (_, c) => c).sort(
    (a, b) => (digest[a % 32]! ^ (a * 37)) - (digest[b % 32]! ^ (b * 37)) || a - b,
  );
}

/** A Predictor (the worker's `predict` contract) backed by a fake model. */
export function fakePredictor(model: FakeModel): Predictor & { calls: number } {
  const predictor = {
    calls: 0,
    async predict(images: ImageBatch, topK: number): Promise<number[][]> {
      predictor.calls += 1;
      const size = images.channels * images.height * images.width;
      return Array.from({ length: images.count }, (_, i) => {
        const data = images.data.subarray(i * size, (i + 1) * size);
        return model
          .rank({ channels: images.channels, height: images.height, width: images.width, data })
          .slice(0, topK);
      });
    },
    async close(): Promise<void> {},
  };
  return predictor;
}

/** Decode a PNG into a CHW uint8 image. */
export async function decodePng(png: Uint8Array): Promise<ImageTensor> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const plane = info.width * info.height;
  const chw = new Uint8Array(info.channels * plane);
  for (let c = 0; c < info.channels; c++)
    for (let p = 0; p < plane; p++) chw[c * plane + p] = data[p * info.channels + c]!;
  return { channels: info.channels, height: info.height, width: info.width, data: chw };
}

export type Handler = (
  request: IncomingMessage,
  body: Buffer,
  response: ServerResponse,
) => void | Promise<void>;

/** A loopback HTTP server for fakes; resolves with its base URL and a request counter. */
export async function startFakeServer(
  handler: Handler,
): Promise<{ url: string; server: Server; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      requests += 1;
      void Promise.resolve(handler(request, Buffer.concat(chunks), response)).catch(
        (error: unknown) => {
          response.writeHead(500).end(String(error));
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    requests: () => requests,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export function sendJson(response: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  response.writeHead(status, { "content-type": "application/json" });
  response.end(text);
}

/** A terminal that keeps its output, for tests. */
export function quietTerminal(): Terminal & { output: () => string } {
  let text = "";
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      text += chunk.toString();
      callback();
    },
  });
  const terminal = new Terminal({
    verbosity: "normal",
    interactive: false,
    stdout: sink,
    stderr: sink,
  });
  return Object.assign(terminal, { output: () => text });
}

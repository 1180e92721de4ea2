/**
 * Manifest throughput (issue 3): index a generated ImageFolder tree of 100 000 small PNGs and
 * compare with `sha256sum` over the same files in the same run (target: at least 80 % of its
 * speed). The tree lives under the OS temp folder and is removed afterwards. Both tools run once
 * untimed first, so that both read from a warm page cache, then alternately; the best of three
 * runs of each is reported.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { crc32, deflateSync } from "node:zlib";
import { buildManifest } from "../src/manifest/index.ts";

const FILES = 100_000;
const CLASSES = 100;
const SIDE = 16;
const TARGET_RATIO = 0.8;
const ROUNDS = 3;

const execFileAsync = promisify(execFile);

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])));
  return Buffer.concat([head, data, crc]);
}

/** A valid 16×16 gray PNG whose pixels depend on `seed` (each file differs). */
function smallPng(seed: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(SIDE, 0);
  header.writeUInt32BE(SIDE, 4);
  header[8] = 8; // bit depth
  header[9] = 0; // gray
  const rows = Buffer.alloc(SIDE * (SIDE + 1));
  let state = seed * 2654435761;
  for (let i = 0; i < rows.length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    rows[i] = i % (SIDE + 1) === 0 ? 0 : state >>> 24;
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(rows)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

async function generateTree(root: string): Promise<number> {
  let bytes = 0;
  for (let c = 0; c < CLASSES; c++) {
    const folder = join(root, `class${String(c).padStart(3, "0")}`);
    await mkdir(folder, { recursive: true });
    const writes: Promise<void>[] = [];
    for (let i = 0; i < FILES / CLASSES; i++) {
      const png = smallPng(c * FILES + i);
      bytes += png.length;
      writes.push(writeFile(join(folder, `${String(i).padStart(5, "0")}.png`), png));
    }
    await Promise.all(writes);
  }
  return bytes;
}

async function timeSha256sum(root: string): Promise<number> {
  const started = performance.now();
  await execFileAsync(
    "sh",
    ["-c", 'find "$0" -type f -print0 | xargs -0 sha256sum > /dev/null', root],
    {
      maxBuffer: 1 << 20,
    },
  );
  return (performance.now() - started) / 1000;
}

async function timeManifest(root: string, out: string): Promise<number> {
  const started = performance.now();
  await buildManifest({ root, out });
  return (performance.now() - started) / 1000;
}

export async function run(): Promise<Record<string, unknown>> {
  const folder = await mkdtemp(join(tmpdir(), "taggants-bench-manifest-"));
  try {
    const root = join(folder, "tree");
    const bytes = await generateTree(root);
    await timeSha256sum(root);
    await timeManifest(root, join(folder, "warm"));
    // Best of alternating runs: the same treatment for both tools, less noise from other load.
    let sha256sumSeconds = Infinity;
    let manifestSeconds = Infinity;
    for (let round = 0; round < ROUNDS; round++) {
      sha256sumSeconds = Math.min(sha256sumSeconds, await timeSha256sum(root));
      manifestSeconds = Math.min(manifestSeconds, await timeManifest(root, join(folder, "timed")));
    }
    const ratio = sha256sumSeconds / manifestSeconds;
    const figures = {
      files: FILES,
      megabytes: Number((bytes / 1e6).toFixed(1)),
      manifest_files_per_s: Math.round(FILES / manifestSeconds),
      manifest_mb_per_s: Number((bytes / 1e6 / manifestSeconds).toFixed(1)),
      sha256sum_files_per_s: Math.round(FILES / sha256sumSeconds),
      speed_vs_sha256sum: Number(ratio.toFixed(3)),
      target: TARGET_RATIO,
      meets_target: ratio >= TARGET_RATIO,
    };
    console.error(
      `manifest: ${figures.manifest_files_per_s} files/s, ${figures.manifest_mb_per_s} MB/s; ` +
        `sha256sum: ${figures.sha256sum_files_per_s} files/s; ratio ${figures.speed_vs_sha256sum} (target ≥ ${TARGET_RATIO})`,
    );
    return figures;
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

import test from "ava";
import { createHash } from "node:crypto";
import { mkdir, copyFile, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import {
  buildManifest,
  loadManifest,
  readEntries,
  readIdxImages,
  readIdxLabels,
  type ManifestEntry,
} from "../../src/manifest/index.ts";
import { FIXTURES, copyFixture } from "./helpers.ts";
import { temporaryFolder } from "../helpers/temporary.ts";

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

async function collect(summaryPath: string, split?: "train" | "test"): Promise<ManifestEntry[]> {
  const entries: ManifestEntry[] = [];
  for await (const entry of readEntries(summaryPath, { split })) entries.push(entry);
  return entries;
}

test("an ImageFolder manifest lists every file with its class, size and SHA-256", async (t) => {
  const root = join(FIXTURES, "imagefolder");
  const out = join(await temporaryFolder(t, "taggants-manifest-"), "fashion");
  const summary = await buildManifest({ root, out });
  t.is(summary.layout, "imagefolder");
  t.deepEqual(summary.classes, [
    "Ankle_boot",
    "Bag",
    "Coat",
    "Dress",
    "Pullover",
    "Sandal",
    "Shirt",
    "Sneaker",
    "T-shirt_top",
    "Trouser",
  ]);
  t.deepEqual(summary.splits.train, { count: 80, class_counts: new Array(10).fill(8) });
  t.deepEqual(summary.splits.test, { count: 20, class_counts: new Array(10).fill(2) });
  t.deepEqual(summary.formats.containers, { png: 100 });
  t.deepEqual(summary.formats.modes, { gray: 100 });
  t.deepEqual(summary.formats.sizes, { "28x28": 100 });
  t.is(summary.formats.max_channels, 1);

  const entries = await collect(summary.summaryPath);
  t.is(entries.length, 100);
  for (const entry of entries.slice(0, 30)) {
    const bytes = await readFile(join(root, entry.path!));
    t.is(entry.sha256, sha256(bytes));
    t.is(entry.size, bytes.length);
    t.is(summary.classes[entry.label], entry.path!.split("/")[1]);
  }
  const paths = entries.map((entry) => `${entry.split === "train" ? 0 : 1}${entry.path}`);
  t.deepEqual(paths, [...paths].sort());
  t.is(summary.root_hash, sha256(await readFile(summary.entriesPath)));
});

test("the same dataset always gives the same root hash, wherever the manifest is written", async (t) => {
  const root = join(FIXTURES, "imagefolder");
  const folder = await temporaryFolder(t, "taggants-manifest-");
  const first = await buildManifest({ root, out: join(folder, "a"), threads: 1 });
  const second = await buildManifest({ root, out: join(folder, "b.json"), threads: 3 });
  t.is(first.root_hash, second.root_hash);
  t.is(second.summaryPath, join(folder, "b.json"));
  t.deepEqual(await loadManifest(join(folder, "a")), first);
});

test("an idx manifest hashes each image's pixels and records the idx file names", async (t) => {
  const root = join(FIXTURES, "fashion-mnist-idx");
  const summary = await buildManifest({
    root,
    out: join(await temporaryFolder(t, "taggants-manifest-"), "idx"),
  });
  t.is(summary.layout, "idx");
  t.deepEqual(summary.classes, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  t.is(summary.splits.train?.count, 300);
  t.is(summary.splits.test?.count, 100);
  t.deepEqual(summary.idx?.test, {
    images: "t10k-images-idx3-ubyte.gz",
    labels: "t10k-labels-idx1-ubyte.gz",
  });
  t.deepEqual(summary.formats.containers, { idx: 400 });

  // Independent decoding: gunzip by hand and slice the pixel block after the 16-byte header.
  const raw = gunzipSync(await readFile(join(root, "t10k-images-idx3-ubyte.gz")));
  const labels = gunzipSync(await readFile(join(root, "t10k-labels-idx1-ubyte.gz")));
  const test = await collect(summary.summaryPath, "test");
  t.is(test.length, 100);
  for (const entry of [test[0]!, test[57]!, test[99]!]) {
    const start = 16 + entry.index! * 784;
    t.is(entry.sha256, sha256(raw.subarray(start, start + 784)));
    t.is(entry.label, labels[8 + entry.index!]!);
    t.is(entry.size, 784);
  }
});

test("the idx readers return the images and labels of gzip and raw files alike", async (t) => {
  const root = join(FIXTURES, "fashion-mnist-idx");
  const folder = await temporaryFolder(t, "taggants-manifest-");
  const raw = join(folder, "t10k-images-idx3-ubyte");
  await writeFile(raw, gunzipSync(await readFile(join(root, "t10k-images-idx3-ubyte.gz"))));
  const fromGzip = await readIdxImages(join(root, "t10k-images-idx3-ubyte.gz"));
  const fromRaw = await readIdxImages(raw);
  t.deepEqual(
    { ...fromRaw, data: undefined },
    { count: 100, height: 28, width: 28, data: undefined },
  );
  t.deepEqual(Buffer.from(fromRaw.data), Buffer.from(fromGzip.data));
  t.is((await readIdxLabels(join(root, "t10k-labels-idx1-ubyte.gz"))).count, 100);
});

test("the manifest records containers, modes and sizes of colour PNG, JPEG and WebP images", async (t) => {
  const root = join(await temporaryFolder(t, "taggants-manifest-"), "colours");
  const files = await readdir(join(FIXTURES, "formats"));
  for (const [i, name] of files.entries()) {
    const folder = join(root, i % 2 === 0 ? "even" : "odd");
    await mkdir(folder, { recursive: true });
    await copyFile(join(FIXTURES, "formats", name), join(folder, name));
  }
  const summary = await buildManifest({ root, out: join(root, "..", "colours") });
  t.deepEqual(summary.formats.containers, { jpeg: 3, png: 2, webp: 2 });
  t.deepEqual(summary.formats.modes, { gray: 1, rgb: 4, rgba: 2 });
  t.is(summary.formats.max_channels, 4);
  t.deepEqual(summary.splits.train?.class_counts, [4, 3]);
});

test("nested folders and hidden files: paths sort as full paths and hidden names are skipped", async (t) => {
  const root = await copyFixture(t, "imagefolder");
  const png = join(root, "train", "Bag", "00100.png");
  await mkdir(join(root, "train", "Bag", "a"), { recursive: true });
  await copyFile(png, join(root, "train", "Bag", "a", "z.png"));
  await copyFile(png, join(root, "train", "Bag", "a.png"));
  await writeFile(join(root, "train", "Bag", ".DS_Store"), "junk");
  const summary = await buildManifest({ root, out: `${root}.manifest` });
  const bag = (await collect(summary.summaryPath, "train"))
    .map((entry) => entry.path!)
    .filter((path) => path.startsWith("train/Bag/a"));
  t.deepEqual(bag, ["train/Bag/a.png", "train/Bag/a/z.png"]);
  t.is(summary.splits.train?.count, 82);
});

test("reading entries notices an entries file changed after the manifest was written", async (t) => {
  const summary = await buildManifest({
    root: join(FIXTURES, "imagefolder"),
    out: join(await temporaryFolder(t, "taggants-manifest-"), "m"),
  });
  const text = await readFile(summary.entriesPath, "utf8");
  await writeFile(summary.entriesPath, text.replace('"label":0', '"label":1'));
  const error = await t.throwsAsync(collect(summary.summaryPath));
  t.is((error as { code?: string }).code, "manifest-root-mismatch");
});

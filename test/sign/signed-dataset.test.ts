import test from "ava";
import { execFile } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { decodeImage, inspectImage } from "../../src/sign/image-codec.ts";
import { listFiles, writeSignedDataset, type SignedImage } from "../../src/sign/signed-dataset.ts";
import {
  loadFashionSample,
  perturb,
  writeIdxDataset,
  writeImageFolder,
  type FixtureKind,
} from "./fixtures.ts";
import { temporaryFolder } from "../helpers/temporary.ts";

const run = promisify(execFile);

async function signedImagesFor(options: {
  root: string;
  trainPaths: string[];
  indices: number[];
  channels: number;
}): Promise<SignedImage[]> {
  const signed: SignedImage[] = [];
  for (const index of options.indices) {
    const bytes = await readFile(join(options.root, options.trainPaths[index]!));
    const original = await decodeImage(bytes, options.channels);
    signed.push({ index, pixels: { ...original, data: perturb(original.data, 16, index) } });
  }
  return signed;
}

for (const [kind, channels] of [
  ["png-gray", 1],
  ["png-rgb", 3],
  ["jpeg-rgb", 3],
  ["jpeg-gray", 1],
] as Array<[FixtureKind, number]>) {
  test(`a signed ${kind} dataset differs from the original only in the signing set, each file in its own format`, async (t) => {
    const sample = await loadFashionSample(14);
    const base = await temporaryFolder(t, "taggants-sign-");
    const root = join(base, "original");
    const out = join(base, "signed");
    const trainPaths = await writeImageFolder({ root, sample, kind });
    const indices = [1, 4, 7];
    const signed = await signedImagesFor({ root, trainPaths, indices, channels });

    const result = await writeSignedDataset({
      source: { layout: "imagefolder", root, trainPaths },
      signed,
      out,
    });

    t.deepEqual(await listFiles(out), await listFiles(root));
    const signedPaths = new Set(indices.map((i) => trainPaths[i]!));
    for (const file of await listFiles(root)) {
      const before = await readFile(join(root, file));
      const after = await readFile(join(out, file));
      if (!signedPaths.has(file)) {
        t.true(before.equals(after), `${file} is unchanged`);
        continue;
      }
      t.false(before.equals(after), `${file} carries a taggant`);
      t.deepEqual(
        await inspectImage(after),
        await inspectImage(before),
        `${file} keeps its format`,
      );
    }
    t.is(result.signedFiles, 3);
    for (const stats of result.stats) {
      t.true(stats.linf255 > 0);
      if (kind.startsWith("png")) {
        t.is(stats.retention, 1);
        t.true(stats.linf255 <= 16);
      } else {
        t.true(stats.retention! > 0.3 && stats.retention! < 1, `JPEG retention ${stats.retention}`);
      }
    }
  });
}

test("a lossless signed PNG decodes to exactly the crafted pixels", async (t) => {
  const sample = await loadFashionSample(6);
  const base = await temporaryFolder(t, "taggants-sign-");
  const root = join(base, "original");
  const trainPaths = await writeImageFolder({ root, sample, kind: "png-gray" });
  const [signed] = await signedImagesFor({ root, trainPaths, indices: [2], channels: 1 });
  await writeSignedDataset({
    source: { layout: "imagefolder", root, trainPaths },
    signed: [signed!],
    out: join(base, "s"),
  });
  const decoded = await decodeImage(await readFile(join(base, "s", trainPaths[2]!)), 1);
  t.deepEqual(decoded.data, signed!.pixels.data);
});

test("a signed idx dataset stays gzip idx with the original gzip header and changes only signed images", async (t) => {
  const sample = await loadFashionSample(40);
  const base = await temporaryFolder(t, "taggants-sign-");
  const root = join(base, "fmnist");
  const out = join(base, "signed");
  await writeIdxDataset(root, sample);
  const indices = [3, 17, 39];
  const signed: SignedImage[] = indices.map((index) => ({
    index,
    pixels: {
      data: perturb(sample.images.slice(index * 784, (index + 1) * 784), 16, index),
      channels: 1,
      height: 28,
      width: 28,
    },
  }));

  await writeSignedDataset({
    source: { layout: "idx", root, trainImagesFile: "train-images-idx3-ubyte.gz" },
    signed,
    out,
  });

  const labelsBefore = await readFile(join(root, "train-labels-idx1-ubyte.gz"));
  t.true(labelsBefore.equals(await readFile(join(out, "train-labels-idx1-ubyte.gz"))));
  const gzBefore = await readFile(join(root, "train-images-idx3-ubyte.gz"));
  const gzAfter = await readFile(join(out, "train-images-idx3-ubyte.gz"));
  t.true(gzBefore.subarray(0, 10).equals(gzAfter.subarray(0, 10)), "gzip header kept");
  const before = gunzipSync(gzBefore);
  const after = gunzipSync(gzAfter);
  t.is(after.length, before.length);
  t.true(before.subarray(0, 16).equals(after.subarray(0, 16)), "idx header kept");
  for (let i = 0; i < sample.count; i++) {
    const a = before.subarray(16 + i * 784, 16 + (i + 1) * 784);
    const b = after.subarray(16 + i * 784, 16 + (i + 1) * 784);
    if (indices.includes(i))
      t.deepEqual(new Uint8Array(b), signed[indices.indexOf(i)]!.pixels.data);
    else t.true(a.equals(b), `image ${i} unchanged`);
  }
});

test("hard-linking unchanged files gives the same bytes", async (t) => {
  const sample = await loadFashionSample(8);
  const base = await temporaryFolder(t, "taggants-sign-");
  const root = join(base, "original");
  const trainPaths = await writeImageFolder({ root, sample, kind: "png-gray" });
  const signed = await signedImagesFor({ root, trainPaths, indices: [0], channels: 1 });
  await writeSignedDataset({
    source: { layout: "imagefolder", root, trainPaths },
    signed,
    out: join(base, "s"),
    link: true,
  });
  const readme = await readFile(join(base, "s", "README.txt"), "utf8");
  t.is(readme, await readFile(join(root, "README.txt"), "utf8"));
});

test("a failure mid-write leaves no output folder and no partial folder", async (t) => {
  const sample = await loadFashionSample(10);
  const base = await temporaryFolder(t, "taggants-sign-");
  const root = join(base, "original");
  const trainPaths = await writeImageFolder({ root, sample, kind: "png-gray" });
  const signed = await signedImagesFor({ root, trainPaths, indices: [0], channels: 1 });
  await t.throwsAsync(
    writeSignedDataset({
      source: { layout: "imagefolder", root, trainPaths },
      signed,
      out: join(base, "signed"),
      onFile: (done) => {
        if (done === 4) throw new Error("disk full");
      },
    }),
    { message: "disk full" },
  );
  t.deepEqual(await readdir(base), ["original"]);
});

test("a process killed mid-write leaves only a hidden partial folder, which the next run replaces", async (t) => {
  const sample = await loadFashionSample(10);
  const base = await temporaryFolder(t, "taggants-sign-");
  const root = join(base, "original");
  const out = join(base, "signed");
  const trainPaths = await writeImageFolder({ root, sample, kind: "png-gray" });
  const script = join(base, "crash.mts");
  const writer = new URL("../../src/sign/signed-dataset.ts", import.meta.url).pathname;
  await writeFile(
    script,
    `import { writeSignedDataset } from ${JSON.stringify(writer)};
await writeSignedDataset({
  source: { layout: "imagefolder", root: ${JSON.stringify(root)}, trainPaths: ${JSON.stringify(trainPaths)} },
  signed: [],
  out: ${JSON.stringify(out)},
  onFile: (done) => { if (done === 3) process.kill(process.pid, "SIGKILL"); },
});`,
  );
  const repoRoot = new URL("../../", import.meta.url).pathname;
  const crash = await t.throwsAsync(
    run(process.execPath, ["--import", "tsx", script], { cwd: repoRoot }),
  );
  t.is(
    (crash as Error & { signal?: string }).signal,
    "SIGKILL",
    (crash as Error & { stderr?: string }).stderr,
  );
  const left = (await readdir(base)).filter((name) => name !== "original" && name !== "crash.mts");
  t.is(left.length, 1);
  t.regex(left[0]!, /^\.signed\.partial-\d+-[0-9a-f]+$/);

  const signed = await signedImagesFor({ root, trainPaths, indices: [1], channels: 1 });
  await writeSignedDataset({ source: { layout: "imagefolder", root, trainPaths }, signed, out });
  t.deepEqual((await readdir(base)).sort(), ["crash.mts", "original", "signed"]);
  t.deepEqual(await listFiles(out), await listFiles(root));
});

test("writing refuses to replace an existing signed dataset folder", async (t) => {
  const sample = await loadFashionSample(6);
  const base = await temporaryFolder(t, "taggants-sign-");
  const root = join(base, "original");
  const trainPaths = await writeImageFolder({ root, sample, kind: "png-gray" });
  await writeSignedDataset({
    source: { layout: "imagefolder", root, trainPaths },
    signed: [],
    out: join(base, "s"),
  });
  await t.throwsAsync(
    writeSignedDataset({
      source: { layout: "imagefolder", root, trainPaths },
      signed: [],
      out: join(base, "s"),
    }),
    { instanceOf: Error, message: /already exists/ },
  );
});

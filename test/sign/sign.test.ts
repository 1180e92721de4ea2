/**
 * Signing end to end through the real worker process, with `craft` replaced by a fast stand-in
 * (test/sign/fake_craft_worker.py): signing set, signed dataset on disk, public manifest and
 * commitment, private record, skipping done work, and the scan of every public output for key
 * material.
 */
import test from "ava";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { Terminal } from "../../src/cli/terminal.ts";
import { recordingTerminal } from "../helpers/terminal.ts";
import { loadCommitment, validateKeysAgainstCommitment } from "../../src/keys/commitment.ts";
import { deriveKeys } from "../../src/keys/derive.ts";
import { createKeySecret, loadKeySecret } from "../../src/keys/secret.ts";
import { loadManifest } from "../../src/manifest/index.ts";
import { inspectImage } from "../../src/sign/image-codec.ts";
import { loadSigningRecord } from "../../src/sign/record.ts";
import { signDataset, signedOutputPaths, type SignRequest } from "../../src/sign/sign.ts";
import { UsageError } from "../../src/errors.ts";
import { listFiles, pathExists } from "../../src/sign/signed-dataset.ts";
import { derivedManifestDir } from "../../src/manifest/index.ts";
import { resolvePython } from "../../src/env/python.ts";
import { startWorker, type Worker } from "../../src/worker/client.ts";
import { loadFashionSample, writeIdxDataset, writeImageFolder } from "./fixtures.ts";
import { removeFolder, sharedTemporaryFolder } from "../helpers/temporary.ts";

const fakeWorker = new URL("./fake_craft_worker.py", import.meta.url).pathname;
const quiet = new Terminal({ verbosity: "quiet" });

let worker: Worker;
let base: string;
let craftLog: string;

test.before(async () => {
  base = await sharedTemporaryFolder("taggants-signing-");
  // Derived manifests of the original datasets go to the user cache: this file's own (the
  // worker's interpreter, found through the real cache, is pinned first).
  process.env.TAGGANTS_PYTHON ??= resolvePython();
  process.env.XDG_CACHE_HOME = join(base, "cache");
  craftLog = join(base, "craft.log");
  worker = await startWorker({
    terminal: quiet,
    entry: [fakeWorker],
    device: "cpu",
    env: { FAKE_CRAFT_LOG: craftLog },
  });
});

test.after.always(async () => {
  await worker?.close();
  await removeFolder(base);
});

async function fakeSurrogate(path: string, channels: number): Promise<string> {
  await mkdir(path, { recursive: true });
  const classes = Array.from({ length: 10 }, (_, i) => `class${i}`);
  await writeFile(
    join(path, "checkpoint.json"),
    JSON.stringify({ classes, channels, input_size: [28, 28], complete: true }),
  );
  await writeFile(join(path, "model.safetensors"), "weights stand-in");
  return path;
}

async function idxClasses(): Promise<string[]> {
  return Array.from({ length: 10 }, (_, i) => String(i));
}

function request(root: string, name: string, extra: Partial<SignRequest> = {}): SignRequest {
  return {
    data: root,
    keyFile: join(base, `${name}.key`),
    surrogates: [join(base, `${name}-surrogate`)],
    out: join(base, name, "signed"),
    record: join(base, name, "private", "record.json"),
    keyCount: 4,
    budget: { perKey: 5 },
    craft: {
      eps255: 16,
      steps: 3,
      restarts: 1,
      stepSize: 0.1,
      augDraws: 1,
      perceptual: "none",
      perceptualWeight: 0,
      chunkSize: 16,
      seed: 0,
    },
    ...extra,
  };
}

test.serial(
  "signing an idx dataset writes a signed copy that differs exactly in the signing set",
  async (t) => {
    const root = join(base, "fmnist");
    await writeIdxDataset(root, await loadFashionSample(400));
    const req = request(root, "idx");
    await createKeySecret(req.keyFile);
    await writeFakeIdxSurrogate(req.surrogates[0]!);

    const outcome = await signDataset(req, { worker, terminal: quiet });

    t.false(outcome.skipped);
    t.false(await pathExists(`${req.record}.work`), "the resumable work folder is removed");
    t.is(outcome.signingImages, 20);
    const record = await loadSigningRecord(req.record);
    t.is((await stat(req.record)).mode & 0o777, 0o600);
    const indices = record.signing_indices.flat();
    t.is(new Set(indices).size, 20);
    const before = gunzipSync(await readFile(join(root, "train-images-idx3-ubyte.gz")));
    const after = gunzipSync(await readFile(join(req.out, "train-images-idx3-ubyte.gz")));
    const changed: number[] = [];
    for (let i = 0; i < 400; i++) {
      if (
        !before
          .subarray(16 + i * 784, 16 + (i + 1) * 784)
          .equals(after.subarray(16 + i * 784, 16 + (i + 1) * 784))
      )
        changed.push(i);
    }
    t.deepEqual(
      changed,
      [...indices].sort((a, b) => a - b),
    );

    const manifest = await loadManifest(signedOutputPaths(req.out).manifest);
    const commitment = await loadCommitment(signedOutputPaths(req.out).commitment);
    t.is(commitment.signedRoot, manifest.root_hash);
    t.is(record.signed.root_hash, manifest.root_hash);
    const keys = deriveKeys(await loadKeySecret(req.keyFile), {
      count: 4,
      resolution: record.params.key_resolution,
      channels: 1,
      classes: 10,
      datasetId: record.original.root_hash,
    });
    t.notThrows(() => validateKeysAgainstCommitment({ record: commitment, keys }));
    t.deepEqual(record.cosine, [0.5, 0.5, 0.5, 0.5]);
    t.is(record.written.linf_255_max, 16);
  },
);

test.serial("signing again with the same inputs redoes nothing", async (t) => {
  const req = request(join(base, "fmnist"), "idx");
  const callsBefore = (await readFile(craftLog, "utf8")).split("\n").filter(Boolean).length;
  const outcome = await signDataset(req, { worker, terminal: quiet });
  t.true(outcome.skipped);
  t.is((await readFile(craftLog, "utf8")).split("\n").filter(Boolean).length, callsBefore);
});

test.serial(
  "signing other inputs into an existing signed folder is refused before any crafting",
  async (t) => {
    const req = request(join(base, "fmnist"), "idx", { keyCount: 3 });
    const callsBefore = (await readFile(craftLog, "utf8")).split("\n").filter(Boolean).length;
    await t.throwsAsync(signDataset(req, { worker, terminal: quiet }), {
      instanceOf: UsageError,
      message: /already exists and was not made from these inputs/,
    });
    t.is((await readFile(craftLog, "utf8")).split("\n").filter(Boolean).length, callsBefore);
    t.false(await pathExists(`${req.record}.work`));
  },
);

test.serial(
  "no public output contains a key image, the key labels, the key secret or a signing index list",
  async (t) => {
    const req = request(join(base, "fmnist"), "idx");
    const record = await loadSigningRecord(req.record);
    const secret = await loadKeySecret(req.keyFile);
    const keys = deriveKeys(secret, {
      count: 4,
      resolution: record.params.key_resolution,
      channels: 1,
      classes: 10,
      datasetId: record.original.root_hash,
    });
    const publicFiles = await publicOutputs(req.out);
    t.true(publicFiles.length >= 5);

    const needles = secretNeedles({ secret, keys, signingIndices: record.signing_indices });
    for (const file of publicFiles) {
      const haystack = await readPublic(file);
      for (const needle of needles) {
        t.false(haystack.includes(needle.bytes), `${file} contains ${needle.what}`);
      }
    }
  },
);

test.serial(
  "signing a PNG ImageFolder keeps every file's format and publishes nothing secret",
  async (t) => {
    const root = join(base, "pngs");
    const trainPaths = await writeImageFolder({
      root,
      sample: await loadFashionSample(120),
      kind: "png-gray",
      testCount: 20,
    });
    const req = request(root, "png", { budget: { perKey: 2 } });
    await createKeySecret(req.keyFile);
    await fakeSurrogate(req.surrogates[0]!, 1);
    await writeClassNames(req.surrogates[0]!, root);

    // The ImageFolder fixtures' README.txt is there on purpose: the warning that skips it is
    // checked here instead of printed to the test log.
    const { terminal, printed } = recordingTerminal("quiet");
    const outcome = await signDataset(req, { worker, terminal });

    t.regex(printed(), /warning: not part of the dataset, skipped: README\.txt/);
    t.is(outcome.signingImages, 8);
    const record = await loadSigningRecord(req.record);
    const signedPaths = new Set(record.signing_indices.flat().map((index) => trainPaths[index]!));
    t.deepEqual(await listFiles(req.out), await listFiles(root));
    for (const file of await listFiles(root)) {
      const same = (await readFile(join(root, file))).equals(await readFile(join(req.out, file)));
      t.is(same, !signedPaths.has(file), file);
    }
    const secret = await loadKeySecret(req.keyFile);
    const keys = deriveKeys(secret, {
      count: 4,
      resolution: record.params.key_resolution,
      channels: 1,
      classes: 10,
      datasetId: record.original.root_hash,
    });
    const needles = secretNeedles({ secret, keys, signingIndices: record.signing_indices });
    for (const file of await publicOutputs(req.out)) {
      const haystack = await readPublic(file);
      for (const needle of needles)
        t.false(haystack.includes(needle.bytes), `${file} contains ${needle.what}`);
    }
  },
);

test.serial(
  "signing a JPEG ImageFolder re-encodes like the originals and measures the gradient cosine as written",
  async (t) => {
    const root = join(base, "jpegs");
    const trainPaths = await writeImageFolder({
      root,
      sample: await loadFashionSample(120),
      kind: "jpeg-rgb",
      testCount: 20,
    });
    const req = request(root, "jpeg", { budget: { perKey: 2 } });
    await createKeySecret(req.keyFile);
    await fakeSurrogate(req.surrogates[0]!, 3);
    await writeClassNames(req.surrogates[0]!, root);

    const { terminal, printed } = recordingTerminal("quiet");
    const outcome = await signDataset(req, { worker, terminal });

    t.regex(printed(), /skipped: README\.txt/);
    t.deepEqual(outcome.written.containers, { jpeg: 8 });
    t.deepEqual(outcome.written.jpeg_cosine, {
      crafted: [0.5, 0.5, 0.5, 0.5],
      written: [0.25, 0.25, 0.25, 0.25],
    });
    t.true(outcome.written.jpeg_retention_mean! > 0 && outcome.written.jpeg_retention_mean! < 1);
    const record = await loadSigningRecord(req.record);
    t.deepEqual(record.written.jpeg_cosine, outcome.written.jpeg_cosine);
    for (const index of record.signing_indices.flat()) {
      const path = trainPaths[index]!;
      const before = await inspectImage(await readFile(join(root, path)));
      t.deepEqual(await inspectImage(await readFile(join(req.out, path))), before, path);
    }
  },
);

test.serial("a surrogate trained on other classes is refused before any crafting", async (t) => {
  const req = request(join(base, "fmnist"), "wrong", {});
  await createKeySecret(req.keyFile);
  await mkdir(req.surrogates[0]!, { recursive: true });
  await writeFile(
    join(req.surrogates[0]!, "checkpoint.json"),
    JSON.stringify({ classes: ["a", "b"], channels: 1, input_size: [28, 28], complete: true }),
  );
  await writeFile(join(req.surrogates[0]!, "model.safetensors"), "x");
  await t.throwsAsync(signDataset(req, { worker, terminal: quiet }), {
    message: /has 2 classes but the dataset has 10/,
  });
  t.false(await pathExists(`${req.record}.work`), "a usage error leaves no work folder");
});

test.serial("invalid signing parameters are refused before the dataset is indexed", async (t) => {
  const root = join(base, "never-indexed");
  await writeIdxDataset(root, await loadFashionSample(50));
  const cases: Array<[Partial<SignRequest>, RegExp]> = [
    [{ budget: { fraction: 0 } }, /--budget\) must be a fraction .* received 0/],
    [{ budget: { perKey: 0 } }, /--per-key\) must be an integer >= 1/],
    [{ keyCount: 0 }, /--keys must be a whole number >= 1/],
    [{ out: join(root, "signed") }, /overlap/],
  ];
  for (const [extra, message] of cases) {
    const req = request(root, "invalid", extra);
    const error = await t.throwsAsync(signDataset(req, { worker, terminal: quiet }), { message });
    t.is((error as { exitCode?: number }).exitCode, 2);
    t.false(await pathExists(`${req.record}.work`), "no work folder");
  }
  t.false(await pathExists(derivedManifestDir(root)), "the dataset was not indexed");
});

test.serial(
  "a crafting job that fails keeps its work folder, so a re-run can resume",
  async (t) => {
    const req = request(join(base, "fmnist"), "failing");
    req.craft.seed = 999; // FAILING_SEED of fake_craft_worker.py
    await createKeySecret(req.keyFile);
    await writeFakeIdxSurrogate(req.surrogates[0]!);
    await t.throwsAsync(signDataset(req, { worker, terminal: quiet }), {
      message: /crafting failed/,
    });
    t.true(await pathExists(`${req.record}.work`));
    t.false(await pathExists(req.record));
  },
);

async function writeFakeIdxSurrogate(path: string): Promise<void> {
  await mkdir(path, { recursive: true });
  await writeFile(
    join(path, "checkpoint.json"),
    JSON.stringify({
      classes: await idxClasses(),
      channels: 1,
      input_size: [28, 28],
      complete: true,
    }),
  );
  await writeFile(join(path, "model.safetensors"), "weights stand-in");
}

/** Surrogate classes named as the ImageFolder's class folders. */
async function writeClassNames(surrogate: string, root: string): Promise<void> {
  const classes = (await listFiles(join(root, "train"))).map((path) => path.split("/")[0]!);
  const record = JSON.parse(await readFile(join(surrogate, "checkpoint.json"), "utf8"));
  record.classes = [...new Set(classes)].sort();
  await writeFile(join(surrogate, "checkpoint.json"), JSON.stringify(record));
}

/** Every file a dataset owner publishes: the signed dataset, its manifest and the commitment. */
async function publicOutputs(out: string): Promise<string[]> {
  const paths = signedOutputPaths(out);
  const manifest = await loadManifest(paths.manifest);
  return [
    ...(await listFiles(out)).map((file) => join(out, file)),
    manifest.summaryPath,
    manifest.entriesPath,
    paths.commitment,
  ];
}

/** A file's bytes, decompressed when gzip, so compression cannot hide key material. */
async function readPublic(path: string): Promise<Buffer> {
  const bytes = await readFile(path);
  return bytes[0] === 0x1f && bytes[1] === 0x8b ? Buffer.concat([bytes, gunzipSync(bytes)]) : bytes;
}

function secretNeedles(options: {
  secret: Uint8Array;
  keys: Array<{ image: Uint8Array; label: number }>;
  signingIndices: number[][];
}): Array<{ what: string; bytes: Buffer }> {
  const { secret, keys, signingIndices } = options;
  const labels = keys.map((key) => key.label);
  const text = (value: string): Buffer => Buffer.from(value, "utf8");
  return [
    { what: "the key secret (raw)", bytes: Buffer.from(secret) },
    { what: "the key secret (hex)", bytes: text(Buffer.from(secret).toString("hex")) },
    { what: "the key secret (base64)", bytes: text(Buffer.from(secret).toString("base64")) },
    ...keys.map((key, i) => ({ what: `key image ${i}`, bytes: Buffer.from(key.image) })),
    { what: "the key labels (JSON)", bytes: text(JSON.stringify(labels)) },
    { what: "the key labels (comma list)", bytes: text(labels.join(", ")) },
    ...signingIndices.flatMap((indices, key) => [
      { what: `key ${key}'s signing indices (JSON)`, bytes: text(JSON.stringify(indices)) },
      { what: `key ${key}'s signing indices (comma list)`, bytes: text(indices.join(", ")) },
      {
        what: `key ${key}'s sorted signing indices`,
        bytes: text(JSON.stringify([...indices].sort((a, b) => a - b))),
      },
    ]),
    { what: "all signing indices (JSON)", bytes: text(JSON.stringify(signingIndices)) },
  ];
}

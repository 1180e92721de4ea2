import test from "ava";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  computeCommitment,
  loadCommitment,
  saveCommitment,
  validateKeysAgainstCommitment,
} from "../../src/keys/commitment.ts";
import { deriveKeys, type Key } from "../../src/keys/derive.ts";
import { CheckFailedError } from "../../src/errors.ts";
import { temporaryFolder } from "../helpers/temporary.ts";

const secret = Uint8Array.from({ length: 32 }, (_, i) => i);
const originalRoot = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const signedRoot = "11".repeat(32);
const params = { count: 4, resolution: 7, channels: 1, classes: 10, datasetId: originalRoot };
const keys = deriveKeys(secret, params);

test("the commitment of the golden keys matches the value computed independently in docs/KEYS.md", (t) => {
  t.is(
    computeCommitment({ params, keys, originalRoot, signedRoot }),
    "49d9929f6eec1dcad2dad0d971dd83bebcddaaff5c33d829d5f2b955d32ad739",
  );
});

function withKey(index: number, change: (key: Key) => Key): Key[] {
  return keys.map((key) => (key.index === index ? change(key) : key));
}

test("changing one key pixel, one label or either dataset root changes the commitment", (t) => {
  const base = computeCommitment({ params, keys, originalRoot, signedRoot });
  const pixel = withKey(2, (key) => {
    const image = key.image.slice();
    image[48] = image[48]! ^ 1;
    return { ...key, image };
  });
  const label = withKey(3, (key) => ({ ...key, label: (key.label + 1) % 10 }));
  const variants = [
    computeCommitment({ params, keys: pixel, originalRoot, signedRoot }),
    computeCommitment({ params, keys: label, originalRoot, signedRoot }),
    computeCommitment({ params, keys, originalRoot: "0".repeat(64), signedRoot }),
    computeCommitment({ params, keys, originalRoot, signedRoot: "0".repeat(64) }),
    computeCommitment({ params: { ...params, classes: 11 }, keys, originalRoot, signedRoot }),
  ];
  for (const variant of variants) t.not(variant, base);
  t.is(new Set(variants).size, variants.length);
});

test("keys that do not fit the parameters cannot be committed", (t) => {
  t.throws(() => computeCommitment({ params, keys: keys.slice(0, 3), originalRoot, signedRoot }));
  t.throws(() =>
    computeCommitment({
      params: { ...params, classes: 5 },
      keys: withKey(0, (k) => ({ ...k, label: 7 })),
      originalRoot,
      signedRoot,
    }),
  );
  t.throws(() => computeCommitment({ params, keys, originalRoot: "xyz", signedRoot }));
});

test("the commitment file round-trips and reveals no key material", async (t) => {
  const folder = await temporaryFolder(t, "taggants-commitment-");
  const path = join(folder, "commitment.json");
  const saved = await saveCommitment(path, { params, keys, originalRoot, signedRoot });
  t.deepEqual(await loadCommitment(path), saved);
  const text = await readFile(path, "utf8");
  t.deepEqual(Object.keys(JSON.parse(text)).sort(), [
    "channels",
    "classes",
    "commitment",
    "created_by",
    "dataset_id",
    "key_count",
    "original_root",
    "resolution",
    "schema",
    "scheme_version",
    "signed_root",
  ]);
  t.false(text.includes(Buffer.from(keys[0]!.image.subarray(0, 8)).toString("hex")));
});

test("detection's check accepts the committed keys and refuses any others, saying so", async (t) => {
  const folder = await temporaryFolder(t, "taggants-commitment-");
  const record = await saveCommitment(join(folder, "c.json"), {
    params,
    keys,
    originalRoot,
    signedRoot,
  });
  t.notThrows(() => validateKeysAgainstCommitment({ record, keys }));
  const otherSecret = deriveKeys(
    Uint8Array.from({ length: 32 }, () => 7),
    params,
  );
  for (const wrong of [
    otherSecret,
    keys.slice(0, 3),
    withKey(1, (k) => ({ ...k, label: (k.label + 1) % 10 })),
  ]) {
    const error = t.throws(() => validateKeysAgainstCommitment({ record, keys: wrong }));
    t.true(error instanceof CheckFailedError);
    t.is((error as CheckFailedError).code, "commitment-mismatch");
    t.regex(error!.message, /do not (reproduce|match) the (published )?commitment/);
  }
});

test("a file that is not a commitment is refused", async (t) => {
  const folder = await temporaryFolder(t, "taggants-commitment-");
  const path = join(folder, "c.json");
  await saveCommitment(path, { params, keys, originalRoot, signedRoot });
  await writeFile(path, JSON.stringify({ schema: "something/else" }));
  const error = await t.throwsAsync(loadCommitment(path));
  t.is((error as { code?: string }).code, "commitment-file-invalid");
});

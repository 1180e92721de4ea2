import test from "ava";
import {
  chooseSigningSet,
  resolveImagesPerKey,
  validateEps255,
  validateSurrogateClasses,
} from "../../src/sign/signing-set.ts";

const secret = new Uint8Array(32).fill(7);
const otherSecret = new Uint8Array(32).fill(8);
const rootHash = "ab".repeat(32);
/** 10 classes, 50 images each, interleaved as in a shuffled dataset. */
const trainLabels = Array.from({ length: 500 }, (_, i) => (i * 7) % 10);

test("each key's signing images have the key's label and no image serves two keys", async (t) => {
  const keyLabels = [3, 3, 5, 0, 3];
  const sets = await chooseSigningSet({ secret, rootHash, keyLabels, trainLabels, perKey: 12 });
  t.is(sets.length, 5);
  sets.forEach((indices, key) => {
    t.is(indices.length, 12);
    for (const index of indices) t.is(trainLabels[index], keyLabels[key]);
  });
  const all = sets.flat();
  t.is(new Set(all).size, all.length);
});

test("the signing set is reproducible from the key secret and changes with it", async (t) => {
  const options = { rootHash, keyLabels: [1, 2], trainLabels, perKey: 5 };
  const first = await chooseSigningSet({ secret, ...options });
  t.deepEqual(await chooseSigningSet({ secret: new Uint8Array(32).fill(7), ...options }), first);
  t.notDeepEqual(await chooseSigningSet({ secret: otherSecret, ...options }), first);
  t.notDeepEqual(await chooseSigningSet({ secret, ...options, rootHash: "cd".repeat(32) }), first);
});

test("the signing set is not simply the first images of the label", async (t) => {
  const [indices] = await chooseSigningSet({
    secret,
    rootHash,
    keyLabels: [4],
    trainLabels,
    perKey: 10,
  });
  const firstOfLabel = trainLabels.flatMap((label, i) => (label === 4 ? [i] : [])).slice(0, 10);
  t.notDeepEqual(
    [...indices!].sort((a, b) => a - b),
    firstOfLabel,
  );
});

test("images that cannot be rewritten in their own format are skipped", async (t) => {
  const ineligible = new Set(
    trainLabels.flatMap((label, i) => (label === 6 && Math.floor(i / 10) % 2 === 0 ? [i] : [])),
  );
  const [indices] = await chooseSigningSet({
    secret,
    rootHash,
    keyLabels: [6],
    trainLabels,
    perKey: 20,
    isEligible: (index) => !ineligible.has(index),
  });
  t.is(indices!.length, 20);
  for (const index of indices!) t.false(ineligible.has(index));
});

test("a key label with too few images for its share is refused without naming the label", async (t) => {
  const error = await t.throwsAsync(
    chooseSigningSet({ secret, rootHash, keyLabels: [2, 2], trainLabels, perKey: 30 }),
    { message: /Key 1 needs 30 signing images of its label, but only 20/ },
  );
  t.is((error as Error & { code: string }).code, "signing-set-too-few-images");
  t.notRegex(error!.message, /class 2|label 2/);
});

test("a budget that rounds to zero images per key is refused", (t) => {
  t.is(resolveImagesPerKey({ budget: { fraction: 0.001 }, trainCount: 60_000, keyCount: 10 }), 6);
  t.is(resolveImagesPerKey({ budget: { perKey: 100 }, trainCount: 60_000, keyCount: 10 }), 100);
  const error = t.throws(() =>
    resolveImagesPerKey({ budget: { fraction: 0.001 }, trainCount: 5_000, keyCount: 10 }),
  );
  t.is((error as Error & { code: string }).code, "budget-rounds-to-zero");
  t.throws(
    () => resolveImagesPerKey({ budget: { fraction: 1.5 }, trainCount: 5_000, keyCount: 10 }),
    {
      message: /fraction of the training set in \(0, 1\)/,
    },
  );
  t.throws(() => resolveImagesPerKey({ budget: { perKey: 0 }, trainCount: 5_000, keyCount: 10 }));
});

test("ε outside (0, 255] in units of 1/255 is refused", (t) => {
  for (const bad of [0, -1, 255.5, 1000, Number.NaN]) {
    t.throws(() => validateEps255(bad), { message: /units of 1\/255 and must lie in \(0, 255\]/ });
  }
  t.notThrows(() => validateEps255(16));
  t.notThrows(() => validateEps255(255));
});

test("a surrogate whose classes differ from the dataset's is refused", (t) => {
  const datasetClasses = ["a", "b", "c"];
  t.notThrows(() =>
    validateSurrogateClasses({ surrogate: "s", surrogateClasses: ["a", "b", "c"], datasetClasses }),
  );
  t.throws(
    () => validateSurrogateClasses({ surrogate: "s", surrogateClasses: 10, datasetClasses }),
    {
      message: /has 10 classes but the dataset has 3/,
    },
  );
  t.throws(
    () =>
      validateSurrogateClasses({
        surrogate: "s",
        surrogateClasses: ["a", "c", "b"],
        datasetClasses,
      }),
    {
      message: /names class 1 "c" where the dataset has "b"/,
    },
  );
});

import test from "ava";
import { createHash } from "node:crypto";
import { defaultKeyResolution, deriveKeyLabels, deriveKeys } from "../../src/keys/derive.ts";
import { KeyedStream } from "../../src/keys/random.ts";

/** The golden vector of docs/KEYS.md, computed independently with the openssl command line. */
const GOLDEN = {
  secret: Uint8Array.from({ length: 32 }, (_, i) => i),
  datasetId: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  firstKeyBytes: "7b4ba5fd9707d51588ed550c079a34fc",
  imagesSha256: "9df1ffccf3611d08dd63aabfdbcaaa79db3d08c0545a9ef381775ba83e1184d9",
  labels: [9, 7, 2, 7, 2, 4, 3, 2, 1, 9, 2, 2, 7, 2, 1, 8],
  streamBytes: "887e78c3ad3ef4e8cc07cbd8a1ba3c85",
};

const params = { count: 4, resolution: 7, channels: 1, classes: 10, datasetId: GOLDEN.datasetId };

test("keys derived from the golden secret match the published golden vector", (t) => {
  const keys = deriveKeys(GOLDEN.secret, params);
  const images = createHash("sha256");
  for (const key of keys) images.update(key.image);
  t.is(Buffer.from(keys[0]!.image.subarray(0, 16)).toString("hex"), GOLDEN.firstKeyBytes);
  t.is(images.digest("hex"), GOLDEN.imagesSha256);
  t.deepEqual(
    keys.map((key) => key.label),
    GOLDEN.labels.slice(0, 4),
  );
  t.deepEqual([...deriveKeyLabels(GOLDEN.secret, { ...params, count: 16 })], GOLDEN.labels);
});

test("a keyed stream is HKDF-SHA256 then AES-256-CTR, as the golden vector says", (t) => {
  const bytes = new KeyedStream(GOLDEN.secret, "golden").bytes(16);
  t.is(Buffer.from(bytes).toString("hex"), GOLDEN.streamBytes);
});

test("keys are CHW images of channels × resolution² bytes with labels below C", (t) => {
  const keys = deriveKeys(GOLDEN.secret, {
    ...params,
    count: 3,
    channels: 3,
    resolution: 64,
    classes: 1000,
  });
  t.is(keys.length, 3);
  for (const [index, key] of keys.entries()) {
    t.is(key.index, index);
    t.is(key.image.length, 3 * 64 * 64);
    t.true(key.label >= 0 && key.label < 1000);
  }
});

test("deriving more keys extends the first ones without changing them", (t) => {
  const few = deriveKeys(GOLDEN.secret, params);
  const more = deriveKeys(GOLDEN.secret, { ...params, count: 10 });
  t.deepEqual(more.slice(0, 4), few);
});

test("another secret or another dataset gives other keys", (t) => {
  const base = deriveKeys(GOLDEN.secret, params);
  const otherSecret = Uint8Array.from(GOLDEN.secret, (byte, i) => (i === 0 ? byte ^ 1 : byte));
  const otherDataset = deriveKeys(GOLDEN.secret, { ...params, datasetId: "f".repeat(64) });
  t.notDeepEqual(deriveKeys(otherSecret, params)[0]!.image, base[0]!.image);
  t.notDeepEqual(otherDataset[0]!.image, base[0]!.image);
});

/** χ² statistic of observed counts against a uniform expectation. */
function chiSquare(counts: number[], total: number): number {
  const expected = total / counts.length;
  return counts.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
}

// Critical values χ²(1 − 1e-3; C − 1) from scipy.stats.chi2.isf(1e-3, df).
for (const [classes, critical] of [
  [10, 27.877164871256575],
  [1000, 1142.8479838910355],
] as const) {
  test(`a million key labels over ${classes} classes pass a χ² uniformity test at 1e-3`, (t) => {
    const total = 1_000_000;
    const labels = deriveKeyLabels(GOLDEN.secret, {
      count: total,
      classes,
      datasetId: `uniformity-${classes}`,
    });
    const counts = new Array<number>(classes).fill(0);
    for (const label of labels) counts[label]! += 1;
    const statistic = chiSquare(counts, total);
    t.true(
      statistic < critical,
      `χ² = ${statistic} ≥ ${critical} with ${classes - 1} degrees of freedom`,
    );
  });
}

test("the default key resolution is a quarter of the image side, between 1 and 64", (t) => {
  t.is(defaultKeyResolution(28), 7);
  t.is(defaultKeyResolution(32), 8);
  t.is(defaultKeyResolution(224), 56);
  t.is(defaultKeyResolution(256), 64);
  t.is(defaultKeyResolution(4000), 64);
  t.is(defaultKeyResolution(2), 1);
  t.throws(() => defaultKeyResolution(0));
});

test("invalid key parameters are refused with a usage error", (t) => {
  for (const bad of [
    { ...params, count: 0 },
    { ...params, classes: 1 },
    { ...params, channels: 2 },
    { ...params, resolution: 0 },
    { ...params, datasetId: "" },
  ]) {
    const error = t.throws(() => deriveKeys(GOLDEN.secret, bad));
    t.is((error as { code?: string }).code, "key-params-invalid");
  }
});

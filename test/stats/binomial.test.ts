import test from "ava";
import { binomialTest, log10BinomialTail } from "../../src/stats/index.ts";
import { oracle, relativeError } from "./oracle.ts";

test("the binomial tail matches the mpmath oracle to 1e-9 relative error over the whole grid", (t) => {
  let worst = { error: 0, at: "" };
  for (const [keys, topK, classes, hits, expected] of oracle.binomial) {
    const error = relativeError(log10BinomialTail({ hits, keys, topK, classes }), expected);
    if (error > worst.error) worst = { error, at: `K=${keys} k=${topK} C=${classes} h=${hits}` };
  }
  t.true(oracle.binomial.length > 3000);
  t.true(worst.error <= 1e-9, `worst relative error ${worst.error} at ${worst.at}`);
});

test("hand-computed small cases come out exactly", (t) => {
  // P[X >= 1], X ~ Bin(1, 1/2) = 1/2; P[X >= 2], X ~ Bin(3, 1/2) = 4/8.
  t.true(
    relativeError(log10BinomialTail({ hits: 1, keys: 1, topK: 1, classes: 2 }), Math.log10(0.5)) <
      1e-15,
  );
  t.true(
    relativeError(log10BinomialTail({ hits: 2, keys: 3, topK: 1, classes: 2 }), Math.log10(0.5)) <
      1e-15,
  );
  // All of 10 keys hit in the top 10 of 1000 classes: (1/100)^10.
  t.true(
    relativeError(log10BinomialTail({ hits: 10, keys: 10, topK: 10, classes: 1000 }), -20) < 1e-14,
  );
  t.is(log10BinomialTail({ hits: 0, keys: 5, topK: 1, classes: 10 }), 0);
});

test("the tail stays finite far below 1e-300", (t) => {
  const log10P = log10BinomialTail({ hits: 100_000, keys: 100_000, topK: 1, classes: 100_000 });
  t.true(Number.isFinite(log10P));
  t.true(relativeError(log10P, -500_000) < 1e-12);
});

test("the binomial test reports the null rate, the expected hits and an interval", (t) => {
  const result = binomialTest({ hits: 8, keys: 10, topK: 1, classes: 10 });
  t.is(result.nullRate, 0.1);
  t.is(result.expectedHits, 1);
  t.is(result.hitRate, 0.8);
  t.true(result.interval.lower < 0.8 && result.interval.upper > 0.8);
  t.true(result.log10P < -5);
});

test("out-of-range inputs throw a typed error", (t) => {
  const bad = [
    { hits: 1, keys: 0, topK: 1, classes: 10 },
    { hits: 11, keys: 10, topK: 1, classes: 10 },
    { hits: -1, keys: 10, topK: 1, classes: 10 },
    { hits: 1, keys: 10, topK: 0, classes: 10 },
    { hits: 1, keys: 10, topK: 10, classes: 10 },
    { hits: 1, keys: 10, topK: 1, classes: 1 },
    { hits: 1.5, keys: 10, topK: 1, classes: 10 },
    { hits: Number.NaN, keys: 10, topK: 1, classes: 10 },
  ];
  for (const question of bad) {
    const error = t.throws(() => log10BinomialTail(question));
    t.is((error as { code?: string }).code, "stats-input-invalid", JSON.stringify(question));
  }
});

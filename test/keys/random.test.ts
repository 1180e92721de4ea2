import test from "ava";
import { KeyedStream } from "../../src/keys/random.ts";

const secret = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);

test("a keyed stream is the same however its bytes are requested", (t) => {
  const whole = new KeyedStream(secret, "chunks").bytes(200_000);
  const pieces = new KeyedStream(secret, "chunks");
  const parts = [1, 3, 65_536, 7, 100_000, 34_453].map((n) => pieces.bytes(n));
  t.deepEqual(Buffer.concat(parts), Buffer.from(whole));
});

test("different contexts give independent streams", (t) => {
  const a = new KeyedStream(secret, "signing-set/a").bytes(32);
  const b = new KeyedStream(secret, "signing-set/b").bytes(32);
  t.notDeepEqual(a, b);
});

test("uniform integers have no modulo bias where a modulo would be badly biased", (t) => {
  // n = 3·2^30: a bare `word % n` would put half of the draws below 2^30 instead of a third.
  const n = 3 * 2 ** 30;
  const stream = new KeyedStream(secret, "bias");
  const draws = 60_000;
  let low = 0;
  for (let i = 0; i < draws; i++) {
    const value = stream.uniformInt(n);
    t.true(value >= 0 && value < n);
    if (value < 2 ** 30) low += 1;
  }
  // Binomial(60000, 1/3): sd ≈ 115; allow 6 sd.
  t.true(Math.abs(low - draws / 3) < 700, `${low} of ${draws} below 2^30`);
});

test("uniformInt covers the whole range including n = 1 and n = 2^32", (t) => {
  const stream = new KeyedStream(secret, "range");
  t.is(stream.uniformInt(1), 0);
  const big = stream.uniformInt(2 ** 32);
  t.true(Number.isInteger(big) && big >= 0 && big < 2 ** 32);
  t.throws(() => stream.uniformInt(0));
  t.throws(() => stream.uniformInt(2 ** 32 + 1));
  t.throws(() => stream.uniformInt(2.5));
});

test("a shuffle is a permutation and every order of three items is about equally likely", (t) => {
  const stream = new KeyedStream(secret, "shuffle");
  const counts = new Map<string, number>();
  const draws = 30_000;
  for (let i = 0; i < draws; i++) {
    const order = stream.shuffle(["a", "b", "c"]).join("");
    counts.set(order, (counts.get(order) ?? 0) + 1);
  }
  t.is(counts.size, 6);
  const expected = draws / 6;
  const chiSquare = [...counts.values()].reduce(
    (sum, c) => sum + (c - expected) ** 2 / expected,
    0,
  );
  // scipy.stats.chi2.isf(1e-3, 5)
  t.true(chiSquare < 20.515005652432876, `χ² = ${chiSquare}`);
});

test("shuffle leaves its input alone and is reproducible", (t) => {
  const items = Array.from({ length: 50 }, (_, i) => i);
  const first = new KeyedStream(secret, "same").shuffle(items);
  const second = new KeyedStream(secret, "same").shuffle(items);
  t.deepEqual(first, second);
  t.deepEqual(
    items,
    Array.from({ length: 50 }, (_, i) => i),
  );
  t.deepEqual(
    [...first].sort((a, b) => a - b),
    items,
  );
});

test("a short secret is refused", (t) => {
  t.throws(() => new KeyedStream(new Uint8Array(8), "x"));
});

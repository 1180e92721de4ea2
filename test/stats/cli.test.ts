import test from "ava";
import { execa } from "execa";
import { fileURLToPath } from "node:url";
import { oracle, relativeError } from "./oracle.ts";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const taggants = (...args: string[]) =>
  execa("node", ["--import", "tsx", MAIN, ...args], { reject: false });

test("`stats binomial --json` prints log10 p that matches the oracle", async (t) => {
  const [keys, topK, classes, hits, expected] = oracle.binomial.find(
    ([K, , C, h]) => K === 1000 && C === 1000 && h > 20,
  )!;
  const result = await taggants(
    "--json",
    "stats",
    "binomial",
    "--hits",
    String(hits),
    "--keys",
    String(keys),
    "--top-k",
    String(topK),
    "--classes",
    String(classes),
  );
  t.is(result.exitCode, 0, result.stderr);
  const printed = JSON.parse(result.stdout) as { log10P: number; hits: number };
  t.true(relativeError(printed.log10P, expected) < 1e-9);
  t.is(printed.hits, hits);
});

test("`stats fisher --log10p` combines negative log10 values and prints the human result", async (t) => {
  const result = await taggants("stats", "fisher", "--log10p", "-1", "-1");
  t.is(result.exitCode, 0, result.stderr);
  // Hand-computed: s = 2·ln 10, P = e^{-s}(1 + s), log10 P = −2 + log10(1 + 2 ln 10) ≈ −1.2552.
  const expected = -2 + Math.log10(1 + 2 * Math.LN10);
  t.regex(result.stdout, new RegExp(`log10 p = ${expected.toPrecision(6).replace(".", "\\.")}`));
  t.regex(result.stdout, /4 degrees of freedom/);
});

test("`stats binomial` with more hits than keys exits with a usage error", async (t) => {
  const result = await taggants(
    "stats",
    "binomial",
    "--hits",
    "11",
    "--keys",
    "10",
    "--top-k",
    "1",
    "--classes",
    "10",
  );
  t.is(result.exitCode, 2);
  t.regex(result.stderr, /stats-input-invalid/);
});

test("`stats fisher` over one run says 'run', and a value above 0 is refused with the valid range", async (t) => {
  const one = await taggants("stats", "fisher", "--log10p", "-3");
  t.is(one.exitCode, 0, one.stderr);
  t.regex(one.stdout, /Fisher's method over 1 run: /);

  const positive = await taggants("stats", "fisher", "--log10p", "-3", "0.5");
  t.is(positive.exitCode, 2);
  t.regex(positive.stderr, /a finite number ≤ 0, since a p-value lies in \(0, 1\]/);
  t.regex(positive.stderr, /value 2 of 2 is 0\.5\./);
});

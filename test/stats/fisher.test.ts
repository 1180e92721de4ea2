import test from "ava";
import { clopperPearson, fisherCombine } from "../../src/stats/index.ts";
import { fisherInputs, oracle, relativeError } from "./oracle.ts";

test("Fisher's method matches the mpmath oracle to 1e-9 relative error for 1 to 1000 runs", (t) => {
  let worst = { error: 0, at: "" };
  for (const [runs, a, b, expected] of oracle.fisher) {
    const error = relativeError(fisherCombine(fisherInputs(runs, a, b)).log10P, expected);
    if (error > worst.error) worst = { error, at: `R=${runs} a=${a} b=${b}` };
  }
  t.true(worst.error <= 1e-9, `worst relative error ${worst.error} at ${worst.at}`);
});

test("Fisher's method reports the chi-square statistic and its degrees of freedom", (t) => {
  // Two runs with p = 0.1 each: X = −2·2·ln 0.1, tail of χ²(4) = e^{−s}(1 + s), s = X/2.
  const result = fisherCombine([-1, -1]);
  const s = 2 * Math.LN10;
  t.is(result.degreesOfFreedom, 4);
  t.true(relativeError(result.statistic, 2 * s) < 1e-15);
  t.true(relativeError(result.log10P, (-s + Math.log(1 + s)) / Math.LN10) < 1e-14);
});

test("one run gives back its own p-value and p-values of 1 combine to 1", (t) => {
  t.true(relativeError(fisherCombine([-7.5]).log10P, -7.5) < 1e-14);
  t.is(fisherCombine([0, 0, 0]).log10P, 0);
});

test("Fisher's method refuses p-values outside (0, 1] and an empty list", (t) => {
  for (const bad of [[], [0.1], [Number.NEGATIVE_INFINITY], [Number.NaN], [-1, 2]]) {
    const error = t.throws(() => fisherCombine(bad));
    t.is((error as { code?: string }).code, "stats-input-invalid");
  }
});

test("the Clopper–Pearson interval matches scipy's beta quantiles", (t) => {
  for (const [hits, trials, confidence, lower, upper] of oracle.clopper_pearson) {
    const interval = clopperPearson({ hits, trials, confidence });
    const at = `h=${hits} n=${trials} ${confidence}`;
    t.true(
      relativeError(interval.lower, lower) < 1e-8,
      `lower ${interval.lower} vs ${lower} at ${at}`,
    );
    t.true(
      relativeError(interval.upper, upper) < 1e-8,
      `upper ${interval.upper} vs ${upper} at ${at}`,
    );
  }
});

test("the Clopper–Pearson interval refuses impossible counts", (t) => {
  t.throws(() => clopperPearson({ hits: 3, trials: 2 }));
  t.throws(() => clopperPearson({ hits: 1, trials: 0 }));
  t.throws(() => clopperPearson({ hits: 1, trials: 2, confidence: 1 }));
});

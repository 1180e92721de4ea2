/**
 * `taggants stats`: the detection statistics by hand (METHOD.md, Detection), so that anyone can
 * check a claim: `stats binomial` gives log10 P[X ≥ h] for X ~ Binomial(K, k/C), and
 * `stats fisher` combines independent runs' p-values with Fisher's method.
 */
import { InvalidArgumentError, type Command } from "@commander-js/extra-typings";
import { binomialTest, fisherCombine } from "../../stats/index.ts";
import { contextFor } from "../context.ts";
import { integerAtLeast } from "../options.ts";

function log10Value(value: string, previous: number[] = []): number[] {
  const parsed = Number(value);
  if (value.trim() === "" || Number.isNaN(parsed)) {
    throw new InvalidArgumentError(`expected a log10 p-value such as -3.2; received "${value}".`);
  }
  return [...previous, parsed];
}

/** "4.2e-13", also far below the double range (from log10 p alone). */
export function formatPValue(log10P: number): string {
  if (log10P === 0) return "1";
  const exponent = Math.floor(log10P);
  const mantissa = 10 ** (log10P - exponent);
  return mantissa >= 9.995 ? `1e${exponent + 1}` : `${mantissa.toFixed(2)}e${exponent}`;
}

export function register(program: Command): void {
  const stats = program.command("stats").description("Compute detection p-values by hand.");
  stats
    .command("binomial")
    .description("log10 P[X ≥ hits] for X ~ Binomial(keys, top-k/classes): the detection p-value.")
    .requiredOption("--hits <h>", "keys whose label was in the model's top k", integerAtLeast(0))
    .requiredOption("--keys <K>", "keys queried", integerAtLeast(0))
    .requiredOption("--top-k <k>", "k of the top-k test", integerAtLeast(0))
    .requiredOption("--classes <C>", "classes of the model", integerAtLeast(0))
    .action((options, command) => {
      const { terminal } = contextFor(command);
      const result = binomialTest({
        hits: options.hits,
        keys: options.keys,
        topK: options.topK,
        classes: options.classes,
      });
      terminal.result(result, () => {
        const { interval } = result;
        return [
          `log10 p = ${result.log10P.toPrecision(6)}  (p = ${formatPValue(result.log10P)})`,
          `${result.hits} of ${result.keys} keys in the top ${result.topK} of ${result.classes} classes; ` +
            `${result.expectedHits.toPrecision(3)} expected by chance (null rate ${result.nullRate.toPrecision(3)}).`,
          `top-${result.topK} key accuracy ${result.hitRate.toFixed(3)} ` +
            `(${interval.confidence * 100} % Clopper–Pearson interval ${interval.lower.toFixed(3)}–${interval.upper.toFixed(3)})`,
        ].join("\n");
      });
    });
  stats
    .command("fisher")
    .description("Combine independent runs' p-values (given as log10 p) with Fisher's method.")
    .requiredOption(
      "--log10p <values...>",
      "log10 p of each independent run, e.g. --log10p -3.1 -2.4 -5",
      log10Value,
    )
    .action((options, command) => {
      const { terminal } = contextFor(command);
      const result = fisherCombine(options.log10p);
      const value = { ...result, runs: options.log10p.length };
      terminal.result(
        value,
        () =>
          `log10 p = ${result.log10P.toPrecision(6)}  (p = ${formatPValue(result.log10P)})\n` +
          `Fisher's method over ${value.runs} ${value.runs === 1 ? "run" : "runs"}: χ² = ${result.statistic.toPrecision(6)} with ${result.degreesOfFreedom} degrees of freedom.`,
      );
    });
}

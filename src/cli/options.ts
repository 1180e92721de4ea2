/**
 * Option parsers and options shared by several commands. A parser throws commander's
 * InvalidArgumentError, which commander reports with the option's name (exit code 2).
 */
import { InvalidArgumentError, Option } from "@commander-js/extra-typings";

/** A whole number ≥ `min` (digits only: "1e3" and "2.0" are refused). */
export function integerAtLeast(min: number): (value: string) => number {
  return (value) => {
    const number = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(number) || number < min) {
      throw new InvalidArgumentError(`expected a whole number ≥ ${min}; received "${value}".`);
    }
    return number;
  };
}

/** Any finite number. Range checks belong to the command, which knows the valid range. */
export function finiteNumber(value: string): number {
  const number = Number(value);
  if (value.trim() === "" || !Number.isFinite(number)) {
    throw new InvalidArgumentError(`expected a number; received "${value}".`);
  }
  return number;
}

/** `--device`: where the worker computes; `auto` takes CUDA when torch sees a GPU. */
export function deviceOption() {
  return new Option("--device <device>", "where the worker computes")
    .choices(["auto", "cpu", "cuda"] as const)
    .default("auto" as const);
}

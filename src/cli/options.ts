/**
 * Option parsers and options shared by several commands. A parser throws commander's
 * InvalidArgumentError, which commander reports with the option's name (exit code 2).
 */
import { Help, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { UsageError } from "../errors.ts";

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

/**
 * Options the command's action demands although commander cannot: `detect`'s own options, which
 * commander would also demand of `detect verify` if they were mandatory. Help marks them required.
 */
const requiredByAction = new WeakSet<object>();

export function requiredInAction<T extends Option>(option: T): T {
  requiredByAction.add(option);
  return option;
}

/** Help text of an option, ending in "(required)" when the command cannot run without it. */
export function describeOption(this: Help, option: Option): string {
  const described = Help.prototype.optionDescription.call(this, option);
  const required = option.mandatory || requiredByAction.has(option);
  return required ? `${described} (required)` : described;
}

/**
 * Check, before any work, that the folder an output file goes into exists and can be written,
 * so that a typo in `--out` fails at once with a message rather than after the work with ENOENT.
 */
export async function requireOutputFolder(path: string, what: string): Promise<void> {
  const folder = dirname(resolve(path));
  let isFolder: boolean;
  try {
    isFolder = (await stat(folder)).isDirectory();
  } catch {
    throw new UsageError(
      "output-folder-missing",
      `Cannot write ${what} ${path}: its folder ${folder} does not exist. Create it first (mkdir -p ${folder}) or choose another path.`,
    );
  }
  if (!isFolder) {
    throw new UsageError(
      "output-folder-not-folder",
      `Cannot write ${what} ${path}: ${folder} is a file, not a folder. Choose another path.`,
    );
  }
  try {
    await access(folder, constants.W_OK);
  } catch {
    throw new UsageError(
      "output-folder-not-writable",
      `Cannot write ${what} ${path}: the folder ${folder} is not writable (permissions or a read-only file system). Choose another path.`,
    );
  }
}

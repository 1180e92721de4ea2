import test from "ava";
import { execa } from "execa";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const taggants = (...args: string[]) =>
  execa("node", ["--import", "tsx", MAIN, ...args], { reject: false });

/** The help line (with its wrapped continuation lines) of one option. */
function optionHelp(help: string, flag: string): string {
  const lines = help.split("\n");
  const start = lines.findIndex((line) => line.trimStart().startsWith(flag));
  if (start < 0) return "";
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((line) => !/^\s{10,}\S/.test(line));
  return [lines[start], ...rest.slice(0, end < 0 ? rest.length : end)].join(" ");
}

test("help marks the options a command cannot run without as required", async (t) => {
  const train = await taggants("train", "--help");
  t.is(train.exitCode, 0, train.stderr);
  for (const flag of ["--data", "--epochs", "--out"]) {
    t.regex(optionHelp(train.stdout, flag), /\(required\)$/, flag);
  }
  for (const flag of ["--model", "--root", "--seed"]) {
    t.notRegex(optionHelp(train.stdout, flag), /\(required\)/, flag);
  }

  const detect = await taggants("detect", "--help");
  for (const flag of ["--suspect", "--key-file", "--commitment", "--manifest", "--out"]) {
    t.regex(optionHelp(detect.stdout, flag), /\(required\)$/, flag);
  }
  t.notRegex(optionHelp(detect.stdout, "--top-k"), /\(required\)/);
});

test("a missing required option is a usage error that names it", async (t) => {
  const result = await taggants("eval", "--data", "somewhere");
  t.is(result.exitCode, 2);
  t.regex(result.stderr, /required option '--checkpoint <dir>' not specified/);
});

test("commander's usage errors print like every other error, with a code, then the command's help", async (t) => {
  const missing = await taggants("eval", "--data", "somewhere");
  const [first, ...rest] = missing.stderr.split("\n");
  t.regex(
    first!,
    /error: required option '--checkpoint <dir>' not specified \[usage-missing-mandatory-option-value\]$/,
  );
  t.regex(rest.join("\n"), /^\nUsage: taggants eval \[options\]/);

  const unknown = await taggants("eval", "--data", "d", "--checkpoint", "c", "--bogus");
  t.is(unknown.exitCode, 2);
  t.regex(unknown.stderr, /error: unknown option '--bogus' \[usage-unknown-option\]/);
  t.is(unknown.stderr.match(/unknown option/g)?.length, 1, "printed once");
});

/**
 * `taggants keys`: the key secret (METHOD.md, Signing, step 1). `keys init <path>` writes a new
 * 256-bit key secret to a file only its owner may read; every key and the signing set are
 * derived from it, so losing it loses the proof of ownership.
 */
import type { Command } from "@commander-js/extra-typings";
import { resolve } from "node:path";
import { createKeySecret } from "../../keys/secret.ts";
import { contextFor } from "../context.ts";

export function register(program: Command): void {
  const keys = program
    .command("keys")
    .description("Manage the key secret from which keys are derived.");
  keys
    .command("init")
    .description("Write a new 256-bit key secret to <path> (mode 600; never overwrites).")
    .argument("<path>", "where to write the key file")
    .action(async (path, _options, command) => {
      const { terminal } = contextFor(command);
      const absolute = resolve(path);
      await createKeySecret(absolute);
      terminal.result(
        { path: absolute, mode: "600" },
        () =>
          `Wrote a new key secret to ${absolute} (mode 600).\n` +
          "Keep it private and backed up: without it you cannot prove that a model used your dataset.",
      );
    });
}

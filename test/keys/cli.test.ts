import test from "ava";
import { execa } from "execa";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { temporaryFolder } from "../helpers/temporary.ts";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const taggants = (...args: string[]) =>
  execa("node", ["--import", "tsx", MAIN, ...args], { reject: false });

test("`keys init` writes a key file of mode 600 and refuses to overwrite it", async (t) => {
  const folder = await temporaryFolder(t, "taggants-keys-cli-");
  const path = join(folder, "alice.key");
  const first = await taggants("keys", "init", path);
  t.is(first.exitCode, 0, first.stderr);
  t.is((await stat(path)).mode & 0o777, 0o600);
  const second = await taggants("keys", "init", path);
  t.is(second.exitCode, 2);
  t.regex(second.stderr, /key-file-exists/);
});

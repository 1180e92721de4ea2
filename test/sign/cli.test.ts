import test from "ava";
import { execa } from "execa";
import { cp, readdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { temporaryFolder } from "../helpers/temporary.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

test("taggants sign with an invalid budget fails at once and leaves nothing behind", async (t) => {
  const folder = await temporaryFolder(t, "taggants-sign-cli-");
  const data = join(folder, "data");
  await cp(join(FIXTURES, "fashion-mnist-idx"), data, { recursive: true });
  const before = (await readdir(folder, { recursive: true })).sort();
  const common = [
    ...["--data", data, "--key-file", join(folder, "alice.key")],
    ...["--surrogate", join(folder, "surrogate"), "--out", join(folder, "signed")],
    ...["--record", join(folder, "private", "record.json")],
  ];
  const env = { XDG_CACHE_HOME: join(folder, "cache") };

  for (const [extra, message] of [
    [["--budget", "0"], /--budget\) must be a fraction of the training set in \(0, 1\)/],
    [["--budget", "0.5", "--per-key", "3"], /either --budget .* or --per-key .*, not both/],
    [["--perceptual", "lpips"], /argument 'lpips' is invalid\. Allowed choices are none, ssim\./],
    [["--lpips-weights", "alex.pth"], /unknown option '--lpips-weights'/],
    [["--keys", "0"], /option '--keys <K>' argument '0' is invalid/],
  ] as const) {
    const result = await execa("node", ["--import", "tsx", MAIN, "sign", ...common, ...extra], {
      reject: false,
      env,
    });
    t.is(result.exitCode, 2, result.stderr);
    t.regex(result.stderr, message);
    t.notRegex(result.stderr, /indexing/, "no indexing");
    t.deepEqual((await readdir(folder, { recursive: true })).sort(), before, "nothing written");
  }
});

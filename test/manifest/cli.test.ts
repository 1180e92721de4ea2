import test from "ava";
import { execa } from "execa";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { copyFixture } from "./helpers.ts";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const taggants = (...args: string[]) =>
  execa("node", ["--import", "tsx", MAIN, ...args], { reject: false });

test("`manifest` writes beside the dataset and `manifest verify` exits 1 once a file is missing", async (t) => {
  const root = await copyFixture(t, "imagefolder");
  const built = await taggants("--json", "manifest", root);
  t.is(built.exitCode, 0, built.stderr);
  const summary = JSON.parse(built.stdout) as { summary: string; root_hash: string };
  t.is(summary.summary, `${root}.manifest.json`);
  t.true((await stat(`${root}.manifest.entries.jsonl`)).isFile());

  const clean = await taggants("manifest", "verify", root, "--manifest", summary.summary);
  t.is(clean.exitCode, 0, clean.stderr);
  t.regex(clean.stdout, /matches the manifest/);

  await rm(join(root, "train", "Shirt", "00018.png"));
  const changed = await taggants(
    "--json",
    "manifest",
    "verify",
    root,
    "--manifest",
    summary.summary,
  );
  t.is(changed.exitCode, 1, changed.stderr);
  t.deepEqual(JSON.parse(changed.stdout), {
    ok: false,
    changed: [],
    missing: ["train/Shirt/00018.png"],
    added: [],
  });
});

test("`manifest verify` on a tampered entries file reports it and exits instead of hanging", async (t) => {
  const root = await copyFixture(t, "imagefolder");
  const built = await taggants("--json", "manifest", root);
  t.is(built.exitCode, 0, built.stderr);
  const entries = `${root}.manifest.entries.jsonl`;
  const lines = (await readFile(entries, "utf8")).split("\n");
  lines[0] = lines[0]!.replace(/"size":\d+/, '"size":1');
  await writeFile(entries, lines.join("\n"));

  const verify = await execa(
    "node",
    ["--import", "tsx", MAIN, "manifest", "verify", root, "--manifest", `${root}.manifest.json`],
    { reject: false, timeout: 60_000 },
  );
  t.false(verify.timedOut, "manifest verify did not exit");
  t.is(verify.exitCode, 1);
  t.regex(verify.stderr, /manifest-root-mismatch/);
});

test("`manifest --out` into a missing folder or through a file fails at once with exit 2 and says why", async (t) => {
  const root = await copyFixture(t, "imagefolder");
  const missing = await taggants("manifest", root, "--out", join(root, "nowhere", "m"));
  t.is(missing.exitCode, 2, missing.stderr);
  t.regex(missing.stderr, /does not exist\. Create it first \(mkdir -p .*nowhere\)/);
  const file = join(root, "plain-file");
  await writeFile(file, "x");
  const throughFile = await taggants("manifest", root, "--out", join(file, "m"));
  t.is(throughFile.exitCode, 2, throughFile.stderr);
  t.regex(throughFile.stderr, /is a file, not a folder/);
});

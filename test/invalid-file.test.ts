/**
 * Bad input files give a short message naming the file, what was expected and the first
 * problem with its path, not a dump of every schema issue.
 */
import test from "ava";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { loadCommitment } from "../src/keys/commitment.ts";
import { buildManifest, loadManifest } from "../src/manifest/index.ts";
import { loadSigningRecord } from "../src/sign/record.ts";
import { loadReport } from "../src/detect/report.ts";
import { FIXTURES } from "./manifest/helpers.ts";
import { temporaryFolder, type Teardown } from "./helpers/temporary.ts";

const folder = (t: Teardown) => temporaryFolder(t, "taggants-invalid-");

function assertShort(t: import("ava").ExecutionContext, message: string): void {
  t.true(message.split("\n").length <= 2, message);
  t.false(message.includes('"code"'), `looks like a raw schema dump: ${message}`);
}

test("a manifest with a wrong field names the file, the schema and the field's path", async (t) => {
  const base = join(await folder(t), "data.manifest");
  await buildManifest({ root: join(FIXTURES, "imagefolder"), out: base });
  const summary = JSON.parse(await readFile(`${base}.json`, "utf8")) as {
    splits: { train: { count: unknown } };
  };
  summary.splits.train.count = "many";
  await writeFile(`${base}.json`, JSON.stringify(summary));

  const error = await t.throwsAsync(loadManifest(`${base}.json`));
  t.is((error as { code?: string }).code, "manifest-invalid");
  assertShort(t, error!.message);
  t.true(
    error!.message.startsWith(
      `${base}.json is not a taggants manifest summary (taggants.manifest/1): at splits.train.count: `,
    ),
    error!.message,
  );
});

test("a manifest that is not JSON says so", async (t) => {
  const path = join(await folder(t), "broken.manifest.json");
  await writeFile(path, "{ not json");
  const error = await t.throwsAsync(loadManifest(path));
  assertShort(t, error!.message);
  t.regex(
    error!.message,
    /broken\.manifest\.json is not a taggants manifest summary .*: not valid JSON/,
  );
});

test("a signing record of another schema names the first wrong field", async (t) => {
  const path = join(await folder(t), "record.json");
  await writeFile(path, JSON.stringify({ schema: "something/else" }));
  const error = await t.throwsAsync(loadSigningRecord(path));
  t.is((error as { code?: string }).code, "signing-record-invalid");
  assertShort(t, error!.message);
  t.regex(
    error!.message,
    /record\.json is not a taggants signing record \(taggants\.signing-record\/1\): at schema: .* \(and \d+ more problems\)\.$/,
  );
});

test("a commitment file missing its fields names the first one", async (t) => {
  const path = join(await folder(t), "c.json");
  await writeFile(path, JSON.stringify({ schema: "taggants.commitment/1" }));
  const error = await t.throwsAsync(loadCommitment(path));
  t.is((error as { code?: string }).code, "commitment-file-invalid");
  assertShort(t, error!.message);
  t.regex(
    error!.message,
    /c\.json is not a taggants commitment file \(taggants\.commitment\/1\): at \w+: /,
  );
});

test("a detection report given as a list is refused at the top level", async (t) => {
  const path = join(await folder(t), "report.json");
  await writeFile(path, "[]");
  const error = await t.throwsAsync(loadReport(path));
  assertShort(t, error!.message);
  t.regex(error!.message, /report\.json is not a detection report \(.*\): at the top level: /);
});

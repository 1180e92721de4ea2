/**
 * The experiment end to end on a small real sample of Fashion-MNIST with tiny settings, through
 * the real worker (training, crafting, prediction): every artefact exists and is well-formed, the
 * signed dataset on disk differs from the original exactly in the signing set, and the clean
 * control is not flagged. The p-values of so tiny a run are not asserted.
 */
import test from "ava";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
import { Terminal } from "../../src/cli/terminal.ts";
import { profileFor, type ExperimentProfile } from "../../src/experiment/profiles.ts";
import { EXPERIMENT_REPORT_SCHEMA, type ExperimentReport } from "../../src/experiment/report.ts";
import { runExperiment } from "../../src/experiment/run.ts";
import { loadCommitment } from "../../src/keys/commitment.ts";
import { readIdxImages } from "../../src/manifest/index.ts";
import { loadSigningRecord } from "../../src/sign/record.ts";
import { startWorker } from "../../src/worker/client.ts";
import { temporaryFolder } from "../helpers/temporary.ts";

function tinyProfile(): ExperimentProfile {
  const profile = profileFor("fashion-mnist");
  profile.data = { source: "fashion-mnist", trainSubset: 600, testSubset: 200 };
  profile.repeats = 2;
  profile.keys = { count: 4 };
  profile.surrogate = { ...profile.surrogate, epochs: 1, seeds: [0] };
  profile.signing = {
    ...profile.signing,
    budget: { perKey: 5 },
    steps: 4,
    restarts: 1,
    augDraws: 1,
    chunkSize: 32,
  };
  profile.suspects = profile.suspects.map((suspect) => ({ ...suspect, epochs: 1 }));
  profile.limits.maxBudgetFraction = 0.05;
  return profile;
}

test("the experiment runs end to end on a small Fashion-MNIST sample and writes every artefact", async (t) => {
  t.timeout(10 * 60_000);
  const base = await temporaryFolder(t, "taggants-experiment-");
  const out = join(base, "run");
  const terminal = new Terminal({ verbosity: "quiet" });
  const report = await runExperiment({
    profile: tinyProfile(),
    out,
    cache: join(base, "cache"),
    terminal,
    startWorker: () => startWorker({ terminal, device: "cpu" }),
  });

  const saved = JSON.parse(await readFile(join(out, "report.json"), "utf8")) as ExperimentReport;
  t.is(saved.schema, EXPERIMENT_REPORT_SCHEMA);
  t.deepEqual(
    saved.scenarios.map((result) => result.scenario),
    ["init", "aug", "arch", "clean"],
  );
  for (const result of saved.scenarios) {
    t.is(result.hits.length, 2);
    t.true(result.log10P.every((value) => value <= 0 && Number.isFinite(value)));
    t.true(result.valTop1.every((value) => value >= 0 && value <= 100));
  }
  t.like(saved.config, { keys: 4, topK: 1, classes: 10, eps255: 16, repeats: 2 });
  t.is(saved.config.budget.signingImages, 20);
  t.false(report.control!.flagged, report.control!.statement);
  t.regex(
    await readFile(join(out, "report.md"), "utf8"),
    /\| scenario \| model \| recipe \| trained on \| val\. acc\. \(%\) \|/,
  );
  const figure = await sharp(join(out, "taggants.png")).metadata();
  t.true(figure.width > 400 && figure.height > 300);

  // The signed dataset on disk differs from the original exactly in the signing set.
  const record = await loadSigningRecord(join(out, "private", "repeat-0.record.json"));
  t.is((await stat(join(out, "private", "repeat-0.record.json"))).mode & 0o777, 0o600);
  t.is((await stat(join(out, "private"))).mode & 0o777, 0o700);
  const original = await readIdxImages(join(record.original.root, "train-images-idx3-ubyte"));
  const signed = await readIdxImages(join(record.signed.root, "train-images-idx3-ubyte"));
  const changed: number[] = [];
  for (let i = 0; i < original.count; i++) {
    const a = original.data.subarray(i * 784, (i + 1) * 784);
    const b = signed.data.subarray(i * 784, (i + 1) * 784);
    if (a.some((value, j) => value !== b[j])) changed.push(i);
  }
  t.deepEqual(
    changed,
    record.signing_indices.flat().sort((a, b) => a - b),
  );
  const commitment = await loadCommitment(record.signed.commitment_file);
  t.is(commitment.commitment, record.commitment);

  // Suspects trained on the signed data read it from disk, through the signed manifest.
  const init = JSON.parse(
    await readFile(join(out, "models", "init-r0", "checkpoint.json"), "utf8"),
  );
  t.is(init.data.root_hash, record.signed.root_hash);
  const [cleanFolder] = await readdir(join(base, "cache", "clean-models"));
  const clean = JSON.parse(
    await readFile(join(base, "cache", "clean-models", cleanFolder!, "checkpoint.json"), "utf8"),
  );
  t.is(clean.data.root_hash, record.original.root_hash);
});

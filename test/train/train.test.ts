import test from "ava";
import { execa } from "execa";
import { cp, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseSettings } from "../../src/cli/commands/train.ts";
import { recordingTerminal } from "../helpers/terminal.ts";
import { UsageError } from "../../src/errors.ts";
import { resolvePython } from "../../src/env/python.ts";
import { buildManifest } from "../../src/manifest/index.ts";
import { resolveDataset, wireDataset } from "../../src/train/dataset.ts";
import { tickTraining, trainingProgress } from "../../src/train/train.ts";
import { temporaryFolder, type Teardown } from "../helpers/temporary.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

async function copyFixture(t: Teardown, name: string) {
  const folder = await temporaryFolder(t, "taggants-train-");
  await cp(join(FIXTURES, name), join(folder, name), { recursive: true });
  return { folder, dataset: join(folder, name) };
}

// Derived manifests go to the per-user cache: a private one for this file's tests (and the CLI
// runs below, which inherit the environment). The worker's interpreter, found through the real
// cache, is pinned first.
let cacheHome: string;
test.before(async () => {
  process.env.TAGGANTS_PYTHON ??= resolvePython();
  cacheHome = await mkdtemp(join(tmpdir(), "taggants-train-cache-"));
  process.env.XDG_CACHE_HOME = cacheHome;
});
test.after.always(async () => {
  await rm(cacheHome, { recursive: true, force: true });
});

test("a dataset folder without a manifest is indexed into the user cache, never beside it, and reused until a file changes", async (t) => {
  const { folder, dataset } = await copyFixture(t, "fashion-mnist-idx");
  const first = await resolveDataset({ data: dataset });
  t.true(first.built);
  t.true(first.manifest.summaryPath.startsWith(join(cacheHome, "taggants", "manifests")));
  t.deepEqual(await readdir(folder), ["fashion-mnist-idx"], "nothing written beside the dataset");
  t.deepEqual(wireDataset(first, "test"), {
    manifest: first.manifest.summaryPath,
    root: dataset,
    split: "test",
  });

  const again = await resolveDataset({ data: dataset });
  t.false(again.built);
  t.is(again.manifest.root_hash, first.manifest.root_hash);

  const labels = join(dataset, "t10k-labels-idx1-ubyte.gz");
  await utimes(labels, new Date(), new Date(Date.now() + 5_000));
  const changed = await resolveDataset({ data: dataset });
  t.true(changed.built, "a changed file means a new manifest");
});

test("a manifest beside the dataset folder is used as it is", async (t) => {
  const { dataset } = await copyFixture(t, "fashion-mnist-idx");
  const built = await buildManifest({ root: dataset, out: `${dataset}.manifest` });
  const resolved = await resolveDataset({ data: dataset });
  t.false(resolved.built);
  t.is(resolved.manifest.summaryPath, `${dataset}.manifest.json`);
  t.is(resolved.manifest.root_hash, built.root_hash);
  const byManifest = await resolveDataset({ data: `${dataset}.manifest.json` });
  t.is(byManifest.root, dataset);
});

test.serial(
  "a cache folder that cannot be created is a clear error naming the ways out",
  async (t) => {
    const { folder, dataset } = await copyFixture(t, "fashion-mnist-idx");
    await writeFile(join(folder, "a-file"), "");
    process.env.XDG_CACHE_HOME = join(folder, "a-file", "cache");
    try {
      const error = await t.throwsAsync(resolveDataset({ data: dataset }));
      t.is((error as { code?: string }).code, "manifest-cache-unwritable");
      t.regex(error!.message, /Cannot create .* for the manifest of .*fashion-mnist-idx/);
      t.regex(error!.message, /XDG_CACHE_HOME/);
      t.regex(error!.message, /taggants manifest/);
    } finally {
      process.env.XDG_CACHE_HOME = cacheHome;
    }
  },
);

test("a manifest whose name does not say its folder needs --root", async (t) => {
  const { folder, dataset } = await copyFixture(t, "fashion-mnist-idx");
  const summary = (await resolveDataset({ data: dataset })).manifest;
  const moved = join(folder, "elsewhere.json");
  await cp(summary.summaryPath, moved);
  const error = await t.throwsAsync(resolveDataset({ data: moved }));
  t.is((error as { code?: string }).code, "dataset-root-unknown");
  const withRoot = await resolveDataset({ data: moved, root: dataset });
  t.is(withRoot.root, dataset);
});

test("a missing dataset is a usage error", async (t) => {
  const error = await t.throwsAsync(resolveDataset({ data: "/no/such/dataset" }));
  t.is((error as { code?: string }).code, "dataset-missing");
});

test("recipe settings parse numbers, booleans and lists as JSON and the rest as words", (t) => {
  t.deepEqual(parseSettings(["lr=0.1", "amp=false", "rrc_scale=[0.3,1]", "optimizer=adamw"]), {
    lr: 0.1,
    amp: false,
    rrc_scale: [0.3, 1],
    optimizer: "adamw",
  });
  t.is(parseSettings([]), undefined);
  t.throws(() => parseSettings(["lr"]), { instanceOf: UsageError, message: /expects key=value/ });
});

test("progress events become fractional epochs on the bar", (t) => {
  const ticks: Array<[number, Record<string, string | number> | undefined]> = [];
  const bar = {
    tick: (done: number, fields?: Record<string, string | number>) => ticks.push([done, fields]),
  };
  tickTraining(bar, {
    epoch: 2,
    epochs: 3,
    step: 25,
    steps: 100,
    loss: 0.5,
    lr: 0.01,
    images_per_s: 900.4,
  });
  tickTraining(bar, { stage: "eval" });
  t.is(ticks.length, 1);
  t.is(ticks[0]![0], 1.25);
  t.like(ticks[0]![1], { epoch: 2, loss: 0.5, "img/s": 900 });
});

test("a resumed training run says how many epochs its checkpoint had done", (t) => {
  const { terminal, lines } = recordingTerminal();
  const bar = trainingProgress(terminal, "training cnn (simple)", 5);
  // The worker reports the first step of each epoch at once: epoch 3 is where this run starts.
  bar.onEvent({ epoch: 3, epochs: 5, step: 1, steps: 10, loss: 0.5, lr: 0.01, images_per_s: 9 });
  bar.onEvent({ epoch: 3, epochs: 5, step: 2, steps: 10, loss: 0.5, lr: 0.01, images_per_s: 9 });
  bar.stop("top-1 90.00 %");
  t.is(lines()[0], "training cnn (simple): resuming: 2 of 5 done, 3 to do");
  t.regex(lines().at(-1)!, /^training cnn \(simple\): done in .* — top-1 90\.00 %$/);
});

async function cli(args: string[]) {
  const result = await execa("node", ["--import", "tsx", MAIN, "--json", ...args], {
    reject: false,
    env: { ...process.env, CI: "1" },
  });
  return result;
}

test("taggants train trains the compact CNN on the Fashion-MNIST sample, a re-run returns the finished checkpoint, and eval reports its accuracy", async (t) => {
  t.timeout(300_000);
  const { folder, dataset } = await copyFixture(t, "fashion-mnist-idx");
  const out = join(folder, "cnn");
  const args = ["train", "--data", dataset, "--model", "cnn", "--epochs", "2", "--out", out];
  const settings = ["--set", "batch_size=16", "lr_base_batch=16", "--device", "cpu"];

  const trained = await cli([...args, ...settings]);
  t.is(trained.exitCode, 0, trained.stderr);
  const result = JSON.parse(trained.stdout) as {
    checkpoint: string;
    resumed: boolean;
    metrics: Record<string, number>;
  };
  t.is(result.checkpoint, out);
  t.false(result.resumed);
  t.true(result.metrics.top1! >= 0 && result.metrics.top1! <= 100);
  const record = JSON.parse(await readFile(join(out, "checkpoint.json"), "utf8")) as Record<
    string,
    unknown
  >;
  t.like(record, {
    complete: true,
    epoch: 2,
    recipe: { name: "simple" },
    seeds: { seed: 0, data_seed: 0 },
  });

  const again = await cli([...args, ...settings]);
  t.is(again.exitCode, 0, again.stderr);
  t.like(JSON.parse(again.stdout), { resumed: true, metrics: result.metrics });

  const evaluated = await cli(["eval", "--checkpoint", out, "--data", dataset, "--device", "cpu"]);
  t.is(evaluated.exitCode, 0, evaluated.stderr);
  const evaluation = JSON.parse(evaluated.stdout) as Record<string, number>;
  t.is(evaluation.count, result.metrics.count);
  t.is(evaluation.top1, result.metrics.top1);
  t.like(evaluation, { epoch: 2, epochs: 2 });
  t.notRegex(evaluated.stderr, /unfinished/);

  // The same weights recorded as epoch 1 of 2, as a run interrupted after its first epoch.
  await writeFile(
    join(out, "checkpoint.json"),
    JSON.stringify({ ...record, epoch: 1, complete: false }),
  );
  const early = await cli(["eval", "--checkpoint", out, "--data", dataset, "--device", "cpu"]);
  t.is(early.exitCode, 0, early.stderr);
  t.regex(early.stderr, /holds epoch 1 of 2: its training run is unfinished/);
});

test("taggants train refuses an unknown recipe setting with the valid ones", async (t) => {
  t.timeout(120_000);
  const { folder, dataset } = await copyFixture(t, "fashion-mnist-idx");
  const run = await cli([
    "train",
    "--data",
    dataset,
    "--epochs",
    "1",
    "--out",
    join(folder, "x"),
    "--set",
    "lrr=1",
    "--device",
    "cpu",
  ]);
  t.is(run.exitCode, 2, "a bad recipe setting is a usage error");
  t.regex(run.stderr, /unknown recipe settings \['lrr'\]; valid settings/);
  t.notRegex(run.stderr, /failed in the worker/);
});

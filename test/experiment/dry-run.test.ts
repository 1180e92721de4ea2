/**
 * `taggants experiment --profile imagenet --dry-run` on a tiny generated ImageFolder: the data
 * survey, the configuration checks and the plan, without a worker or a GPU.
 */
import test from "ava";
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import sharp from "sharp";
import { planExperiment } from "../../src/experiment/dry-run.ts";
import { profileFor } from "../../src/experiment/profiles.ts";
import { temporaryFolder, type Teardown } from "../helpers/temporary.ts";

const run = promisify(execFile);
const repoRoot = new URL("../../", import.meta.url).pathname;

/**
 * An ImageNet-shaped tree, train/<class>/ and val/<class>/, of 12 classes. The same small JPEG
 * is written everywhere: the dry run reads headers only. 10 000 training images are the fewest
 * for which the paper's 0.1 % budget gives one image to each of 10 keys.
 */
async function tinyImageFolder(
  t: Teardown,
  options: { perClass: number; classes?: number },
): Promise<string> {
  const root = await temporaryFolder(t, "taggants-imagefolder-");
  const jpeg = await sharp({
    create: { width: 32, height: 24, channels: 3, background: "#7a5230" },
  })
    .jpeg({ quality: 90 })
    .toBuffer();
  const classes = options.classes ?? 12;
  for (let c = 0; c < classes; c++) {
    const name = `n0${1000 + c}`;
    for (const [split, count] of [
      ["train", options.perClass],
      ["val", 3],
    ] as const) {
      await mkdir(join(root, split, name), { recursive: true });
      await Promise.all(
        Array.from({ length: count }, (_, i) =>
          writeFile(join(root, split, name, `${name}_${i}.JPEG`), jpeg),
        ),
      );
    }
  }
  return root;
}

test("the imagenet dry run validates a tiny ImageFolder and plans every stage", async (t) => {
  const root = await tinyImageFolder(t, { perClass: 840 });
  const { stdout } = await run(
    process.execPath,
    [
      "--import",
      "tsx",
      "src/cli/main.ts",
      "--json",
      "experiment",
      "--profile",
      "imagenet",
      "--data",
      root,
      "--dry-run",
      "--out",
      join(root, "..", "run"),
    ],
    { cwd: repoRoot },
  );
  const plan = JSON.parse(stdout);
  t.is(plan.profile, "imagenet");
  t.is(plan.data.classes, 12);
  t.is(plan.data.train.count, 12 * 840);
  t.is(plan.data.test.count, 36);
  t.deepEqual(plan.data.sample, { "32x24 jpeg rgb": 32 });
  t.like(plan.config, {
    keys: 10,
    imagesPerKey: 1,
    signingImages: 10,
    eps255: 16,
    topK: 10,
    steps: 250,
    repeats: 4,
  });
  t.deepEqual(
    plan.stages.map((stage: { stage: string }) => stage.stage),
    [
      "manifest",
      "surrogate",
      "signing",
      "signed dataset",
      "suspect init",
      "suspect aug",
      "suspect arch",
      "suspect clean",
    ],
  );
  t.true(plan.stages.every((stage: { estimateSeconds: number }) => stage.estimateSeconds >= 0));
  t.true(plan.totalSeconds > 0);
  t.true(plan.memory.fits);
  t.deepEqual(plan.problems, []);
});

test("a budget that rounds to zero signing images per key stops the dry run with a usage error", async (t) => {
  const root = await tinyImageFolder(t, { perClass: 20 });
  const error = await t.throwsAsync(
    run(
      process.execPath,
      [
        "--import",
        "tsx",
        "src/cli/main.ts",
        "experiment",
        "--profile",
        "imagenet",
        "--data",
        root,
        "--dry-run",
      ],
      { cwd: repoRoot },
    ),
  );
  const failure = error as Error & { code: number; stderr: string };
  t.is(failure.code, 2);
  t.regex(failure.stderr, /rounds to 0 signing images per key/);
});

test("the dry run lists configuration problems: budget over the limit, top-k not below C, memory", async (t) => {
  const root = await tinyImageFolder(t, { perClass: 30, classes: 8 });
  const profile = profileFor("imagenet");
  profile.signing.budget = { perKey: 5 };
  profile.signing.chunkSize = 1024;
  const plan = await planExperiment({ profile, data: root, out: join(root, "run") });
  t.is(plan.config.signingImages, 50);
  const problems = plan.problems.join("\n");
  t.regex(problems, /above the profile's limit of 0.1 %/);
  t.regex(problems, /Top-10 detection needs more than 10 classes; the dataset has 8/);
  t.regex(problems, /GiB of accelerator memory, more than the planned 80 GiB/);
  t.false(plan.memory.fits);
});

test("the imagenet profile without --data asks for it", async (t) => {
  await t.throwsAsync(planExperiment({ profile: profileFor("imagenet"), out: "runs/x" }), {
    message: /needs --data <ImageFolder root>/,
  });
});

/**
 * The experiment's dataset (issue 6, step 1): the embedded Fashion-MNIST, optionally cut to its
 * first N training and test images (the CPU demo trains on a subset to fit its time budget), or
 * the ImageFolder given with --data. A subset is written once as raw idx files into the run cache,
 * atomically (built in a hidden folder, then renamed), and reused by later runs.
 */
import { randomBytes } from "node:crypto";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { resolveFashionMnist } from "../env/dataset.ts";
import { UsageError } from "../errors.ts";
import { detectLayout, readIdxImages, readIdxLabels } from "../manifest/index.ts";
import { pathExists } from "../sign/signed-dataset.ts";
import type { ExperimentProfile } from "./profiles.ts";

export interface ExperimentData {
  root: string;
  description: string;
}

export async function prepareData(options: {
  profile: ExperimentProfile;
  data?: string;
  cache: string;
}): Promise<ExperimentData> {
  const { profile } = options;
  if (profile.data.source === "imagefolder") {
    if (!options.data) {
      throw new UsageError(
        "experiment-data-required",
        `The ${profile.name} profile needs --data <ImageFolder root> (train/<class>/… and val/<class>/…).`,
      );
    }
    return { root: resolve(options.data), description: `ImageFolder ${resolve(options.data)}` };
  }
  const source = resolve(options.data ?? resolveFashionMnist());
  const { trainSubset, testSubset } = profile.data;
  if (trainSubset === undefined && testSubset === undefined) {
    return { root: source, description: `Fashion-MNIST (${source})` };
  }
  const name = `fashion-mnist-train${trainSubset ?? "all"}-test${testSubset ?? "all"}`;
  const root = join(resolve(options.cache), "data", name);
  if (!(await pathExists(root))) await writeIdxSubset({ source, root, trainSubset, testSubset });
  return {
    root,
    description: `Fashion-MNIST, first ${trainSubset ?? "all"} training and ${testSubset ?? "all"} test images`,
  };
}

async function writeIdxSubset(options: {
  source: string;
  root: string;
  trainSubset?: number;
  testSubset?: number;
}): Promise<void> {
  const layout = await detectLayout(options.source);
  if (layout.kind !== "idx" || !layout.files.train || !layout.files.test) {
    throw new UsageError(
      "experiment-data-layout",
      `Expected Fashion-MNIST idx files (train-* and t10k-*) at ${options.source}.`,
    );
  }
  const partial = join(dirname(options.root), `.partial-${randomBytes(4).toString("hex")}`);
  await mkdir(partial, { recursive: true });
  try {
    for (const [prefix, files, limit] of [
      ["train", layout.files.train, options.trainSubset],
      ["t10k", layout.files.test, options.testSubset],
    ] as const) {
      const images = await readIdxImages(join(options.source, files.images));
      const labels = await readIdxLabels(join(options.source, files.labels));
      const count = Math.min(limit ?? images.count, images.count);
      const size = images.height * images.width;
      const imageHeader = Buffer.alloc(16);
      imageHeader.writeUInt32BE(0x803, 0);
      imageHeader.writeUInt32BE(count, 4);
      imageHeader.writeUInt32BE(images.height, 8);
      imageHeader.writeUInt32BE(images.width, 12);
      const labelHeader = Buffer.alloc(8);
      labelHeader.writeUInt32BE(0x801, 0);
      labelHeader.writeUInt32BE(count, 4);
      await writeFile(
        join(partial, `${prefix}-images-idx3-ubyte`),
        Buffer.concat([imageHeader, images.data.subarray(0, count * size)]),
      );
      await writeFile(
        join(partial, `${prefix}-labels-idx1-ubyte`),
        Buffer.concat([labelHeader, labels.labels.subarray(0, count)]),
      );
    }
    await rename(partial, options.root);
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Training throughput (issue 4): the compact CNN and the small ViT on a Fashion-MNIST subset,
 * trained through the orchestrator (the worker's `train` command, `simple` recipe) and by a
 * plain PyTorch loop of the same model, batch size, data and augmentation in the same run
 * (bench/train_plain.py). Target: the orchestrated run reaches at least 90 % of the plain
 * loop's images/s. Both figures are of the last epoch (steady state, after start-up).
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { resolveFashionMnist } from "../src/env/dataset.ts";
import { resolvePython, workerEnvironment } from "../src/env/python.ts";
import { buildManifest } from "../src/manifest/index.ts";
import { startWorker } from "../src/worker/client.ts";

const IMAGES = 4096;
const EPOCHS = 2;
const BATCH = 128;
const MODELS = ["cnn", "vit-small-28"];
const TARGET_RATIO = 0.9;

const execFileAsync = promisify(execFile);
const plainScript = fileURLToPath(new URL("./train_plain.py", import.meta.url));

async function plain(args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(resolvePython(), [plainScript, ...args], {
    env: { ...process.env, ...workerEnvironment() },
    maxBuffer: 1 << 20,
  });
  return stdout;
}

export async function run(): Promise<Record<string, unknown>> {
  const folder = await mkdtemp(join(tmpdir(), "taggants-train-bench-"));
  const data = join(folder, "fmnist");
  try {
    await plain([
      "prepare",
      "--source",
      resolveFashionMnist(),
      "--data",
      data,
      "--count",
      String(IMAGES),
    ]);
    const manifest = await buildManifest({ root: data, out: `${data}.manifest` });
    const figures: Record<string, unknown> = { images: IMAGES, epochs: EPOCHS, batch_size: BATCH };
    const worker = await startWorker({ device: "cpu" });
    try {
      for (const model of MODELS) {
        const out = join(folder, model);
        await worker.request("train", {
          data: { manifest: manifest.summaryPath, root: data, split: "train" },
          model,
          recipe: "simple",
          epochs: EPOCHS,
          out,
          overrides: { batch_size: BATCH },
        });
        const record = JSON.parse(await readFile(join(out, "checkpoint.json"), "utf8")) as {
          history: Array<{ images_per_s: number }>;
        };
        const orchestrated = record.history.at(-1)!.images_per_s;
        const reference = JSON.parse(
          await plain([
            "loop",
            "--data",
            data,
            "--model",
            model,
            "--epochs",
            String(EPOCHS),
            "--batch-size",
            String(BATCH),
          ]),
        ) as { images_per_s: number };
        const ratio = orchestrated / reference.images_per_s;
        figures[`${model}_orchestrated_images_per_s`] = Math.round(orchestrated);
        figures[`${model}_plain_images_per_s`] = Math.round(reference.images_per_s);
        figures[`${model}_ratio`] = Number(ratio.toFixed(3));
        figures[`${model}_meets_target`] = ratio >= TARGET_RATIO;
        console.error(
          `${model}: ${orchestrated.toFixed(0)} img/s through the orchestrator, ${reference.images_per_s.toFixed(0)} img/s plain (ratio ${ratio.toFixed(2)})`,
        );
      }
    } finally {
      await worker.close();
    }
    return figures;
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

/**
 * Detection against Seldon MLServer, a production Open Inference Protocol server, serving a
 * taggants checkpoint through a custom MLServer runtime (fixtures/mlserver/taggants_runtime.py)
 * that answers logits: the detector must read the model metadata, send UINT8 tensors and rank
 * the FP32 scores. MLServer is not part of the worker environment; the test runs when
 * TAGGANTS_MLSERVER names an `mlserver` executable whose Python also imports torch and timm
 * (see the README, "Testing against MLServer"), and is skipped otherwise.
 */
import test from "ava";
import { execFile, spawn } from "node:child_process";
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { runDetection } from "../../src/detect/detect.ts";
import { loadReport, type DetectionReport } from "../../src/detect/report.ts";
import { verifyReport } from "../../src/detect/verify.ts";
import { resolvePython, workerEnvironment } from "../../src/env/python.ts";
import { detectionFixture, quietTerminal, type DetectionFixture } from "./fixtures.ts";

const mlserver = process.env.TAGGANTS_MLSERVER;
const maybe = mlserver ? test : test.skip;
const runtime = fileURLToPath(new URL("./fixtures/mlserver/taggants_runtime.py", import.meta.url));
const makeCheckpoint = fileURLToPath(
  new URL("../serve/fixtures/make_checkpoint.py", import.meta.url),
);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function writeModelRepository(folder: string, checkpoint: string): Promise<number> {
  const [http, grpc] = [await freePort(), await freePort()];
  await mkdir(join(folder, "fmnist"), { recursive: true });
  const settings = {
    host: "127.0.0.1",
    http_port: http,
    grpc_port: grpc,
    metrics_endpoint: null,
    parallel_workers: 0,
  };
  await writeFile(join(folder, "settings.json"), JSON.stringify(settings));
  const model = {
    name: "fmnist",
    implementation: "taggants_runtime.TaggantsRuntime",
    parameters: { uri: checkpoint },
    inputs: [{ name: "images", datatype: "UINT8", shape: [-1, 1, 28, 28] }],
    outputs: [{ name: "logits", datatype: "FP32", shape: [-1, 10] }],
  };
  await writeFile(join(folder, "fmnist", "model-settings.json"), JSON.stringify(model));
  await copyFile(runtime, join(folder, "fmnist", "taggants_runtime.py"));
  return http;
}

async function waitUntilReady(
  url: string,
  exited: Promise<unknown>,
  log: () => string,
): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  for (let i = 0; i < 300; i++) {
    if (gone) throw new Error(`mlserver exited before it was ready:\n${log()}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`mlserver was not ready after 150 s:\n${log()}`);
}

function detect(fx: DetectionFixture, suspect: string, out: string) {
  return runDetection({
    suspect,
    keyFile: fx.keyFile,
    commitment: fx.commitmentFile,
    manifest: fx.manifestFile,
    out: join(fx.dir, out),
    topK: 2,
    controlKeys: 5,
    alpha: 0.01,
    confidence: 0.95,
    concurrency: 4,
    policy: { timeoutMs: 60_000, maxAttempts: 2, backoffMs: 100, maxBackoffMs: 1_000 },
    terminal: quietTerminal(),
    signal: new AbortController().signal,
  });
}

maybe(
  "detection against MLServer serving a checkpoint reads its logits and agrees with the checkpoint",
  async (t) => {
    t.timeout(300_000, "MLServer and the worker both import torch");
    const fx = await detectionFixture();
    const checkpoint = join(fx.dir, "mlserver-checkpoint");
    const env = { ...process.env, ...workerEnvironment() };
    await promisify(execFile)(
      resolvePython(),
      [makeCheckpoint, checkpoint, fx.manifest.classes.join(",")],
      { env },
    );
    const repository = join(fx.dir, "mlserver");
    const port = await writeModelRepository(repository, checkpoint);

    const child = spawn(mlserver!, ["start", repository], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let log = "";
    child.stdout.on("data", (chunk: Buffer) => (log += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (log += chunk.toString()));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    const direct = detect(fx, `checkpoint:${checkpoint}`, "mlserver-direct");
    try {
      await waitUntilReady(`http://127.0.0.1:${port}/v2/health/ready`, exited, () => log);
      const { report, paths } = await detect(
        fx,
        `v2:http://127.0.0.1:${port}/v2/models/fmnist`,
        "mlserver-run",
      );
      t.deepEqual(report.suspect.answer, { format: "v2", output: "logits", kind: "scores" });
      t.is(report.label_map.source, "indices");
      t.is(report.result.keys.answered, fx.keys.length);
      t.not(report.result.verdict, "detected", "an untrained model is not detected");
      t.true(
        (await verifyReport({ report: await loadReport(paths.json), keyFile: fx.keyFile })).ok,
      );

      const { report: directReport } = await direct;
      const top2 = (r: DetectionReport, role: string, index: number): string[] =>
        r.queries.find((q) => q.role === role && q.index === index)!.labels!.slice(0, 2);
      for (const q of report.queries)
        t.deepEqual(top2(report, q.role, q.index), top2(directReport, q.role, q.index));
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
  },
);

/**
 * The whole black-box scenario on one machine, through the command line: `taggants serve` puts a
 * real checkpoint (tiny, untrained) behind the Open Inference Protocol with the real worker, and
 * `taggants detect` queries it, writes the evidence report, and `detect verify` checks it. The
 * same keys sent to the checkpoint directly must get the same answers.
 */
import test from "ava";
import { execFile, spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { runDetection } from "../../src/detect/detect.ts";
import type { DetectionReport } from "../../src/detect/report.ts";
import { repoRoot, resolvePython, workerEnvironment } from "../../src/env/python.ts";
import { detectionFixture, quietTerminal } from "../detect/fixtures.ts";

const run = promisify(execFile);
const main = join(repoRoot, "src/cli/main.ts");
const makeCheckpoint = fileURLToPath(new URL("./fixtures/make_checkpoint.py", import.meta.url));

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", main, ...args], {
      cwd: repoRoot,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** Start `taggants serve` and resolve with the model URL it prints. */
function serve(checkpoint: string): Promise<{ url: string; stop: () => Promise<number | null> }> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      main,
      "serve",
      "--checkpoint",
      checkpoint,
      "--port",
      "0",
      "--name",
      "fmnist",
    ],
    {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  const stop = async (): Promise<number | null> => {
    child.kill("SIGTERM");
    return exited;
  };
  return new Promise((resolve, reject) => {
    let log = "";
    createInterface({ input: child.stderr }).on("line", (line) => {
      log += line + "\n";
      const match = /serving .* at (http:\/\/\S+)/.exec(line);
      if (match) resolve({ url: match[1]!, stop });
    });
    void exited.then((code) => reject(new Error(`taggants serve exited with ${code}:\n${log}`)));
  });
}

test("detect against `taggants serve` on a real checkpoint writes a report that verifies, and an edited one fails", async (t) => {
  t.timeout(240_000, "two worker start-ups and four CLI runs on a loaded machine");
  const fx = await detectionFixture();
  const checkpoint = join(fx.dir, "untrained");
  await run(resolvePython(), [makeCheckpoint, checkpoint, fx.manifest.classes.join(",")], {
    env: { ...process.env, ...workerEnvironment() },
  });

  // The direct run starts its own worker meanwhile: two torch start-ups overlap.
  const direct = runDetection({
    suspect: `checkpoint:${checkpoint}`,
    keyFile: fx.keyFile,
    commitment: fx.commitmentFile,
    manifest: fx.manifestFile,
    out: join(fx.dir, "direct-run"),
    topK: 2,
    controlKeys: 5,
    alpha: 0.01,
    confidence: 0.95,
    concurrency: 4,
    policy: { timeoutMs: 60_000, maxAttempts: 1, backoffMs: 10, maxBackoffMs: 10 },
    terminal: quietTerminal(),
    signal: new AbortController().signal,
  });
  const server = await serve(checkpoint);
  const out = join(fx.dir, "cli-run");
  const common = [
    "--key-file",
    fx.keyFile,
    "--commitment",
    fx.commitmentFile,
    "--manifest",
    fx.manifestFile,
  ];
  const detected = await cli([
    "--json",
    "detect",
    "--suspect",
    `v2:${server.url}`,
    ...common,
    "--out",
    out,
    "--control-keys",
    "5",
    "--top-k",
    "2",
  ]);
  t.is(await server.stop(), 0, "serve stops cleanly on SIGTERM");

  const result = JSON.parse(detected.stdout) as { verdict: string; keys: { answered: number } };
  t.is(result.keys.answered, fx.keys.length, detected.stderr);
  const codes: Record<string, number> = { detected: 0, "not-detected": 1, inconclusive: 3 };
  const expectedCode = codes[result.verdict] ?? Number.NaN;
  t.is(detected.code, expectedCode, `verdict ${result.verdict}`);
  t.not(result.verdict, "detected", "an untrained model is not detected");

  const reportPath = join(out, "report.json");
  const verified = await cli(["detect", "verify", reportPath, ...common.slice(0, 4)]);
  t.is(verified.code, 0, verified.stdout + verified.stderr);
  t.regex(verified.stdout, /the report checks out/);

  const report = JSON.parse(await readFile(reportPath, "utf8")) as DetectionReport;
  const query = report.queries.find((q) => q.role === "key")!;
  query.response!.text = query.response!.text.replace(/"data":\["[^"]+"/, '"data":["Bag"');
  const edited = join(out, "edited.json");
  await writeFile(edited, JSON.stringify(report));
  const rejected = await cli(["detect", "verify", edited, "--key-file", fx.keyFile]);
  t.is(rejected.code, 1, rejected.stderr);
  t.regex(rejected.stderr, /does not check out \(queries/);

  // The same keys sent straight to the checkpoint (key resolution, the worker upsamples) get the
  // same answers as through the server (upsampled here to the announced 28×28).
  const { report: directReport } = await direct;
  const top2 = (r: DetectionReport, role: string, index: number): string[] => {
    const q = r.queries.find((x) => x.role === role && x.index === index)!;
    return q
      .labels!.slice(0, 2)
      .map((label) => (/^\d+$/.test(label) ? fx.manifest.classes[Number(label)]! : label));
  };
  for (const q of report.queries)
    t.deepEqual(top2(directReport, q.role, q.index), top2(report, q.role, q.index));
  t.is(directReport.result.keys.hits, report.result.keys.hits);
});

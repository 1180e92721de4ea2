import test from "ava";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "../../src/env/python.ts";
import { startInferenceServer } from "../../src/serve/server.ts";
import { detectionFixture, FakeModel, fakePredictor, KEY_COUNT } from "./fixtures.ts";

const main = join(repoRoot, "src/cli/main.ts");

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", main, ...args],
      { cwd: repoRoot },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

test("taggants detect exits 0 on a detection and prints the result as JSON; a too small query budget is a usage error", async (t) => {
  const fx = await detectionFixture();
  const server = await startInferenceServer({
    host: "127.0.0.1",
    port: 0,
    model: {
      name: "suspect",
      version: "1",
      classes: fx.manifest.classes,
      channels: 1,
      inputSize: [28, 28],
    },
    predictor: fakePredictor(new FakeModel(10, fx.keys)),
  });
  const args = [
    "detect",
    "--suspect",
    `v2:${server.url}/v2/models/suspect`,
    "--key-file",
    fx.keyFile,
    "--commitment",
    fx.commitmentFile,
    "--manifest",
    fx.manifestFile,
  ];
  const [detected, overBudget] = await Promise.all([
    cli(["--json", ...args, "--out", join(fx.dir, "cli-detected")]),
    cli([...args, "--out", join(fx.dir, "cli-budget"), "--query-budget", String(KEY_COUNT)]),
  ]);
  await server.close();

  t.is(detected.code, 0, detected.stderr);
  const result = JSON.parse(detected.stdout) as {
    verdict: string;
    keys: { hits: number };
    report: string;
  };
  t.is(result.verdict, "detected");
  t.is(result.keys.hits, KEY_COUNT);
  t.is(result.report, join(fx.dir, "cli-detected", "report.json"));

  t.is(overBudget.code, 2);
  t.regex(overBudget.stderr, /--query-budget 20 \(the 20 keys and 20 control keys need 40 queries/);
});

/**
 * The demo's stage timings (issue 6): runs `taggants experiment` with the embedded default
 * profile (Fashion-MNIST) into a temporary run folder with an empty cache, so the surrogate and
 * the clean control are trained as on a fresh clone, and records the seconds of every stage from
 * its report.json, the wall time, and each scenario's log10 p and validation accuracy. Targets: the whole demo within
 * 25 minutes; with a cached surrogate (the wall time less the surrogate stage) within 18.
 * Takes as long as the demo itself (about 5 minutes on an idle 2-core machine).
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const TARGET_MINUTES = 25;
const TARGET_CACHED_MINUTES = 18;

interface DemoReport {
  timingsSeconds: Record<string, number>;
  scenarios: Array<{ scenario: string; fisherLog10P: number; valTop1: number[] }>;
}

const execFileAsync = promisify(execFile);
const cli = fileURLToPath(new URL("../bin/taggants.js", import.meta.url));

export async function run(): Promise<Record<string, unknown>> {
  const folder = await mkdtemp(join(tmpdir(), "taggants-demo-bench-"));
  try {
    const out = join(folder, "run");
    const started = performance.now();
    await execFileAsync(
      process.execPath,
      [cli, "experiment", "--out", out, "--cache", join(folder, "cache")],
      { maxBuffer: 16 << 20, env: { ...process.env, CI: "true" } },
    );
    const wallSeconds = (performance.now() - started) / 1000;
    const report = JSON.parse(await readFile(join(out, "report.json"), "utf8")) as DemoReport;
    const stages = Object.fromEntries(
      Object.entries(report.timingsSeconds).map(([stage, seconds]) => [
        `stage ${stage} (s)`,
        round(seconds),
      ]),
    );
    const cachedSeconds = wallSeconds - (report.timingsSeconds["surrogate"] ?? 0);
    return {
      ...stages,
      "wall (s)": round(wallSeconds),
      "wall with a cached surrogate (s)": round(cachedSeconds),
      [`within ${TARGET_MINUTES} min`]: wallSeconds <= TARGET_MINUTES * 60,
      [`within ${TARGET_CACHED_MINUTES} min with a cached surrogate`]:
        cachedSeconds <= TARGET_CACHED_MINUTES * 60,
      ...Object.fromEntries(
        report.scenarios.flatMap((result) => [
          [`log10 p ${result.scenario}`, round(result.fisherLog10P)],
          [`val. top-1 ${result.scenario} (%)`, result.valTop1],
        ]),
      ),
    };
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

function round(value: number): number {
  return Number(value.toFixed(2));
}

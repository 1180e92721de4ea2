/**
 * Crafting throughput (issue 5): signing images × steps per second of the worker's crafting
 * loop on the CPU preset, next to a plain-PyTorch straightforward loop of the same objective in
 * the same run (target ratio ≥ 1.0), plus each one's peak memory and where the product's time
 * goes. The figures come from `bench/sign_bench.py` (its docstring describes both loops).
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot, resolvePython, workerEnvironment } from "../src/env/python.ts";

const TARGET_RATIO = 1.0;
const execFileAsync = promisify(execFile);

async function benchPython(args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await execFileAsync(
    resolvePython(),
    [join(repoRoot, "bench", "sign_bench.py"), ...args],
    { env: { ...process.env, ...workerEnvironment() }, maxBuffer: 1 << 20 },
  );
  const lastLine = stdout.trim().split("\n").at(-1) ?? "";
  return JSON.parse(lastLine) as Record<string, unknown>;
}

export async function run(): Promise<Record<string, unknown>> {
  const speed = await benchPython(["throughput", "--rounds", "3"]);
  const product = await benchPython(["memory", "--impl", "product"]);
  const baseline = await benchPython(["memory", "--impl", "baseline"]);
  const profile = await benchPython(["profile"]);
  const ratio = Number(speed.ratio);
  console.error(
    `sign: ${JSON.stringify(speed.signing_images_steps_per_s)} signing images × steps/s, ` +
      `ratio ${ratio} (target ≥ ${TARGET_RATIO})`,
  );
  return {
    ...speed,
    target_ratio: TARGET_RATIO,
    meets_target: ratio >= TARGET_RATIO,
    peak_rss_mb: { product: product.peak_rss_mb, baseline: baseline.peak_rss_mb },
    rss_growth_mb: { product: product.growth_mb, baseline: baseline.growth_mb },
    product_self_cpu_percent: profile.self_cpu_percent,
  };
}

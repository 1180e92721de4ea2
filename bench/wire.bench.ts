/**
 * The wire between the orchestrator and the worker (issue 2): tensor round trips Node → worker
 * → Node through the `echo` command at 4 MB and 64 MB, and the median latency of a small
 * request (`ping`), beside a Python ⇄ Python pyzmq echo of the same bytes run in the same
 * session (`bench/pyzmq_echo.py`). Targets: at least 0.6× the echo's throughput at 64 MB, and a
 * median small-request latency of at most 1 ms. The two are measured in alternating rounds so
 * that a change in the machine's load touches both alike; figures are medians over all rounds.
 */
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { resolvePython, workerEnvironment } from "../src/env/python.ts";
import { startWorker, type Worker } from "../src/worker/client.ts";
import { Tensor } from "../src/worker/tensor.ts";

const MB = 2 ** 20;
const SIZES = [
  { bytes: 4 * MB, repeats: 8 },
  { bytes: 64 * MB, repeats: 2 },
];
const ROUNDS = 3;
const WARMUP = 2;
const SMALL_REQUESTS = 1_000;
const TARGET_RATIO_64MB = 0.6;
const TARGET_MEDIAN_MS = 1;

interface EchoTiming {
  times_ms: number[];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function timeRoundTrips(worker: Worker, bytes: number, repeats: number): Promise<number[]> {
  const tensor = new Tensor("float32", [bytes / 4], new Uint8Array(randomBytes(bytes)));
  const times: number[] = [];
  for (let index = 0; index < WARMUP + repeats; index++) {
    const started = performance.now();
    const { tensor: back } = await worker.request<{ tensor: Tensor }>("echo", { tensor });
    const elapsed = performance.now() - started;
    if (back.data.byteLength !== bytes) throw new Error("the echo lost bytes");
    if (index >= WARMUP) times.push(elapsed);
  }
  return times;
}

async function smallRequestMedianMs(worker: Worker): Promise<number> {
  const times: number[] = [];
  for (let index = 0; index < WARMUP * 50 + SMALL_REQUESTS; index++) {
    const started = performance.now();
    await worker.request("ping");
    if (index >= WARMUP * 50) times.push(performance.now() - started);
  }
  return median(times);
}

async function pythonEcho(): Promise<Record<string, EchoTiming>> {
  const script = fileURLToPath(new URL("./pyzmq_echo.py", import.meta.url));
  const args = [
    script,
    "--sizes",
    ...SIZES.map((s) => String(s.bytes)),
    "--repeats",
    ...SIZES.map((s) => String(s.repeats)),
  ];
  const { stdout } = await execa(resolvePython(), args, { env: workerEnvironment() });
  return JSON.parse(stdout) as Record<string, EchoTiming>;
}

export async function run(): Promise<Record<string, unknown>> {
  const worker = await startWorker();
  try {
    const wireTimes = new Map<number, number[]>(SIZES.map((s) => [s.bytes, []]));
    const echoTimes = new Map<number, number[]>(SIZES.map((s) => [s.bytes, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const echo = await pythonEcho();
      for (const { bytes, repeats } of SIZES) {
        echoTimes.get(bytes)!.push(...echo[String(bytes)]!.times_ms);
        wireTimes.get(bytes)!.push(...(await timeRoundTrips(worker, bytes, repeats)));
      }
    }
    const figures: Record<string, unknown> = { device: worker.hello.device };
    for (const { bytes } of SIZES) {
      const label = `${bytes / MB}MB`;
      const wireMs = median(wireTimes.get(bytes)!);
      const echoMs = median(echoTimes.get(bytes)!);
      figures[`roundtrip_${label}_mb_per_s`] = round(bytes / 1e3 / wireMs);
      figures[`roundtrip_${label}_ms`] = round(wireMs);
      figures[`pyzmq_echo_${label}_mb_per_s`] = round(bytes / 1e3 / echoMs);
      figures[`ratio_to_echo_${label}`] = round(echoMs / wireMs);
    }
    const latency = await smallRequestMedianMs(worker);
    figures.small_request_median_ms = round(latency, 3);
    const ratio = figures.ratio_to_echo_64MB as number;
    figures.target = `ratio_to_echo_64MB >= ${TARGET_RATIO_64MB}, small_request_median_ms <= ${TARGET_MEDIAN_MS}`;
    figures.meets_target = ratio >= TARGET_RATIO_64MB && latency <= TARGET_MEDIAN_MS;
    return figures;
  } finally {
    await worker.close();
  }
}

function round(value: number, digits = 2): number {
  return Number(value.toFixed(digits));
}

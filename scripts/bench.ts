/**
 * `npm run bench [-- name...]`: runs every `bench/*.bench.ts` (or those whose names are given),
 * one after another so they do not compete for the CPU, prints a table of their figures and
 * writes them to `bench-results/bench.json` (atomically; benches not run this time keep their
 * last figures there). Each bench module exports
 * `run(): Promise<Record<string, unknown>>`; a failing bench is reported and the others still run.
 */
import { mkdir, readFile, readdir, rename, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

interface BenchModule {
  run(): Promise<Record<string, unknown>>;
}

interface BenchOutcome {
  /** When this bench ran (benches run at other times keep their own date). */
  at: string;
  seconds: number;
  figures?: Record<string, unknown>;
  error?: string;
}

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const benchDir = path.join(repoRoot, "bench");
const resultsDir = path.join(repoRoot, "bench-results");

async function findBenches(only: string[]): Promise<string[]> {
  const names = (await readdir(benchDir))
    .filter((file) => file.endsWith(".bench.ts"))
    .map((file) => file.slice(0, -".bench.ts".length))
    .sort();
  const unknown = only.filter((name) => !names.includes(name));
  if (unknown.length > 0) {
    throw new Error(`Unknown bench ${unknown.join(", ")}; available: ${names.join(", ")}.`);
  }
  return only.length > 0 ? only : names;
}

async function runBench(name: string): Promise<BenchOutcome> {
  const started = performance.now();
  const at = new Date().toISOString();
  try {
    const url = pathToFileURL(path.join(benchDir, `${name}.bench.ts`)).href;
    const module = (await import(url)) as BenchModule;
    const figures = await module.run();
    return { at, seconds: elapsedSeconds(started), figures };
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    return { at, seconds: elapsedSeconds(started), error: message };
  }
}

function elapsedSeconds(started: number): number {
  return Number(((performance.now() - started) / 1000).toFixed(1));
}

function formatTable(outcomes: Record<string, BenchOutcome>): string {
  const rows: string[][] = [["bench", "figure", "value"]];
  for (const [name, outcome] of Object.entries(outcomes)) {
    if (outcome.error !== undefined) {
      rows.push([name, "FAILED", outcome.error.split("\n")[0] ?? ""]);
      continue;
    }
    for (const [key, value] of Object.entries(outcome.figures ?? {})) {
      rows.push([name, key, typeof value === "string" ? value : JSON.stringify(value)]);
    }
    rows.push([name, "seconds", String(outcome.seconds)]);
  }
  const widths = [0, 1].map((column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows
    .map((row) => row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell)).join("  "))
    .join("\n");
}

async function previousOutcomes(file: string): Promise<Record<string, BenchOutcome>> {
  try {
    const saved = JSON.parse(await readFile(file, "utf8")) as {
      benches?: Record<string, BenchOutcome>;
    };
    return saved.benches ?? {};
  } catch {
    return {}; // no earlier results (or unreadable ones): start afresh
  }
}

async function saveResults(outcomes: Record<string, BenchOutcome>): Promise<string> {
  await mkdir(resultsDir, { recursive: true });
  const file = path.join(resultsDir, "bench.json");
  const results = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    benches: { ...(await previousOutcomes(file)), ...outcomes },
  };
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, JSON.stringify(results, null, 2) + "\n");
  await rename(temporary, file);
  return file;
}

async function main(): Promise<number> {
  const names = await findBenches(process.argv.slice(2));
  const outcomes: Record<string, BenchOutcome> = {};
  for (const name of names) {
    console.error(`bench ${name}: running`);
    outcomes[name] = await runBench(name);
    if (outcomes[name].error) console.error(`bench ${name} failed:\n${outcomes[name].error}`);
  }
  const file = await saveResults(outcomes);
  console.log(formatTable(outcomes));
  console.log(`\nwritten to ${path.relative(process.cwd(), file)}`);
  return Object.values(outcomes).some((outcome) => outcome.error !== undefined) ? 3 : 0;
}

process.exitCode = await main();

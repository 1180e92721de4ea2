#!/usr/bin/env node
// `npm test`: the TypeScript suite (ava) and the worker's suite (pytest), both always run, then
// one closing line `N passed, N failed` over both, which CI reads. Exits non-zero when a test
// failed, a suite could not run, or no test ran at all.
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));

/** Run a command, echoing its output, and return its exit code and full stdout. */
function runSuite(command, args) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      process.stdout.write(chunk);
    });
    child.on("close", (code, signal) => resolve({ code: code ?? 1, signal, stdout }));
    child.on("error", (error) => resolve({ code: 1, signal: null, stdout: String(error) }));
  });
}

function count(pattern, text) {
  const match = pattern.exec(text);
  return match ? Number(match[1]) : 0;
}

const ava = await runSuite(path.join(repoRoot, "node_modules", ".bin", "ava"), ["--tap"]);
const avaCounts = {
  passed: count(/^# pass (\d+)$/m, ava.stdout),
  failed: count(/^# fail (\d+)$/m, ava.stdout),
};

const pytest = await runSuite(process.execPath, [
  path.join("scripts", "run-python.mjs"),
  "-m",
  "pytest",
  "python/tests",
  "-q",
  "-p",
  "no:cacheprovider",
]);
const pytestSummary = pytest.stdout.trim().split("\n").at(-1) ?? "";
const pytestCounts = {
  passed: count(/(\d+) passed/, pytestSummary),
  failed: count(/(\d+) failed/, pytestSummary) + count(/(\d+) errors?/, pytestSummary),
};

const passed = avaCounts.passed + pytestCounts.passed;
const failed = avaCounts.failed + pytestCounts.failed;
process.stdout.write(
  `\nava: ${avaCounts.passed} passed, ${avaCounts.failed} failed (exit ${ava.code}); ` +
    `pytest: ${pytestCounts.passed} passed, ${pytestCounts.failed} failed (exit ${pytest.code})\n`,
);
process.stdout.write(`${passed} passed, ${failed} failed\n`);
const suiteBroke = ava.code !== 0 || pytest.code !== 0;
process.exit(failed > 0 || suiteBroke || passed === 0 ? 1 : 0);

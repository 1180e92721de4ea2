#!/usr/bin/env node
// Runs the worker's Python interpreter (TAGGANTS_PYTHON or the managed venv) with the worker
// package on the path: `node scripts/run-python.mjs -m pytest python/tests`.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pythonEnvironmentDir } from "./python-env.mjs";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const python =
  process.env.TAGGANTS_PYTHON ?? path.join(pythonEnvironmentDir(repoRoot), "bin", "python");
const pythonPath = [path.join(repoRoot, "python"), process.env.PYTHONPATH].filter(Boolean);
const result = spawnSync(python, process.argv.slice(2), {
  stdio: "inherit",
  env: { ...process.env, PYTHONPATH: pythonPath.join(path.delimiter) },
});
if (result.error) {
  process.stderr.write(
    `could not run ${python}: ${result.error.message}; run \`npm run bootstrap\`\n`,
  );
  process.exit(3);
}
process.exit(result.status ?? 1);

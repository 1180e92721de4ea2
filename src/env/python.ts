/**
 * Where the worker's Python interpreter lives. `TAGGANTS_PYTHON` wins; otherwise the venv that
 * `scripts/bootstrap.mjs` builds in the user cache, keyed by a hash of the requirements listed in
 * `environment.yml`, so every clone with the same requirements shares one environment.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { UsageError } from "../errors.ts";
import { pythonEnvironmentDir } from "../../scripts/python-env.mjs";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const workerPackageRoot = path.join(repoRoot, "python");

export function resolvePython(): string {
  const fromEnv = process.env.TAGGANTS_PYTHON;
  if (fromEnv) {
    if (!existsSync(fromEnv)) {
      throw new UsageError(
        "python_not_found",
        `TAGGANTS_PYTHON points at ${fromEnv}, which does not exist. Set it to a Python 3.11 interpreter with the packages of environment.yml, or unset it to use the managed environment.`,
      );
    }
    return fromEnv;
  }
  const python = path.join(pythonEnvironmentDir(repoRoot), "bin", "python");
  if (!existsSync(python)) {
    throw new UsageError(
      "python_env_missing",
      `The worker's Python environment is not set up (expected ${python}). Run \`npm run bootstrap\` or set TAGGANTS_PYTHON.`,
    );
  }
  return python;
}

/** Environment variables for a worker process: the worker package on the path, unbuffered. */
export function workerEnvironment(): Record<string, string> {
  const existing = process.env.PYTHONPATH;
  return {
    PYTHONPATH: existing ? `${workerPackageRoot}${path.delimiter}${existing}` : workerPackageRoot,
    PYTHONUNBUFFERED: "1",
  };
}

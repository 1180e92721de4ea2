// Shared by bootstrap.mjs (plain Node, runs before node_modules exist) and src/env/python.ts:
// the worker's requirements come from environment.yml, and the venv that holds them lives in
// the user cache under a name keyed by their hash.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** The `pip:` entries of environment.yml, in file order. */
export function readRequirements(repoRoot) {
  const text = readFileSync(path.join(repoRoot, "environment.yml"), "utf8");
  const lines = text.split("\n");
  const start = lines.findIndex((line) => line.trim() === "- pip:");
  if (start < 0) throw new Error("environment.yml has no `- pip:` list of worker requirements");
  const requirements = [];
  for (const line of lines.slice(start + 1)) {
    const match = /^\s+-\s+(\S+)\s*$/.exec(line);
    if (!match) break;
    requirements.push(match[1]);
  }
  return requirements;
}

export function cacheRoot() {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "taggants");
}

export function pythonEnvironmentDir(repoRoot) {
  const hash = createHash("sha256").update(readRequirements(repoRoot).join("\n")).digest("hex");
  return path.join(cacheRoot(), `python-${hash.slice(0, 16)}`);
}

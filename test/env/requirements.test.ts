import test from "ava";
import { readFileSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "../../src/env/python.ts";
import { readRequirements } from "../../scripts/python-env.mjs";

/** Every quoted requirement inside `dependencies = [...]` and the `dev = [...]` extra. */
function pyprojectRequirements(): string[] {
  const text = readFileSync(path.join(repoRoot, "python", "pyproject.toml"), "utf8");
  const lists = [...text.matchAll(/^(?:dependencies|dev) = \[([^\]]*)\]/gm)];
  return lists.flatMap((list) => [...list[1]!.matchAll(/"([^"]+)"/g)].map((m) => m[1]!));
}

test("environment.yml and python/pyproject.toml list the same worker requirements", (t) => {
  const fromEnvironment = readRequirements(repoRoot) as string[];
  t.true(fromEnvironment.length > 0);
  t.deepEqual([...pyprojectRequirements()].sort(), [...fromEnvironment].sort());
});

test("the worker requirements pin every package to one version", (t) => {
  for (const requirement of readRequirements(repoRoot) as string[]) {
    t.regex(requirement, /^[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*$/, requirement);
  }
});

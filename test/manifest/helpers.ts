/** Temporary copies of the fixtures for manifest tests. */
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));

/** A fresh temporary folder, removed when the test ends. */
export async function temporaryFolder(t: {
  teardown(fn: () => Promise<void>): void;
}): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), "taggants-manifest-"));
  t.teardown(() => rm(folder, { recursive: true, force: true }));
  return folder;
}

/** Copy a fixture folder into a fresh temporary folder; returns the copy's path. */
export async function copyFixture(
  t: { teardown(fn: () => Promise<void>): void },
  name: string,
): Promise<string> {
  const folder = await temporaryFolder(t);
  const copy = join(folder, name);
  await cp(join(FIXTURES, name), copy, { recursive: true });
  return copy;
}

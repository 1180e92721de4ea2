/** Temporary copies of the fixtures for manifest tests. */
import { cp } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { temporaryFolder, type Teardown } from "../helpers/temporary.ts";

export const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));

/** Copy a fixture folder into a fresh temporary folder; returns the copy's path. */
export async function copyFixture(t: Teardown, name: string): Promise<string> {
  const folder = await temporaryFolder(t, "taggants-manifest-");
  const copy = join(folder, name);
  await cp(join(FIXTURES, name), copy, { recursive: true });
  return copy;
}

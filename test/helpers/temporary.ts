/**
 * Temporary folders for tests, each removed when its owner finishes, whether it passed or
 * failed: a test (`t.teardown`) or, for a folder shared by a file's tests, the file's
 * `test.after.always` hook.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** What removes a folder at the end: an ava test's execution context. */
export interface Teardown {
  teardown(fn: () => Promise<void>): void;
}

/** A fresh folder `<tmpdir>/<prefix>XXXXXX`, removed when the test `t` ends. */
export async function temporaryFolder(t: Teardown, prefix = "taggants-test-"): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => removeFolder(folder));
  return folder;
}

/**
 * A fresh folder for a whole test file; call `removeFolder` on it in `test.after.always`
 * (hooks are declared when the file loads, so the removal cannot be registered from here).
 */
export async function sharedTemporaryFolder(prefix = "taggants-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Remove a temporary folder and everything in it; a folder already gone is not an error. */
export async function removeFolder(folder: string | undefined): Promise<void> {
  if (folder !== undefined) await rm(folder, { recursive: true, force: true });
}

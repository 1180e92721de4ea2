/**
 * Atomic file writes: write a temporary file beside the target, flush it, then rename it over
 * the target, so that a reader never sees half a manifest, commitment or key file.
 */
import { randomBytes } from "node:crypto";
import { open, rename, rm, link } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export interface AtomicWriteOptions {
  /** File mode of the new file (default 0o644). */
  mode?: number;
  /** Refuse to replace an existing file (the target is created with a hard link). */
  exclusive?: boolean;
}

function temporaryPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
}

/** Write `data` to `path` atomically. With `exclusive`, fails with EEXIST if `path` exists. */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const temporary = temporaryPath(path);
  const mode = options.mode ?? 0o644;
  try {
    const handle = await open(temporary, "wx", mode);
    try {
      await handle.writeFile(data);
      // The umask may have cleared bits; set the mode we promised exactly.
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (options.exclusive) {
      await link(temporary, path);
      await rm(temporary, { force: true });
    } else {
      await rename(temporary, path);
    }
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** The temporary name for a file that is written in pieces and then renamed with `commit`. */
export function temporaryFileFor(path: string): { temporary: string; commit(): Promise<void> } {
  const temporary = temporaryPath(path);
  return { temporary, commit: () => rename(temporary, path) };
}

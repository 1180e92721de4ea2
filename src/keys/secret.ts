/**
 * The key secret: 256 bits from the operating system's CSPRNG, from which every key, and the
 * signing set, are derived (METHOD.md, Signing, step 1). It is stored as 64 hex digits in a file
 * that only its owner may read; a secret that others can read is refused, since anyone holding
 * it could forge or strip the proof of ownership.
 */
import { randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { UsageError } from "../errors.ts";
import { writeFileAtomic } from "../manifest/atomic.ts";

/** Bytes in a key secret (256 bits). */
export const KEY_SECRET_BYTES = 32;

const SECRET_PATTERN = /^[0-9a-f]{64}$/;

/** Write a new key secret to `path` with mode 0600. Refuses to replace an existing file. */
export async function createKeySecret(path: string): Promise<void> {
  const secret = randomBytes(KEY_SECRET_BYTES).toString("hex");
  try {
    await writeFileAtomic(path, secret + "\n", { mode: 0o600, exclusive: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOTDIR") {
      throw new UsageError(
        "key-file-folder-missing",
        `Cannot create the key file ${path}: part of its folder path ${dirname(path)} is a file, not a folder. Choose another path.`,
        { cause: error },
      );
    }
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
      throw new UsageError(
        "key-file-folder-not-writable",
        `Cannot create the key file ${path}: the folder ${dirname(path)} is not writable (permissions or a read-only file system). Choose another path.`,
        { cause: error },
      );
    }
    if (code === "ENOENT") {
      throw new UsageError(
        "key-file-folder-missing",
        `Cannot create the key file ${path}: its folder ${dirname(path)} does not exist. Create the folder first (mkdir -p ${dirname(path)}).`,
        { cause: error },
      );
    }
    if (code === "EEXIST" && (await stat(path)).isDirectory()) {
      throw new UsageError(
        "key-file-is-folder",
        `${path} is a folder; expected the path of a new key file, e.g. ${path}/alice.key.`,
        { cause: error },
      );
    }
    if (code === "EEXIST") {
      throw new UsageError(
        "key-file-exists",
        `A key file already exists at ${path}; refusing to overwrite it (that would lose the keys of every dataset signed with it). Choose another path or move the old file away first.`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** Read a key secret, refusing files that the group or others may read or write. */
export async function loadKeySecret(path: string): Promise<Uint8Array> {
  const info = await statKeyFile(path);
  if ((info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(3, "0");
    throw new UsageError(
      "key-file-permissions",
      `The key file ${path} has mode ${mode}, so other users may read it; expected mode 600 (owner only). Run: chmod 600 ${path}`,
    );
  }
  const text = (await readFile(path, "utf8")).trim();
  if (!SECRET_PATTERN.test(text)) {
    throw new UsageError(
      "key-file-invalid",
      `The key file ${path} does not hold a key secret: expected 64 lowercase hex digits, received ${text.length} characters. Create one with \`taggants keys init <path>\`.`,
    );
  }
  return new Uint8Array(Buffer.from(text, "hex"));
}

async function statKeyFile(path: string): Promise<{ mode: number }> {
  try {
    return await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new UsageError(
        "key-file-missing",
        `No key file at ${path}. Create one with \`taggants keys init ${path}\`.`,
        { cause: error },
      );
    }
    throw error;
  }
}

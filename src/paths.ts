/** What a path names on disk, for messages that say which of the three the user gave. */
import { stat } from "node:fs/promises";

export async function pathKind(path: string): Promise<"file" | "folder" | "missing"> {
  try {
    return (await stat(path)).isDirectory() ? "folder" : "file";
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "missing";
    throw error;
  }
}

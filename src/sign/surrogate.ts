/**
 * What the orchestrator needs to know of a surrogate checkpoint (docs/ARCHITECTURE.md,
 * "Checkpoints") before crafting: its classes, channels and input size from `checkpoint.json`,
 * and the SHA-256 of its weights for the private record.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { UsageError } from "../errors.ts";

export interface SurrogateInfo {
  path: string;
  classes: string[];
  channels: number;
  inputSize: [number, number];
  /** SHA-256 of model.safetensors. */
  sha256: string;
}

interface CheckpointRecord {
  classes?: unknown;
  channels?: unknown;
  input_size?: unknown;
  complete?: unknown;
}

export async function loadSurrogateInfo(path: string): Promise<SurrogateInfo> {
  const folder = resolve(path);
  let record: CheckpointRecord;
  try {
    record = JSON.parse(
      await readFile(join(folder, "checkpoint.json"), "utf8"),
    ) as CheckpointRecord;
  } catch (error) {
    throw new UsageError(
      "surrogate-unreadable",
      `Expected a checkpoint folder with checkpoint.json and model.safetensors at ${folder}: ${(error as Error).message}. Train one with \`taggants train\`.`,
      { cause: error },
    );
  }
  const { classes, channels, input_size: inputSize } = record;
  const valid =
    Array.isArray(classes) &&
    classes.every((name) => typeof name === "string") &&
    (channels === 1 || channels === 3) &&
    Array.isArray(inputSize) &&
    inputSize.length === 2;
  if (!valid) {
    throw new UsageError(
      "surrogate-unreadable",
      `${join(folder, "checkpoint.json")} lacks classes (list of names), channels (1 or 3) or input_size ([h, w]); it was not written by taggants.`,
    );
  }
  if (record.complete === false) {
    throw new UsageError(
      "surrogate-incomplete",
      `The surrogate ${folder} is a checkpoint of an unfinished training run; finish it (re-run the same \`taggants train\`) before signing.`,
    );
  }
  return {
    path: folder,
    classes: classes as string[],
    channels: channels as number,
    inputSize: inputSize as [number, number],
    sha256: await sha256File(join(folder, "model.safetensors")),
  };
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (error) {
    throw new UsageError("file-unreadable", `Cannot read ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return hash.digest("hex");
}

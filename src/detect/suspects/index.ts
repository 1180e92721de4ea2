/** Open the suspect named by a parsed `--suspect` spec (see ../spec.ts). */
import type { Terminal } from "../../cli/terminal.ts";
import { loadCheckpointInfo, startCheckpointPredictor, type Predictor } from "../predictor.ts";
import type { RetryPolicy } from "../http.ts";
import type { SuspectSpec } from "../spec.ts";
import type { Suspect } from "../suspect.ts";
import { CheckpointSuspect } from "./checkpoint.ts";
import { openJsonSuspect } from "./json.ts";
import { openTorchServeSuspect } from "./torchserve.ts";
import { openV2Suspect } from "./v2.ts";

export type SpecOf<K extends SuspectSpec["kind"]> = Extract<SuspectSpec, { kind: K }>;

export interface OpenSuspectOptions {
  /** Key geometry from the commitment: channels and key resolution r (keys are r×r). */
  keyGeometry: { channels: number; resolution: number };
  /** Input size for suspects that announce none: --input-size, else the dataset's image size. */
  inputSize?: readonly [number, number];
  policy: RetryPolicy;
  terminal: Terminal;
  signal: AbortSignal;
  /** Replaced in tests by a fake; defaults to a worker-backed predictor. */
  startPredictor?: (checkpoint: string) => Promise<Predictor>;
}

export async function openSuspect(
  spec: SuspectSpec,
  options: OpenSuspectOptions,
): Promise<Suspect> {
  const http = {
    keyChannels: options.keyGeometry.channels,
    inputSize: options.inputSize,
    policy: options.policy,
    signal: options.signal,
  };
  switch (spec.kind) {
    case "checkpoint": {
      const info = await loadCheckpointInfo(spec.path);
      const start =
        options.startPredictor ??
        ((checkpoint: string) =>
          startCheckpointPredictor({
            checkpoint,
            terminal: options.terminal,
            signal: options.signal,
          }));
      const predictor = await start(spec.path);
      return new CheckpointSuspect(
        { spec: spec.spec, info, keyGeometry: options.keyGeometry },
        predictor,
      );
    }
    case "v2":
      return openV2Suspect(spec, http);
    case "torchserve":
      return openTorchServeSuspect(spec, http);
    case "json":
      return openJsonSuspect(spec, http);
  }
}

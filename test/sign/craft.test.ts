import test from "ava";
import { join } from "node:path";
import { recordingTerminal } from "../helpers/terminal.ts";
import { craftTaggants, type CraftParams } from "../../src/sign/craft.ts";
import type { Worker } from "../../src/worker/client.ts";
import { Tensor } from "../../src/worker/tensor.ts";
import { temporaryFolder, type Teardown } from "../helpers/temporary.ts";

const PARAMS: CraftParams = {
  eps255: 8,
  steps: 10,
  restarts: 3,
  stepSize: 0.1,
  augDraws: 2,
  perceptual: "none",
  perceptualWeight: 0,
  chunkSize: 64,
  seed: 0,
  checkpointEvery: 5,
};

/** A worker whose `craft` reports the given (restart, step) events, then a valid reply. */
function fakeWorker(events: Array<{ restart: number; step: number }>): Worker {
  return {
    request: async (
      _command: string,
      _args: Record<string, unknown>,
      options: { onProgress?: (event: Record<string, unknown>) => void },
    ) => {
      for (const event of events) options.onProgress?.({ ...event, steps: PARAMS.steps });
      return {
        signed: new Tensor("uint8", [2, 1, 2, 2], new Uint8Array(8)),
        cosine: Tensor.from("float32", new Float32Array([0.5]), [1]),
        objective: 0.5,
      };
    },
  } as unknown as Worker;
}

async function craftWith(
  t: Teardown,
  events: Array<{ restart: number; step: number }>,
): Promise<string[]> {
  const folder = await temporaryFolder(t, "taggants-craft-");
  const { terminal, lines } = recordingTerminal();
  await craftTaggants({
    worker: fakeWorker(events),
    terminal,
    surrogates: ["surrogate"],
    dataset: { manifest: "m.json", root: "data", split: "train" },
    keys: [{ index: 0, image: new Uint8Array(4), label: 1 }],
    keyResolution: 2,
    channels: 1,
    signingIndices: [[0, 1]],
    params: PARAMS,
    statePath: join(folder, "state"),
    cachePath: join(folder, "cache"),
  });
  return lines();
}

test("a crafting job resumed in its second restart says how many steps it had done", async (t) => {
  const lines = await craftWith(t, [
    { restart: 2, step: 4 },
    { restart: 2, step: 5 },
  ]);
  t.is(lines[0], "crafting taggants: resuming: 13 of 30 done, 17 to do");
});

test("a fresh crafting job says it started, with every step to do", async (t) => {
  const lines = await craftWith(t, [
    { restart: 1, step: 1 },
    { restart: 1, step: 2 },
  ]);
  t.is(lines[0], "crafting taggants: started (30 to do)");
});

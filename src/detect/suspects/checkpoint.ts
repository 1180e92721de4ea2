/**
 * A checkpoint written by this tool, queried through the worker's `predict`. Keys go at key
 * resolution (the worker upsamples them, nearest, to the model's input); queries that arrive
 * together are sent as one batch. The answer recorded for each key is the model's full class
 * ranking as JSON, `{"top_k": [i, ...]}`, so that it can be hashed and re-read like an HTTP one.
 */
import { TaggantsError } from "../../errors.ts";
import type { EncodedRequest } from "../formats.ts";
import type { CheckpointInfo, Predictor } from "../predictor.ts";
import type { RawAnswer, Suspect, SuspectDescription } from "../suspect.ts";

interface Pending {
  request: EncodedRequest;
  resolve: (answer: RawAnswer) => void;
  reject: (error: unknown) => void;
}

export class CheckpointSuspect implements Suspect {
  readonly description: SuspectDescription;
  private queue: Pending[] = [];
  private readonly geometry: { channels: number; height: number; width: number };

  constructor(
    options: {
      spec: string;
      info: CheckpointInfo;
      keyGeometry: { channels: number; resolution: number };
    },
    private readonly predictor: Predictor,
  ) {
    const { spec, info, keyGeometry } = options;
    this.geometry = {
      channels: keyGeometry.channels,
      height: keyGeometry.resolution,
      width: keyGeometry.resolution,
    };
    this.description = {
      kind: "checkpoint",
      spec,
      endpoint: info.path,
      request: { encoding: "worker-tensor", ...this.geometry },
      answer: { format: "worker-top-k" },
      labelSpace: { kind: "named-indices", names: info.classes },
      headerNames: [],
      metadata: {
        model: info.model ?? null,
        classes: info.classes,
        input_size: info.inputSize ?? null,
      },
      notes: [],
    };
  }

  send(request: EncodedRequest, _signal: AbortSignal): Promise<RawAnswer> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      // Everything queued in this turn of the event loop goes to the worker as one batch.
      if (this.queue.length === 1) setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    const started = performance.now();
    const { channels, height, width } = this.geometry;
    const size = channels * height * width;
    const data = new Uint8Array(batch.length * size);
    batch.forEach((pending, i) => data.set(pending.request.body, i * size));
    const classes = (this.description.labelSpace as { names: string[] }).names.length;
    try {
      const rows = await this.predictor.predict(
        { count: batch.length, channels, height, width, data },
        classes,
      );
      const elapsedMs = performance.now() - started;
      batch.forEach((pending, i) => {
        const body = new TextEncoder().encode(JSON.stringify({ top_k: rows[i] }));
        pending.resolve({ status: 200, body, attempts: 1, elapsedMs });
      });
    } catch (error) {
      const failure = new TaggantsError(
        "detect-worker-predict",
        `The worker's predict failed on the checkpoint: ${(error as Error).message}`,
        { cause: error },
      );
      for (const pending of batch) pending.reject(failure);
    }
  }

  close(): Promise<void> {
    return this.predictor.close();
  }
}

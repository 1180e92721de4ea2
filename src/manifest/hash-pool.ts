/**
 * A pool of worker threads that hash image files in batches (parallel hashing for manifests).
 * Batches are answered in any order; callers keep their own order by awaiting the promises in
 * the order they submitted them.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { ImageHeader } from "./image-header.ts";

export interface HashRequest {
  id: number;
  paths: string[];
}

export type HashResult =
  | ({ ok: true; size: number; sha256: string } & ImageHeader)
  | {
      ok: false;
      reason: "unreadable" | "not-an-image" | "truncated" | "malformed";
      message: string;
      /** Present when the file could be read. */
      size?: number;
      sha256?: string;
    };

interface Pending {
  resolve(results: HashResult[]): void;
  reject(error: Error): void;
}

export class HashPool {
  private readonly workers: Worker[];
  private readonly load = new Map<Worker, number>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: Error | undefined;

  /** `size` threads; defaults to the machine's available parallelism. */
  constructor(size = availableParallelism()) {
    this.workers = Array.from({ length: Math.max(1, size) }, () => this.spawn());
  }

  get size(): number {
    return this.workers.length;
  }

  /** Hash a batch of files; the results are in the order of `paths`. */
  hash(paths: string[]): Promise<HashResult[]> {
    if (this.failure) return Promise.reject(this.failure);
    const worker = this.leastLoaded();
    const id = this.nextId++;
    this.load.set(worker, (this.load.get(worker) ?? 0) + 1);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, paths } satisfies HashRequest);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private spawn(): Worker {
    const worker = new Worker(new URL("./hash-worker.js", import.meta.url));
    this.load.set(worker, 0);
    worker.on("message", (reply: { id: number; results: HashResult[] }) => {
      const pending = this.pending.get(reply.id);
      if (!pending) return;
      this.pending.delete(reply.id);
      this.load.set(worker, (this.load.get(worker) ?? 1) - 1);
      pending.resolve(reply.results);
    });
    worker.on("error", (error) => this.fail(error));
    worker.on("exit", (code) => {
      if (this.pending.size > 0) this.fail(new Error(`a hashing thread exited with code ${code}`));
    });
    return worker;
  }

  private leastLoaded(): Worker {
    let best = this.workers[0]!;
    for (const worker of this.workers) {
      if ((this.load.get(worker) ?? 0) < (this.load.get(best) ?? 0)) best = worker;
    }
    return best;
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      pending.reject(error);
    }
  }
}

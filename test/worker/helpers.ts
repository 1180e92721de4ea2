// Shared by the worker tests: the fake worker fixture and process checks.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startWorker, type StartWorkerOptions, type Worker } from "../../src/worker/client.ts";

export const fakeWorkerScript = fileURLToPath(
  new URL("./fixtures/fake_worker.py", import.meta.url),
);

export type FakeMode =
  "normal" | "protocol-99" | "silent" | "garbage" | "exit-at-start" | "refuse-device";

/** A fake worker (no torch, starts in a blink) that misbehaves as `mode` says. */
export function startFakeWorker(mode: FakeMode, options: StartWorkerOptions = {}): Promise<Worker> {
  return startWorker({ entry: [fakeWorkerScript, "--mode", mode], ...options });
}

/** Whether `pid` is a live process (a zombie awaiting its reaper counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Wait until `pid` is gone; false if it is still alive after `timeoutMs`. */
export async function waitUntilGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return !isAlive(pid);
}

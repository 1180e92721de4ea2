// How the client reports a worker that crashes, hangs, lies or misbehaves, and how it stops one.
// Real workers where the worker's own behaviour matters; the fake worker fixture otherwise.
import { readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import test from "ava";
import { execa } from "execa";
import { startWorker } from "../../src/worker/client.ts";
import { UsageError } from "../../src/errors.ts";
import { WorkerError } from "../../src/worker/errors.ts";
import { Tensor } from "../../src/worker/tensor.ts";
import { recordingTerminal } from "../helpers/terminal.ts";
import { isAlive, startFakeWorker, waitUntilGone } from "./helpers.ts";

test("a worker killed mid-request fails the request at once with what is known", async (t) => {
  const worker = await startWorker({ device: "cpu" });
  t.teardown(() => worker.close());
  const pid = worker.pid!;
  const started = Date.now();
  const error = await t.throwsAsync(
    worker.request(
      "debug.sleep",
      { seconds: 60, progress: true },
      { onProgress: () => process.kill(pid, "SIGKILL") },
    ),
    { instanceOf: WorkerError },
  );
  t.true(Date.now() - started < 5_000, "the failure is reported within seconds");
  t.is(error.code, "worker_exited");
  t.is(error.requestId, 1);
  t.regex(error.message, /^Request 1 \(debug\.sleep\) failed: the worker was killed by SIGKILL\./);
  t.regex(error.message, /Last progress event: \{"stage":"sleeping","seconds":60\}/);
  t.regex(error.message, /Last lines of the worker's stderr:\n.*ready in/);
  t.is(worker.status, "failed");
  const later = await t.throwsAsync(worker.request("ping"), { instanceOf: WorkerError });
  t.regex(later.message, /cannot run: The worker was killed by SIGKILL/);
  await worker.close();
  t.false(isAlive(pid));
});

test("a worker that exits mid-request reports its exit code and last words", async (t) => {
  const worker = await startWorker({ device: "cpu" });
  t.teardown(() => worker.close());
  const error = await t.throwsAsync(
    worker.request("debug.exit", { code: 7, message: "out of memory (simulated)" }),
    { instanceOf: WorkerError },
  );
  t.is(error.code, "worker_exited");
  t.regex(error.message, /Request 1 \(debug\.exit\) failed: the worker exited with code 7\./);
  t.regex(error.message, /Last progress event: \{"stage":"exiting","code":7\}/);
  t.regex(error.message, /error: out of memory \(simulated\)/);
  await worker.close();
});

test("a worker that stops answering is detected by its missing heartbeats", async (t) => {
  const worker = await startFakeWorker("silent", {
    heartbeatIntervalMs: 100,
    heartbeatTimeoutMs: 800,
  });
  t.teardown(() => worker.close());
  const pid = worker.pid!;
  const started = Date.now();
  const error = await t.throwsAsync(worker.request("ping"), { instanceOf: WorkerError });
  t.is(error.code, "worker_hung");
  t.regex(
    error.message,
    /Request 1 \(ping\) failed: the worker sent nothing.*heartbeatTimeoutMs 800/,
  );
  t.true(Date.now() - started < 5_000);
  await worker.close();
  t.false(isAlive(pid), "the hung worker was killed");
});

test("a protocol-version mismatch is reported and that worker is stopped", async (t) => {
  const error = await t.throwsAsync(startFakeWorker("protocol-99"), { instanceOf: WorkerError });
  t.is(error.code, "worker_protocol_mismatch");
  t.regex(error.message, /speaks wire protocol version 99, but this taggants speaks version 1/);
  const pid = Number(/pid (\d+)/.exec(error.message)?.[1]);
  t.true(await waitUntilGone(pid, 2_000));
});

test("a worker that dies while starting reports its exit code and stderr", async (t) => {
  const error = await t.throwsAsync(startFakeWorker("exit-at-start"), { instanceOf: WorkerError });
  t.is(error.code, "worker_start_failed");
  t.regex(error.message, /could not start: the worker exited with code 3\./);
  t.regex(error.message, /fake worker: cannot start \(as asked\)/);
});

test("a worker that refuses its start-up settings is a usage error with its one-line reason", async (t) => {
  const { terminal, printed: text } = recordingTerminal();
  const error = await t.throwsAsync(startFakeWorker("refuse-device", { terminal }), {
    instanceOf: UsageError,
  });
  t.is(error.code, "worker_settings_refused");
  t.is(error.message, "The worker refused its settings: device 'cuda' was requested (as asked).");
  t.notRegex(text(), /device 'cuda'/, "the reason is printed once, by the error");
});

test("malformed messages from the worker are rejected without breaking the wire", async (t) => {
  const { terminal, printed: text } = recordingTerminal();
  const worker = await startFakeWorker("garbage", { terminal });
  t.teardown(() => worker.close());
  t.deepEqual(await worker.request("echo", { a: 1 }), { a: 1 });
  t.regex(text(), /rejected a message: A header frame is not valid msgpack/);
  t.regex(text(), /rejected a message: Unknown message type "gossip"/);

  const error = await t.throwsAsync(worker.request("bad-tensor"), { instanceOf: WorkerError });
  t.is(error.code, "worker_protocol_error");
  t.regex(error.message, /names frame 5/);
  t.deepEqual(await worker.request("echo", { still: "working" }), { still: "working" });
  t.is(worker.status, "ready");
  await worker.close();
});

test("a message over the size limit is refused before it is sent", async (t) => {
  const worker = await startFakeWorker("normal", { maxMessageBytes: 1024 });
  t.teardown(() => worker.close());
  const tensor = Tensor.zeros("float32", [512]);
  const error = await t.throwsAsync(worker.request("echo", { tensor }), {
    instanceOf: WorkerError,
  });
  t.is(error.code, "worker_message_too_large");
  t.regex(error.message, /Request 1 \(echo\) is \d+ bytes, over the wire's limit of 1024 bytes/);
  t.deepEqual(await worker.request("ping"), {});
  await worker.close();
});

test("aborting the worker's signal cancels its requests and stops it, by force if need be", async (t) => {
  const { terminal, printed: text } = recordingTerminal();
  const controller = new AbortController();
  const worker = await startFakeWorker("normal", {
    terminal,
    signal: controller.signal,
    shutdownTimeoutMs: 300,
  });
  t.teardown(() => worker.close());
  const pid = worker.pid!;
  // The fake worker's sleep blocks its loop, so it cannot obey the shutdown message.
  const pending = worker.request("sleep", { seconds: 30 });
  setTimeout(() => controller.abort(new Error("interrupted by SIGINT")), 100);
  const error = await t.throwsAsync(pending, { instanceOf: WorkerError });
  t.is(error.code, "worker_cancelled");
  t.regex(error.message, /was cancelled: interrupted by SIGINT/);
  await worker.close();
  t.regex(text(), /did not exit within 300 ms of the shutdown request \(shutdownTimeoutMs\)/);
  t.false(isAlive(pid));
});

test("the worker exits when its parent process dies", async (t) => {
  const parentScript = new URL("./fixtures/parent.ts", import.meta.url).pathname;
  const parent = execa("node", ["--import=tsx", parentScript], { reject: false, buffer: false });
  const workerPid = await new Promise<number>((resolve) =>
    parent.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim()))),
  );
  t.true(isAlive(workerPid));
  parent.kill("SIGKILL");
  await parent;
  // The killed parent could not remove its socket file; its name starts with the parent's pid.
  for (const file of readdirSync(tmpdir())) {
    if (file.startsWith(`taggants-${parent.pid}-`))
      rmSync(path.join(tmpdir(), file), { force: true });
  }
  t.true(await waitUntilGone(workerPid, 5_000), `worker ${workerPid} outlived its parent`);
});

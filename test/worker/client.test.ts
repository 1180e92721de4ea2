// One real worker (torch import takes seconds) shared by these tests, which run in order.
import { randomBytes } from "node:crypto";
import test from "ava";
import { startWorker, type Worker } from "../../src/worker/client.ts";
import { WorkerError, WorkerPythonError } from "../../src/worker/errors.ts";
import { PROTOCOL_VERSION } from "../../src/worker/protocol.ts";
import { DTYPES, ITEM_SIZE, Tensor, type DType } from "../../src/worker/tensor.ts";
import { isAlive } from "./helpers.ts";

let worker: Worker;

test.before(async () => {
  worker = await startWorker({ device: "cpu" });
});

test.after.always(async () => {
  await worker?.close();
});

const MB = 2 ** 20;

function randomTensor(dtype: DType, shape: number[]): Tensor {
  const count = shape.reduce((a, b) => a * b, 1);
  // bool tensors hold 0 or 1 in each byte; any byte pattern is a valid value of the others.
  const data = new Uint8Array(randomBytes(count * ITEM_SIZE[dtype]));
  if (dtype === "bool") data.forEach((byte, i) => (data[i] = byte & 1));
  return new Tensor(dtype, shape, data);
}

async function echoTensor(tensor: Tensor): Promise<Tensor> {
  const result = await worker.request<{ tensor: Tensor }>("echo", { tensor });
  return result.tensor;
}

test.serial("the handshake names the protocol, the versions and the device", (t) => {
  t.is(worker.hello.protocol_version, PROTOCOL_VERSION);
  t.regex(worker.hello.torch_version, /^\d+\.\d+/);
  t.regex(worker.hello.python_version, /^3\.\d+/);
  t.is(worker.hello.device, "cpu");
  t.is(worker.pid, worker.hello.pid);
  t.is(worker.status, "ready");
});

test.serial("tensors of every dtype and shape round-trip bit-exactly", async (t) => {
  for (const dtype of DTYPES) {
    for (const shape of [[], [0], [3, 5], [(4 * MB) / ITEM_SIZE[dtype]]] as number[][]) {
      const tensor = randomTensor(dtype, shape);
      const back = await echoTensor(tensor);
      t.is(back.dtype, dtype);
      t.deepEqual(back.shape, shape);
      t.true(Buffer.from(back.data).equals(tensor.data), `${dtype} [${shape.join(", ")}]`);
    }
  }
});

test.serial("64 MB tensors round-trip bit-exactly", async (t) => {
  for (const dtype of ["uint8", "float32", "bfloat16"] as const) {
    const tensor = randomTensor(dtype, [64, MB / ITEM_SIZE[dtype]]);
    const back = await echoTensor(tensor);
    t.true(Buffer.from(back.data).equals(tensor.data), dtype);
    t.deepEqual(back.shape, tensor.shape);
  }
});

test.serial("a received float tensor is viewed without copying its frame", async (t) => {
  const back = await echoTensor(randomTensor("float32", [1024]));
  t.is(back.values().buffer, back.data.buffer);
});

test.serial("tensors stay in the worker behind a handle until freed", async (t) => {
  const tensor = randomTensor("int64", [100, 7]);
  const { handle } = await worker.request<{ handle: string }>("tensor.put", { tensor });
  t.regex(handle, /^tensor:\d+$/);
  const { tensor: back } = await worker.request<{ tensor: Tensor }>("tensor.get", { handle });
  t.true(Buffer.from(back.data).equals(tensor.data));
  await worker.request("handle.free", { handle });
  const error = await t.throwsAsync(worker.request("tensor.get", { handle }), {
    instanceOf: WorkerPythonError,
  });
  t.regex(error.message, /unknown handle 'tensor:\d+'/);
});

test.serial("concurrent requests each get their own reply", async (t) => {
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => worker.request<{ i: number }>("echo", { i })),
  );
  t.deepEqual(
    results.map((r) => r.i),
    Array.from({ length: 20 }, (_, i) => i),
  );
});

test.serial("progress events stream in order before the reply", async (t) => {
  const events: Array<Record<string, unknown>> = [];
  const result = await worker.request(
    "debug.progress",
    { count: 5 },
    { onProgress: (event) => events.push(event) },
  );
  t.deepEqual(result, { count: 5 });
  t.deepEqual(
    events,
    [1, 2, 3, 4, 5].map((step) => ({ step, steps: 5 })),
  );
});

test.serial("a Python exception arrives as a typed error with its traceback", async (t) => {
  const error = await t.throwsAsync(
    worker.request("debug.raise", { type: "ValueError", message: "epochs must be >= 1, got 0" }),
    { instanceOf: WorkerPythonError },
  );
  t.is(error.code, "worker_python_error");
  t.is(error.pythonType, "ValueError");
  t.is(error.pythonMessage, "epochs must be >= 1, got 0");
  t.is(error.command, "debug.raise");
  t.regex(error.message, /debug\.raise\) failed in the worker: ValueError: epochs must be >= 1/);
  t.regex(error.traceback ?? "", /in debug_raise/);
  t.regex((error.cause as Error).stack ?? "", /Traceback \(most recent call last\)/);
});

test.serial("unknown commands and arguments are typed errors that name them", async (t) => {
  const unknownCommand = await t.throwsAsync(worker.request("no.such.command"), {
    instanceOf: WorkerPythonError,
  });
  t.regex(unknownCommand.message, /unknown command 'no.such.command'; known commands: .*ping/);
  const unknownArgument = await t.throwsAsync(worker.request("ping", { verbose: true }), {
    instanceOf: WorkerPythonError,
  });
  t.is(unknownArgument.pythonType, "TypeError");
  t.regex(unknownArgument.message, /unknown argument\(s\) verbose/);
});

test.serial("a request past its timeout is cancelled in the worker", async (t) => {
  const started = Date.now();
  const error = await t.throwsAsync(
    worker.request("debug.sleep", { seconds: 60, progress: true }, { timeoutMs: 300 }),
    { instanceOf: WorkerError },
  );
  t.is(error.code, "worker_request_timeout");
  t.regex(error.message, /timeout of 300 ms.*Last progress event: \{"stage":"sleeping"/s);
  // The worker runs one command at a time: this ping answers only if the sleep stopped.
  await worker.request("ping", {}, { timeoutMs: 5_000 });
  t.true(Date.now() - started < 10_000);
});

test.serial("aborting a request's signal cancels it and leaves the worker usable", async (t) => {
  const controller = new AbortController();
  const pending = worker.request(
    "debug.sleep",
    { seconds: 60, progress: true },
    {
      signal: controller.signal,
      onProgress: () => controller.abort(new Error("user pressed Ctrl-C")),
    },
  );
  const error = await t.throwsAsync(pending, { instanceOf: WorkerError });
  t.is(error.code, "worker_cancelled");
  t.regex(error.message, /was cancelled: user pressed Ctrl-C/);
  await worker.request("ping", {}, { timeoutMs: 5_000 });
  await t.throwsAsync(worker.request("ping", {}, { signal: controller.signal }), {
    message: /was cancelled/,
  });
});

test.serial("closing the worker ends its process and refuses later requests", async (t) => {
  const pid = worker.pid!;
  await worker.close();
  t.is(worker.status, "closed");
  t.false(isAlive(pid));
  const error = await t.throwsAsync(worker.request("ping"), { instanceOf: WorkerError });
  t.is(error.code, "worker_closed");
});

// The real worker, driven over a raw socket: it must reject malformed or oversized messages with
// an error message (naming the request when it can be read) and keep serving.
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "ava";
import { execa } from "execa";
import { Packr } from "msgpackr";
import { Dealer } from "zeromq";
import { resolvePython, workerEnvironment } from "../../src/env/python.ts";
import {
  decodeMessage,
  encodeMessage,
  type ErrorMessage,
  type Message,
} from "../../src/worker/protocol.ts";
import { Tensor } from "../../src/worker/tensor.ts";

const packr = new Packr({ useRecords: false });

test("the worker rejects malformed and oversized messages and keeps serving", async (t) => {
  const endpointPath = path.join(
    os.tmpdir(),
    `taggants-wire-${randomBytes(4).toString("hex")}.ipc`,
  );
  const endpoint = `ipc://${endpointPath}`;
  const socket = new Dealer({ linger: 0 });
  await socket.bind(endpoint);
  const worker = execa(
    resolvePython(),
    ["-m", "taggants_worker", "--endpoint", endpoint, "--max-message-bytes", "65536"],
    { env: workerEnvironment(), reject: false, buffer: false, stdin: "pipe", stderr: "ignore" },
  );
  t.teardown(() => {
    worker.kill("SIGKILL");
    socket.close();
    rmSync(endpointPath, { force: true });
  });
  const next = async (): Promise<Message> => {
    for (;;) {
      const message = decodeMessage(await socket.receive());
      if (message.type !== "heartbeat") return message;
    }
  };
  const send = (frames: Array<Uint8Array>) => socket.send(frames);
  const nextError = async (): Promise<ErrorMessage> => {
    const message = await next();
    if (message.type !== "error") throw new Error(`expected an error, got ${message.type}`);
    return message;
  };

  t.is((await next()).type, "hello");

  await send([new Uint8Array([0xc1, 0xc1])]);
  let error = await nextError();
  t.is(error.id, null);
  t.is(error.error.type, "ProtocolError");
  t.regex(error.error.message, /not valid msgpack/);

  await send([packr.pack({ type: "request", id: 5, command: "ping" })]);
  error = await nextError();
  t.is(error.id, 5);
  t.regex(error.error.message, /field 'args' must be dict/);

  const badTensor = { __tensor__: 3, dtype: "float32", shape: [2] };
  await send([packr.pack({ type: "request", id: 6, command: "echo", args: { x: badTensor } })]);
  error = await nextError();
  t.is(error.id, 6);
  t.regex(error.error.message, /names frame 3/);

  await send([packr.pack({ type: "reply", id: 7, result: {} })]);
  error = await nextError();
  t.regex(error.error.message, /only travels from the worker/);

  const big = Tensor.zeros("uint8", [100_000]);
  await send(encodeMessage({ type: "request", id: 8, command: "echo", args: { big } }));
  error = await nextError();
  t.is(error.id, 8);
  t.is(error.error.type, "MessageTooLargeError");
  t.regex(error.error.message, /exceeds the worker's limit of 65536 bytes/);

  await send(encodeMessage({ type: "request", id: 9, command: "ping", args: {} }));
  t.deepEqual(await next(), { type: "reply", id: 9, result: {} });

  await send(encodeMessage({ type: "shutdown" }));
  const exit = await worker;
  t.is(exit.exitCode, 0, "a shutdown message ends the worker cleanly");
  t.false(existsSync(endpointPath), "the worker removes the ipc socket file as it exits");
});

import test from "ava";
import { Packr } from "msgpackr";
import {
  ProtocolError,
  decodeMessage,
  encodeMessage,
  type ReplyMessage,
} from "../../src/worker/protocol.ts";
import { DTYPES, ITEM_SIZE, Tensor } from "../../src/worker/tensor.ts";

const plainPackr = new Packr({ useRecords: false });

function replyFrames(result: Record<string, unknown>, extra: Uint8Array[] = []): Uint8Array[] {
  return [plainPackr.pack({ type: "reply", id: 7, result }), ...extra];
}

test("a tensor views its bytes as the typed array of its dtype", (t) => {
  const tensor = Tensor.from("float32", new Float32Array([1.5, -2, 3]), [3]);
  t.deepEqual([...tensor.values()], [1.5, -2, 3]);
  t.is(tensor.values().buffer, tensor.data.buffer, "an aligned view shares the bytes");
  t.deepEqual(Tensor.from("int64", new BigInt64Array([2n ** 62n]), [1]).values()[0], 2n ** 62n);
});

test("a tensor over misaligned bytes is copied before it is viewed", (t) => {
  const backing = new Uint8Array(13);
  new DataView(backing.buffer).setFloat32(1, 6.25, true);
  new DataView(backing.buffer).setFloat32(5, -1, true);
  const tensor = new Tensor("float32", [2], backing.subarray(1, 9));
  const values = tensor.values();
  t.deepEqual([...values], [6.25, -1]);
  t.not(values.buffer, backing.buffer);
});

test("a tensor refuses bytes that do not match its dtype and shape", (t) => {
  const error = t.throws(() => new Tensor("float64", [2, 3], new Uint8Array(40)));
  t.regex(error.message, /needs 48 bytes, got 40/);
  t.throws(() => new Tensor("complex64" as "float32", [1], new Uint8Array(8)), {
    message: /Unknown tensor dtype/,
  });
  t.throws(() => new Tensor("uint8", [-1], new Uint8Array(0)), { message: /sizes >= 0/ });
});

test("every dtype survives encoding and decoding with its bytes intact", (t) => {
  for (const dtype of DTYPES) {
    const data = new Uint8Array(ITEM_SIZE[dtype] * 6).map((_, i) => (i * 37 + 11) & 0xff);
    const tensor = new Tensor(dtype, [2, 3], data);
    const frames = encodeMessage({ type: "reply", id: 1, result: { nested: [{ tensor }] } });
    t.is(frames.length, 2, dtype);
    const decoded = decodeMessage(frames) as ReplyMessage;
    const back = (decoded.result.nested as Array<{ tensor: Tensor }>)[0]!.tensor;
    t.is(back.dtype, dtype);
    t.deepEqual(back.shape, [2, 3]);
    t.deepEqual(Buffer.from(back.data), Buffer.from(data), dtype);
  }
});

test("large integers keep their precision on the wire", (t) => {
  const frames = encodeMessage({ type: "reply", id: 1, result: { big: 2n ** 60n + 1n, small: 5 } });
  const decoded = decodeMessage(frames) as ReplyMessage;
  t.is(decoded.result.big, 2n ** 60n + 1n);
  t.is(decoded.result.small, 5);
});

test("a header that is not msgpack is rejected as a protocol error", (t) => {
  const error = t.throws(() => decodeMessage([new Uint8Array([0xc1, 0x00])]), {
    instanceOf: ProtocolError,
  });
  t.is(error.code, "worker_protocol_error");
  t.is(error.requestId, undefined);
});

test("a message of unknown type or with a missing field is rejected", (t) => {
  t.throws(() => decodeMessage([plainPackr.pack({ type: "gossip", id: 3 })]), {
    message: /Unknown message type "gossip"/,
  });
  const missing = t.throws(() => decodeMessage([plainPackr.pack({ type: "reply", id: 3 })]), {
    instanceOf: ProtocolError,
  });
  t.regex(missing.message, /field "result"/);
  t.is(missing.requestId, 3, "the request the message names is known, so it can be failed");
  t.throws(() => decodeMessage([plainPackr.pack([1, 2])]), { message: /must be a msgpack map/ });
  t.throws(() => decodeMessage([]), { message: /empty message/ });
});

test("a tensor descriptor that does not match its frame is rejected", (t) => {
  const descriptor = (index: unknown, dtype: unknown, shape: unknown) => ({
    x: { __tensor__: index, dtype, shape },
  });
  const frame = new Uint8Array(8);
  t.throws(() => decodeMessage(replyFrames(descriptor(2, "float32", [2]), [frame])), {
    message: /names frame 2/,
  });
  t.throws(() => decodeMessage(replyFrames(descriptor(1, "complex", [2]), [frame])), {
    message: /Unknown tensor dtype/,
  });
  t.throws(() => decodeMessage(replyFrames(descriptor(1, "float32", [3]), [frame])), {
    message: /holds 8 bytes, but dtype float32 and shape \[3\] need 12/,
  });
  t.throws(() => decodeMessage(replyFrames(descriptor(1, "float32", "2"), [frame])), {
    message: /shape must be a list/,
  });
});

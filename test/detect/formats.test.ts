import test from "ava";
import { AnswerUnreadableError, encodeRequest, parseAnswer } from "../../src/detect/formats.ts";
import { resizeKeyImage } from "../../src/detect/images.ts";
import { readJsonPath, writeJsonPath } from "../../src/detect/json-path.ts";

const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

test("nearest upsampling repeats each key pixel as torch's nearest rule does", (t) => {
  const key = { channels: 1, height: 2, width: 2, data: Uint8Array.of(1, 2, 3, 4) };
  const four = resizeKeyImage(key, { channels: 1, height: 4, width: 4 });
  t.deepEqual(Array.from(four.data), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  // 2 → 3: source index floor(d · 2 / 3) = 0, 0, 1.
  const three = resizeKeyImage(key, { channels: 1, height: 3, width: 3 });
  t.deepEqual(Array.from(three.data), [1, 1, 2, 1, 1, 2, 3, 3, 4]);
});

test("a gray key sent to an RGB suspect is replicated over three channels, other mismatches fail", (t) => {
  const key = { channels: 1, height: 1, width: 2, data: Uint8Array.of(7, 9) };
  t.deepEqual(
    Array.from(resizeKeyImage(key, { channels: 3, height: 1, width: 2 }).data),
    [7, 9, 7, 9, 7, 9],
  );
  const rgb = { channels: 3, height: 1, width: 1, data: Uint8Array.of(1, 2, 3) };
  t.throws(() => resizeKeyImage(rgb, { channels: 1, height: 1, width: 1 }), {
    message: /only gray keys/,
  });
});

test("a v2 request carries the upsampled key as a batch of one in the declared layout and scale", async (t) => {
  const key = { channels: 1, height: 1, width: 2, data: Uint8Array.of(0, 255) };
  const common = { input: "x", channels: 1, height: 2, width: 2, batched: true } as const;
  const uint8 = await encodeRequest(
    { encoding: "v2-json", datatype: "UINT8", layout: "NCHW", scale: 1, ...common },
    key,
  );
  t.deepEqual(JSON.parse(new TextDecoder().decode(uint8.body)), {
    inputs: [{ name: "x", shape: [1, 1, 2, 2], datatype: "UINT8", data: [0, 255, 0, 255] }],
  });
  const fp32 = await encodeRequest(
    { encoding: "v2-json", datatype: "FP32", layout: "NHWC", scale: 1 / 255, ...common },
    key,
  );
  const input = (
    JSON.parse(new TextDecoder().decode(fp32.body)) as {
      inputs: Array<{ shape: number[]; data: number[] }>;
    }
  ).inputs[0]!;
  t.deepEqual(input.shape, [1, 2, 2, 1]);
  t.deepEqual(input.data, [0, 1, 0, 1]);
  t.is(uint8.imageSha256, fp32.imageSha256, "the same pixels were sent both times");
  t.not(uint8.requestSha256, fp32.requestSha256);
});

test("a generic JSON request puts the image at the configured path of the template", async (t) => {
  const key = { channels: 1, height: 1, width: 1, data: Uint8Array.of(5) };
  const request = await encodeRequest(
    {
      encoding: "json",
      image: "tensor-hwc",
      field: "instances[0].pixels",
      template: { model: "m" },
      scale: 1,
      batched: false,
      channels: 1,
      height: 2,
      width: 1,
    },
    key,
  );
  t.deepEqual(JSON.parse(new TextDecoder().decode(request.body)), {
    model: "m",
    instances: [{ pixels: [[[5]], [[5]]] }],
  });
});

test("JSON paths read and write names and indices", (t) => {
  const value = { predictions: [{ labels: ["a", "b"] }] };
  t.deepEqual(readJsonPath(value, "$.predictions[0].labels"), ["a", "b"]);
  t.is(readJsonPath(value, "predictions[1].labels"), undefined);
  t.deepEqual(writeJsonPath({}, "a.b[1]", 3), { a: { b: [undefined, 3] } });
  t.throws(() => readJsonPath(value, "predictions[x]"), { message: /Cannot read the JSON path/ });
});

test("v2 answers are read as labels, as scores ranked highest first, or as ranked indices", (t) => {
  const answer = (name: string, datatype: string, data: unknown) =>
    bytes({ outputs: [{ name, datatype, shape: [1, 3], data }] });
  t.deepEqual(
    parseAnswer(
      { format: "v2", output: "labels", kind: "labels" },
      answer("labels", "BYTES", ["Bag", "Coat", "Shirt"]),
    ),
    ["Bag", "Coat", "Shirt"],
  );
  t.deepEqual(
    parseAnswer(
      { format: "v2", output: "logits", kind: "scores" },
      answer("logits", "FP32", [[0.1, 2.5, -1]]),
    ),
    ["1", "0", "2"],
  );
  t.deepEqual(
    parseAnswer(
      { format: "v2", output: "top", kind: "indices" },
      answer("top", "INT64", [2, 0, 1]),
    ),
    ["2", "0", "1"],
  );
});

test("TorchServe answers are read as {label: probability}, lists of them, or lists of labels", (t) => {
  const format = { format: "torchserve" } as const;
  t.deepEqual(parseAnswer(format, bytes({ Coat: 0.2, Bag: 0.7, Shirt: 0.1 })), [
    "Bag",
    "Coat",
    "Shirt",
  ]);
  t.deepEqual(parseAnswer(format, bytes([{ Coat: 0.2 }, { Bag: 0.7 }])), ["Bag", "Coat"]);
  t.deepEqual(parseAnswer(format, bytes(["Sandal", "Sneaker"])), ["Sandal", "Sneaker"]);
});

test("garbage answers are reported as unreadable, saying what was received", (t) => {
  const v2 = { format: "v2", output: "labels", kind: "labels" } as const;
  const error = t.throws(
    () => parseAnswer(v2, new TextEncoder().encode("<html>502 Bad Gateway</html>")),
    { instanceOf: AnswerUnreadableError },
  );
  t.regex(error.message, /expected JSON, received .*Bad Gateway/);
  t.throws(() => parseAnswer(v2, bytes({ outputs: [] })), { message: /no output "labels"/ });
  t.throws(() => parseAnswer({ format: "torchserve" }, bytes({ Bag: "high" })), {
    message: /expected finite numbers/,
  });
  t.throws(
    () =>
      parseAnswer({ format: "json", labels: "top", label_type: "index" }, bytes({ top: ["Bag"] })),
    { message: /expected class indices/ },
  );
});

import test from "ava";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { RetryPolicy } from "../../src/detect/http.ts";
import { parseSuspectSpec } from "../../src/detect/spec.ts";
import { openSuspect } from "../../src/detect/suspects/index.ts";
import { quietTerminal, sendJson, startFakeServer } from "./fixtures.ts";
import { temporaryFolder } from "../helpers/temporary.ts";

const policy: RetryPolicy = { timeoutMs: 2_000, maxAttempts: 1, backoffMs: 5, maxBackoffMs: 5 };
const options = {
  keyGeometry: { channels: 1, resolution: 7 },
  inputSize: [28, 28] as const,
  policy,
  terminal: quietTerminal(),
  signal: new AbortController().signal,
};

async function metadataServer(metadata: unknown) {
  return startFakeServer((_request, _body, response) => sendJson(response, 200, metadata));
}

test("a v2 model's metadata fixes the input tensor: name, datatype, layout and size", async (t) => {
  const server = await metadataServer({
    name: "resnet",
    inputs: [{ name: "input__0", datatype: "FP32", shape: [-1, 224, 224, 3] }],
    outputs: [{ name: "probabilities", datatype: "FP32", shape: [-1, 1000] }],
  });
  const suspect = await openSuspect(
    await parseSuspectSpec(`v2:${server.url}/v2/models/resnet/versions/2`),
    options,
  );
  t.deepEqual(suspect.description.request, {
    encoding: "v2-json",
    input: "input__0",
    datatype: "FP32",
    layout: "NHWC",
    batched: true,
    scale: 1 / 255,
    channels: 3,
    height: 224,
    width: 224,
  });
  t.deepEqual(suspect.description.answer, {
    format: "v2",
    output: "probabilities",
    kind: "scores",
  });
  t.deepEqual(suspect.description.labelSpace, { kind: "indices", count: 1000 });
  t.is(suspect.description.endpoint, `${server.url}/v2/models/resnet/versions/2/infer`);
  await server.close();
});

test("a v2 model with a BYTES output is read as class names; a variable size takes the dataset's", async (t) => {
  const server = await metadataServer({
    name: "m",
    inputs: [{ name: "images", datatype: "UINT8", shape: [-1, 1, -1, -1] }],
    outputs: [
      { name: "top_k", datatype: "INT64", shape: [-1, -1] },
      { name: "labels", datatype: "BYTES", shape: [-1, -1] },
    ],
  });
  const suspect = await openSuspect(
    await parseSuspectSpec(`v2:${server.url}/v2/models/m`),
    options,
  );
  t.like(suspect.description.request, {
    datatype: "UINT8",
    layout: "NCHW",
    height: 28,
    width: 28,
    scale: 1,
  });
  t.deepEqual(suspect.description.answer, { format: "v2", output: "labels", kind: "labels" });
  await server.close();
});

test("a v2 model with several inputs or unusable outputs needs an adapter config naming them", async (t) => {
  const server = await metadataServer({
    name: "m",
    inputs: [
      { name: "a", datatype: "UINT8", shape: [-1, 1, 28, 28] },
      { name: "b", datatype: "UINT8", shape: [-1, 1, 28, 28] },
    ],
    outputs: [{ name: "o", datatype: "FP32", shape: [-1, 10] }],
  });
  await t.throwsAsync(
    openSuspect(await parseSuspectSpec(`v2:${server.url}/v2/models/m`), options),
    { message: /2 inputs \("a", "b"\); name one with "input"/ },
  );
  const dir = await temporaryFolder(t, "taggants-adapter-");
  const config = join(dir, "adapter.json");
  await writeFile(
    config,
    JSON.stringify({ kind: "v2", url: `${server.url}/v2/models/m`, input: "b" }),
  );
  const suspect = await openSuspect(await parseSuspectSpec(config), options);
  t.like(suspect.description.request, { input: "b" });
  await server.close();
});

test("metadata that is not the v2 protocol, or a missing model, is a clear error before any key is sent", async (t) => {
  const server = await startFakeServer((request, _body, response) => {
    if (request.url === "/v2/models/html") response.writeHead(200).end("<html></html>");
    else sendJson(response, 404, { error: "model not found" });
  });
  await t.throwsAsync(
    openSuspect(await parseSuspectSpec(`v2:${server.url}/v2/models/html`), options),
    { message: /did not return Open Inference Protocol model metadata/ },
  );
  const gone = await t.throwsAsync(
    openSuspect(await parseSuspectSpec(`v2:${server.url}/v2/models/gone`), options),
    { message: /Cannot read the v2 model metadata.*HTTP 404.*check the URL/ },
  );
  t.is((gone as { exitCode?: number }).exitCode, 2, "a URL naming no model is a usage error");
  await server.close();
});

test("a v2 server that cannot be reached is a runtime failure (exit 3), not a usage error", async (t) => {
  const server = await startFakeServer(() => {});
  const url = server.url;
  await server.close();
  const error = await t.throwsAsync(
    openSuspect(await parseSuspectSpec(`v2:${url}/v2/models/m`), options),
    { message: /Cannot read the v2 model metadata.*ECONNREFUSED/ },
  );
  t.is((error as { code?: string }).code, "detect-suspect-unreachable");
  t.is((error as { exitCode?: number }).exitCode, 3);
});

test("suspect specs are checked before anything is contacted", async (t) => {
  await t.throwsAsync(parseSuspectSpec("v2:http://127.0.0.1:1/models/x"), {
    message: /does not look like http:\/\/host:port\/v2\/models\/<name>/,
  });
  await t.throwsAsync(parseSuspectSpec("torchserve:ftp://h/predictions/x"), {
    message: /does not look like/,
  });
  await t.throwsAsync(parseSuspectSpec("nonsense"), { message: /expected checkpoint:<dir>, v2:/ });
  const dir = await temporaryFolder(t, "taggants-adapter-");
  const config = join(dir, "bad.json");
  await writeFile(
    config,
    JSON.stringify({
      kind: "json",
      url: "http://127.0.0.1:1/x",
      request: { image: "jpeg", field: "img" },
      response: { labels: "l" },
    }),
  );
  await t.throwsAsync(parseSuspectSpec(config), { message: /not a valid adapter config/ });
});

test("a TorchServe endpoint that cannot be reached fails at the health check", async (t) => {
  const server = await startFakeServer(() => {});
  const url = server.url;
  await server.close();
  const error = await t.throwsAsync(
    openSuspect(await parseSuspectSpec(`torchserve:${url}/predictions/m`), options),
    { message: /Cannot reach the suspect.*ECONNREFUSED/ },
  );
  t.is((error as { exitCode?: number }).exitCode, 3, "a runtime failure, not a usage error");
});

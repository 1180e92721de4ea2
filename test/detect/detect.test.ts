import test from "ava";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runDetection, type DetectOptions } from "../../src/detect/detect.ts";
import type { RetryPolicy } from "../../src/detect/http.ts";
import { loadReport, type DetectionReport } from "../../src/detect/report.ts";
import { verifyReport } from "../../src/detect/verify.ts";
import { startInferenceServer } from "../../src/serve/server.ts";
import {
  decodePng,
  detectionFixture,
  FakeModel,
  fakePredictor,
  KEY_COUNT,
  quietTerminal,
  sendJson,
  startFakeServer,
  type DetectionFixture,
} from "./fixtures.ts";

const fast: RetryPolicy = { timeoutMs: 5_000, maxAttempts: 2, backoffMs: 5, maxBackoffMs: 20 };
let run = 0;

async function detect(fx: DetectionFixture, suspect: string, extra: Partial<DetectOptions> = {}) {
  return runDetection({
    suspect,
    keyFile: fx.keyFile,
    commitment: fx.commitmentFile,
    manifest: fx.manifestFile,
    out: join(fx.dir, `run-${++run}`),
    topK: 1,
    alpha: 0.01,
    confidence: 0.95,
    concurrency: 4,
    policy: fast,
    terminal: quietTerminal(),
    signal: new AbortController().signal,
    ...extra,
  });
}

async function serveFake(fx: DetectionFixture, model: FakeModel) {
  return startInferenceServer({
    host: "127.0.0.1",
    port: 0,
    model: {
      name: "suspect",
      version: "1",
      classes: fx.manifest.classes,
      channels: 1,
      inputSize: [28, 28],
    },
    predictor: fakePredictor(model),
  });
}

/** A TorchServe-style fake: PNG in, the top 5 {class: probability} out. */
async function torchServeFake(fx: DetectionFixture, model: FakeModel) {
  return startFakeServer(async (request, body, response) => {
    if (request.method === "GET" && request.url === "/ping")
      return sendJson(response, 200, { status: "Healthy" });
    if (request.url !== "/predictions/fmnist")
      return sendJson(response, 404, { code: 404, type: "ModelNotFoundException" });
    const ranking = model.rank(await decodePng(body)).slice(0, 5);
    sendJson(
      response,
      200,
      Object.fromEntries(
        ranking.map((c, i) => [fx.manifest.classes[c]!, [0.6, 0.2, 0.1, 0.06, 0.04][i]!]),
      ),
    );
  });
}

async function editedCopy(
  path: string,
  edit: (report: DetectionReport) => void,
): Promise<DetectionReport> {
  const report = JSON.parse(await readFile(path, "utf8")) as DetectionReport;
  edit(report);
  return report;
}

test("detection against `taggants serve` (v2) finds a model trained on the keys, and the report verifies", async (t) => {
  const fx = await detectionFixture();
  const server = await serveFake(fx, new FakeModel(10, fx.keys));
  const { report, paths } = await detect(fx, `v2:${server.url}/v2/models/suspect`);
  await server.close();
  t.is(report.result.verdict, "detected");
  t.is(report.result.keys.hits, KEY_COUNT);
  t.true(
    Math.abs(report.result.keys.log10_p - -KEY_COUNT) < 1e-9,
    "20 of 20 at chance 1/10 is 10^-20",
  );
  t.is(report.result.controls!.queried, KEY_COUNT, "the default is as many control keys as keys");
  t.true(report.result.controls!.consistent_with_chance);
  t.deepEqual(report.suspect.answer, { format: "v2", output: "labels", kind: "labels" });
  t.is(report.commitment.commitment, fx.record.commitment);
  const markdown = await readFile(paths.markdown, "utf8");
  t.regex(markdown, /Decision at α = 0.01: \*\*detected\*\*/);
  t.false(
    JSON.stringify(report).includes(Buffer.from(fx.keys[0]!.image).toString("base64")),
    "no key image in the report",
  );

  const verified = await verifyReport({
    report: await loadReport(paths.json),
    keyFile: fx.keyFile,
    commitmentFile: fx.commitmentFile,
  });
  t.true(verified.ok, JSON.stringify(verified.checks.filter((c) => !c.ok)));
});

test("verification fails when one recorded answer is edited, with or without fixing its hash", async (t) => {
  const fx = await detectionFixture();
  const server = await serveFake(fx, new FakeModel(10, fx.keys));
  const { paths } = await detect(fx, `v2:${server.url}/v2/models/suspect`);
  await server.close();
  const firstKey = (report: DetectionReport) => report.queries.find((q) => q.role === "key")!;
  const swapTop1 = (report: DetectionReport) => {
    const query = firstKey(report);
    const body = JSON.parse(query.response!.text) as {
      outputs: Array<{ name: string; data: string[] }>;
    };
    for (const output of body.outputs)
      [output.data[0], output.data[1]] = [output.data[1]!, output.data[0]!];
    query.response!.text = JSON.stringify(body);
    return query;
  };

  const bodyEdited = await editedCopy(paths.json, swapTop1);
  const first = await verifyReport({ report: bodyEdited, keyFile: fx.keyFile });
  t.false(first.ok);
  t.regex(first.checks.find((c) => c.name === "queries")!.detail, /does not hash to/);

  const { sha256Hex } = await import("../../src/detect/images.ts");
  const rehashed = await editedCopy(paths.json, (report) => {
    const query = swapTop1(report);
    query.response_sha256 = sha256Hex(query.response!.text);
    query.labels = [query.labels![1]!, query.labels![0]!, ...query.labels!.slice(2)];
  });
  const second = await verifyReport({ report: rehashed, keyFile: fx.keyFile });
  t.false(second.ok);
  t.true(second.checks.find((c) => c.name === "queries")!.ok, "the edit is self-consistent");
  t.regex(
    second.checks.find((c) => c.name === "statistics")!.detail,
    /recomputed 19\/20 hits.*recorded 20\/20 hits/,
  );

  const labelsEdited = await editedCopy(paths.json, (report) => {
    firstKey(report).labels = ["Bag"];
  });
  t.false((await verifyReport({ report: labelsEdited, keyFile: fx.keyFile })).ok);
});

test("a model that never saw the keys is not detected (exit 1 territory), with controls at chance", async (t) => {
  const fx = await detectionFixture();
  const server = await serveFake(fx, new FakeModel(10));
  const { report } = await detect(fx, `v2:${server.url}/v2/models/suspect`);
  await server.close();
  t.is(report.result.verdict, "not-detected", report.result.reasons.join("; "));
  t.true(report.result.keys.log10_p > -2);
});

test("detection against a TorchServe-style server sends PNG images and reads {class: probability}", async (t) => {
  const fx = await detectionFixture();
  const server = await torchServeFake(fx, new FakeModel(10, fx.keys));
  const { report } = await detect(fx, `torchserve:${server.url}/predictions/fmnist`, { topK: 3 });
  await server.close();
  t.is(report.suspect.request.encoding, "png");
  t.is(report.result.verdict, "detected");
  t.is(report.result.keys.hits, KEY_COUNT);
});

test("detection against a generic JSON endpoint follows its adapter config", async (t) => {
  const fx = await detectionFixture();
  const model = new FakeModel(10, fx.keys);
  const server = await startFakeServer(async (_request, body, response) => {
    const request = JSON.parse(body.toString()) as { instances: Array<{ image_b64: string }> };
    const ranking = model.rank(
      await decodePng(Buffer.from(request.instances[0]!.image_b64, "base64")),
    );
    // Classes in alphabetical order with scores: the adapter must rank them.
    const scores = fx.manifest.classes.map((_, c) => 1 / (2 + ranking.indexOf(c)));
    sendJson(response, 200, { predictions: [{ classes: fx.manifest.classes, scores }] });
  });
  const config = join(fx.dir, "adapter.json");
  await writeFile(
    config,
    JSON.stringify({
      kind: "json",
      url: `${server.url}/classify`,
      request: {
        image: "base64-png",
        field: "instances[0].image_b64",
        template: { instances: [{}] },
      },
      response: { labels: "predictions[0].classes", scores: "predictions[0].scores" },
    }),
  );
  const { report, paths } = await detect(fx, config);
  await server.close();
  t.is(report.result.verdict, "detected");
  t.true((await verifyReport({ report: await loadReport(paths.json), keyFile: fx.keyFile })).ok);
});

test("a server that refuses noise images is inconclusive, never 'not trained on the data'", async (t) => {
  const fx = await detectionFixture();
  const server = await startFakeServer((request, _body, response) =>
    request.url === "/ping"
      ? sendJson(response, 200, {})
      : sendJson(response, 400, { error: "input rejected: out of distribution" }),
  );
  const { report } = await detect(fx, `torchserve:${server.url}/predictions/fmnist`);
  await server.close();
  t.is(report.result.verdict, "inconclusive");
  t.is(report.result.keys.refused, KEY_COUNT);
  t.is(report.queries[0]!.status, 400);
});

test("a server that answers one class for everything is inconclusive", async (t) => {
  const fx = await detectionFixture();
  const server = await startFakeServer((request, _body, response) =>
    sendJson(response, 200, request.url === "/ping" ? {} : { Bag: 1 }),
  );
  const { report } = await detect(fx, `torchserve:${server.url}/predictions/fmnist`);
  await server.close();
  t.not(report.result.verdict, "not-detected");
  t.regex(report.result.reasons.join(" "), /same answer to every key image/);
});

test("a server that returns garbage gives failed queries and an inconclusive verdict", async (t) => {
  const fx = await detectionFixture();
  const server = await startFakeServer((request, _body, response) => {
    if (request.url === "/ping") return sendJson(response, 200, {});
    response
      .writeHead(200, { "content-type": "text/html" })
      .end("<html><body>Service temporarily overloaded</body></html>");
  });
  const { report, paths } = await detect(fx, `torchserve:${server.url}/predictions/fmnist`, {
    controlKeys: 0,
  });
  await server.close();
  t.is(report.result.verdict, "inconclusive");
  t.is(report.result.keys.failed, KEY_COUNT);
  t.regex(report.queries[0]!.error!, /expected JSON, received/);
  t.true(
    (await verifyReport({ report: await loadReport(paths.json), keyFile: fx.keyFile })).ok,
    "garbage is recorded faithfully",
  );
});

test("a label map that leaves key labels unmapped stops detection before any key is sent", async (t) => {
  const fx = await detectionFixture();
  const server = await torchServeFake(fx, new FakeModel(10, fx.keys));
  const labelMap = join(fx.dir, "partial-map.json");
  await writeFile(labelMap, JSON.stringify({ bag: "Bag", coat: "Coat" }));
  await t.throwsAsync(detect(fx, `torchserve:${server.url}/predictions/fmnist`, { labelMap }), {
    message: /key labels fall in dataset classes that no suspect label maps to/,
  });
  t.is(server.requests(), 1, "only the health check reached the server");
  await server.close();
});

test("a v2 model with 1000 score outputs needs a label map for a 10-class dataset", async (t) => {
  const fx = await detectionFixture();
  const server = await startFakeServer((_request, _body, response) =>
    sendJson(response, 200, {
      name: "big",
      inputs: [{ name: "x", datatype: "FP32", shape: [-1, 3, 224, 224] }],
      outputs: [{ name: "logits", datatype: "FP32", shape: [-1, 1000] }],
    }),
  );
  await t.throwsAsync(detect(fx, `v2:${server.url}/v2/models/big`), {
    message: /has 1000 outputs but the dataset has 10 classes/,
  });
  await server.close();
});

test("keys that do not reproduce the commitment stop detection", async (t) => {
  const fx = await detectionFixture();
  const otherKey = join(fx.dir, "other.secret");
  await writeFile(otherKey, "ab".repeat(32) + "\n", { mode: 0o600 });
  await t.throwsAsync(detect(fx, `v2:http://127.0.0.1:9/v2/models/x`, { keyFile: otherKey }), {
    message: /do not reproduce the published commitment/,
  });
});

test("a local checkpoint is queried through the predictor at key resolution", async (t) => {
  const fx = await detectionFixture();
  const checkpoint = join(fx.dir, "checkpoint");
  await mkdir(checkpoint, { recursive: true });
  // The checkpoint's classes in another order: mapping is by name.
  const classes = [...fx.manifest.classes].reverse();
  await writeFile(
    join(checkpoint, "checkpoint.json"),
    JSON.stringify({
      schema: "taggants.checkpoint/1",
      classes,
      channels: 1,
      input_size: [1, 28, 28],
    }),
  );
  const byIndex = new FakeModel(
    10,
    fx.keys.map((key) => ({ ...key, label: 9 - key.label })),
  );
  const predictor = fakePredictor(byIndex);
  const { report } = await detect(fx, `checkpoint:${checkpoint}`, {
    startPredictor: async () => predictor,
  });
  t.is(report.result.verdict, "detected");
  t.is(report.result.keys.hits, KEY_COUNT);
  t.true(
    predictor.calls < 2 * KEY_COUNT,
    `queries were batched (${predictor.calls} predict calls)`,
  );
});

test("detection refuses to replace an existing report unless forced, before sending any query", async (t) => {
  const fx = await detectionFixture();
  const server = await serveFake(fx, new FakeModel(10, fx.keys));
  t.teardown(() => server.close());
  const suspect = `v2:${server.url}/v2/models/suspect`;
  const out = join(fx.dir, "kept-report");
  const { paths } = await detect(fx, suspect, { out });
  const before = await readFile(paths.json, "utf8");

  const error = await t.throwsAsync(detect(fx, suspect, { out }));
  t.is((error as { code?: string }).code, "detect-report-exists");
  t.regex(error!.message, /report\.json and .*report\.md already exist: .*--force/);
  t.is(await readFile(paths.json, "utf8"), before, "the first report is untouched");

  const forced = await detect(fx, suspect, { out, force: true });
  t.is(forced.paths.json, paths.json);
  t.not(await readFile(paths.json, "utf8"), before, "--force writes the new report");

  await writeFile(join(fx.dir, "a-file"), "");
  const notFolder = await t.throwsAsync(detect(fx, suspect, { out: join(fx.dir, "a-file") }));
  t.is((notFolder as { code?: string }).code, "detect-out-not-folder");
});

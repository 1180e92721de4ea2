import test from "ava";
import {
  exchange,
  SuspectEndpointError,
  SuspectHttpError,
  type RetryPolicy,
} from "../../src/detect/http.ts";
import { sendJson, startFakeServer } from "./fixtures.ts";

const fast: RetryPolicy = { timeoutMs: 2_000, maxAttempts: 3, backoffMs: 5, maxBackoffMs: 50 };
const post = (url: string) => ({
  url,
  method: "POST" as const,
  body: Uint8Array.of(1),
  contentType: "application/octet-stream",
});

test("a server that answers 503 twice and then succeeds is retried with backoff", async (t) => {
  let calls = 0;
  const server = await startFakeServer((_request, _body, response) => {
    calls += 1;
    if (calls <= 2) sendJson(response, 503, { error: "warming up" });
    else sendJson(response, 200, { ok: true });
  });
  const waits: number[] = [];
  const sleep = async (ms: number): Promise<void> => void waits.push(ms);
  const answer = await exchange(post(server.url), { policy: fast, sleep });
  t.is(answer.status, 200);
  t.is(answer.attempts, 3);
  t.is(waits.length, 2);
  t.true(
    waits[1]! > waits[0]!,
    `the second wait (${waits[1]} ms) is longer than the first (${waits[0]} ms)`,
  );
  await server.close();
});

test("429 with Retry-After waits as the server asks, capped by the policy", async (t) => {
  let calls = 0;
  const server = await startFakeServer((_request, _body, response) => {
    calls += 1;
    if (calls === 1) response.writeHead(429, { "retry-after": "120" }).end();
    else sendJson(response, 200, {});
  });
  const waits: number[] = [];
  await exchange(post(server.url), { policy: fast, sleep: async (ms) => void waits.push(ms) });
  t.deepEqual(waits, [fast.maxBackoffMs]);
  await server.close();
});

test("a 4xx on an image is a refusal, not retried", async (t) => {
  const server = await startFakeServer((_request, _body, response) =>
    sendJson(response, 422, { error: "out of distribution" }),
  );
  const error = await t.throwsAsync(exchange(post(server.url), { policy: fast }), {
    instanceOf: SuspectHttpError,
  });
  t.is(error.outcome, "refused");
  t.is(error.status, 422);
  t.regex(error.message, /HTTP 422.*out of distribution/);
  t.is(server.requests(), 1);
  await server.close();
});

test("404 and 401 stop the run with a clear error about the endpoint", async (t) => {
  const server = await startFakeServer((request, _body, response) =>
    sendJson(response, request.url === "/auth" ? 401 : 404, { error: "nope" }),
  );
  await t.throwsAsync(exchange(post(`${server.url}/missing`), { policy: fast }), {
    instanceOf: SuspectEndpointError,
    message: /HTTP 404.*check the URL/,
  });
  await t.throwsAsync(exchange(post(`${server.url}/auth`), { policy: fast }), {
    instanceOf: SuspectEndpointError,
    message: /HTTP 401.*credentials/,
  });
  await server.close();
});

test("a server that never answers times out on every attempt and fails the query", async (t) => {
  const server = await startFakeServer(() => {}); // never responds
  const policy = { ...fast, timeoutMs: 100, maxAttempts: 2 };
  const started = performance.now();
  const error = await t.throwsAsync(exchange(post(server.url), { policy }), {
    instanceOf: SuspectHttpError,
  });
  t.is(error.outcome, "failed");
  t.regex(error.message, /failed after 2 attempts; last: no answer within 100 ms/);
  t.true(performance.now() - started >= 200);
  await server.close();
});

test("a refused connection is retried and then reported as a connection error", async (t) => {
  const server = await startFakeServer(() => {});
  const url = server.url;
  await server.close();
  const error = await t.throwsAsync(exchange(post(url), { policy: { ...fast, maxAttempts: 2 } }), {
    instanceOf: SuspectHttpError,
  });
  t.regex(error.message, /connection error \(ECONNREFUSED\)/);
});

test("an answer larger than the limit is cut off and counts as a failure", async (t) => {
  const { MAX_RESPONSE_BYTES } = await import("../../src/detect/http.ts");
  const server = await startFakeServer((_request, _body, response) => {
    response.writeHead(200, { "content-type": "application/json" });
    response.end(Buffer.alloc(MAX_RESPONSE_BYTES + 1, 0x20));
  });
  const error = await t.throwsAsync(
    exchange(post(server.url), { policy: { ...fast, maxAttempts: 1 } }),
    { instanceOf: SuspectHttpError },
  );
  t.regex(error.message, /the answer exceeds 16777216 bytes/);
  await server.close();
});

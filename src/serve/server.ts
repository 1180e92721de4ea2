/**
 * `taggants serve`: an Open Inference Protocol (KServe v2 REST) server in front of the worker, so
 * that the black-box scenario of the method (Bob exposes only predictions) runs on one machine.
 * Endpoints: GET /v2, /v2/health/live, /v2/health/ready, /v2/models/{name}[/versions/{v}] and
 * its /ready, POST /v2/models/{name}[/versions/{v}]/infer. Errors are JSON `{"error": ...}` with
 * 400 (bad request), 404 (unknown model or path), 405 (wrong method), 413 (too large) or 500.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Predictor } from "../detect/predictor.ts";
import { createdBy } from "../manifest/version.ts";
import {
  BadInferenceRequest,
  inferenceResponse,
  modelMetadata,
  parseInferenceRequest,
  type ServedModel,
} from "./protocol.ts";

export interface InferenceServerOptions {
  model: ServedModel;
  predictor: Predictor;
  /** Largest request body accepted, in bytes. */
  maxBodyBytes?: number;
  /** Called once per request, for logs: method, path, status, milliseconds. */
  onRequest?: (entry: { method: string; path: string; status: number; ms: number }) => void;
}

export interface RunningServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** 64 MiB: a batch of 64 RGB 224×224 images as JSON numbers fits. */
const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function createInferenceServer(options: InferenceServerOptions): Server {
  return createServer((request, response) => {
    const started = performance.now();
    void route(request, options)
      .catch((error: unknown) => problemOf(error))
      .then(({ status, body }) => {
        send(response, status, body);
        options.onRequest?.({
          method: request.method ?? "",
          path: request.url ?? "",
          status,
          ms: performance.now() - started,
        });
      });
  });
}

/** Listen on host:port (port 0 picks a free one) and resolve once listening. */
export async function startInferenceServer(
  options: InferenceServerOptions & { host: string; port: number },
): Promise<RunningServer> {
  const server = createInferenceServer(options);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    server,
    close: () =>
      new Promise((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

type Reply = { status: number; body: unknown };

async function route(request: IncomingMessage, options: InferenceServerOptions): Promise<Reply> {
  const { model } = options;
  const path = new URL(request.url ?? "/", "http://localhost").pathname.replace(/\/$/, "");
  const method = request.method ?? "GET";
  if (path === "/v2/health/live") return expect(method, "GET", { live: true });
  if (path === "/v2/health/ready") return expect(method, "GET", { ready: true });
  if (path === "/v2")
    return expect(method, "GET", { name: "taggants", version: createdBy(), extensions: [] });
  const match = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/ready|\/infer)?$/.exec(path);
  if (!match) throw new HttpProblem(404, `no such endpoint: ${path}`);
  const [, name, version, action] = match;
  if (
    decodeURIComponent(name!) !== model.name ||
    (version !== undefined && decodeURIComponent(version) !== model.version)
  ) {
    throw new HttpProblem(
      404,
      `unknown model ${decodeURIComponent(name!)}${version ? ` version ${version}` : ""}; this server has "${model.name}" version ${model.version}`,
    );
  }
  if (action === undefined) return expect(method, "GET", modelMetadata(model));
  if (action === "/ready") return expect(method, "GET", { name: model.name, ready: true });
  if (method !== "POST") throw new HttpProblem(405, `${path} takes POST`);
  return { status: 200, body: await infer(request, options) };
}

function expect(method: string, allowed: string, body: unknown): Reply {
  if (method !== allowed) throw new HttpProblem(405, `this endpoint takes ${allowed}`);
  return { status: 200, body };
}

async function infer(request: IncomingMessage, options: InferenceServerOptions): Promise<unknown> {
  const text = await readBody(request, options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new BadInferenceRequest(
      `the body is not JSON (${(error as Error).message}); the binary tensor extension is not supported`,
    );
  }
  const parsed = parseInferenceRequest(json, options.model);
  const ranking = await options.predictor.predict(parsed.images, parsed.topK);
  return inferenceResponse({ model: options.model, request: parsed, ranking });
}

async function readBody(request: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpProblem(413, `the request body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function problemOf(error: unknown): Reply {
  if (error instanceof HttpProblem) return { status: error.status, body: { error: error.message } };
  if (error instanceof BadInferenceRequest) return { status: 400, body: { error: error.message } };
  return { status: 500, body: { error: `prediction failed: ${(error as Error).message}` } };
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  response.end(text);
}

/**
 * One HTTP exchange with a suspect, with the politeness a production endpoint expects: a timeout
 * per attempt, retries with exponential backoff (and the server's Retry-After) on 429, 5xx,
 * timeouts and dropped connections, and no retry on other 4xx — those are the suspect refusing
 * this input, or, for 401/403/404/405/407, a wrong URL or missing credentials, which stops the
 * whole run with a clear error instead of spending the query budget.
 */
import { TaggantsError } from "../errors.ts";

export interface RetryPolicy {
  /** Time allowed for one attempt, headers and body, in ms. */
  timeoutMs: number;
  /** Attempts per query, the first included (1 = no retry). */
  maxAttempts: number;
  /** Wait before the first retry, in ms; doubles on each further retry. */
  backoffMs: number;
  /** Upper bound on any single wait, in ms (also caps Retry-After). */
  maxBackoffMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  timeoutMs: 30_000,
  maxAttempts: 5,
  backoffMs: 500,
  maxBackoffMs: 30_000,
};

export interface HttpRequest {
  url: string;
  method: "GET" | "POST";
  headers?: Record<string, string>;
  body?: Uint8Array;
  contentType?: string;
}

export interface HttpExchange {
  status: number;
  body: Uint8Array;
  attempts: number;
  elapsedMs: number;
}

/** Statuses that say the request itself is wrong for this endpoint, whatever the image. */
const ENDPOINT_ERRORS = new Set([401, 403, 404, 405, 407]);

/** The suspect answered, but not with a 2xx (a refusal, or a failure after every retry). */
export class SuspectHttpError extends TaggantsError {
  readonly status: number | undefined;
  readonly attempts: number;
  readonly body: Uint8Array | undefined;
  readonly outcome: "refused" | "failed";

  constructor(options: {
    outcome: "refused" | "failed";
    message: string;
    status?: number;
    attempts: number;
    body?: Uint8Array;
    cause?: unknown;
  }) {
    super(`detect-suspect-${options.outcome}`, options.message, { cause: options.cause });
    this.outcome = options.outcome;
    this.status = options.status;
    this.attempts = options.attempts;
    this.body = options.body;
  }
}

/** A status that no image can fix: stop the run. */
export class SuspectEndpointError extends TaggantsError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("detect-suspect-endpoint", message, options);
  }
}

export interface ExchangeOptions {
  policy: RetryPolicy;
  signal?: AbortSignal;
  /** Injected in tests to observe waits; defaults to a real timer. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Send `request` until it gets a 2xx, a non-retryable status, or runs out of attempts. */
export async function exchange(
  request: HttpRequest,
  options: ExchangeOptions,
): Promise<HttpExchange> {
  const { policy, signal } = options;
  const sleep = options.sleep ?? sleepFor;
  const started = performance.now();
  let lastFailure = "";
  let lastStatus: number | undefined;
  let lastBody: Uint8Array | undefined;
  let lastCause: unknown;
  for (let attempt = 1; attempt <= policy.maxAttempts; attempt++) {
    signal?.throwIfAborted();
    const result = await attemptOnce(request, policy.timeoutMs, signal);
    const elapsedMs = performance.now() - started;
    if (result.kind === "response") {
      const { status, body, retryAfterMs } = result;
      if (status >= 200 && status < 300) return { status, body, attempts: attempt, elapsedMs };
      if (ENDPOINT_ERRORS.has(status)) throw endpointError(request, status, body);
      if (status !== 429 && status < 500) throw refusal(request, status, body, attempt);
      lastFailure = `HTTP ${status}${describeBody(body)}`;
      [lastStatus, lastBody, lastCause] = [status, body, undefined];
      if (attempt < policy.maxAttempts)
        await sleep(waitBefore(attempt, policy, retryAfterMs), signal);
    } else {
      lastFailure = result.reason;
      [lastStatus, lastBody, lastCause] = [undefined, undefined, result.cause];
      if (attempt < policy.maxAttempts) await sleep(waitBefore(attempt, policy), signal);
    }
  }
  throw new SuspectHttpError({
    outcome: "failed",
    message: `${request.method} ${request.url} failed after ${policy.maxAttempts} attempts; last: ${lastFailure}. Check that the suspect is up, or raise --timeout / --retries.`,
    status: lastStatus,
    attempts: policy.maxAttempts,
    body: lastBody,
    cause: lastCause,
  });
}

type Attempt =
  | { kind: "response"; status: number; body: Uint8Array; retryAfterMs?: number }
  | { kind: "error"; reason: string; cause: unknown };

async function attemptOnce(
  request: HttpRequest,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<Attempt> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  const headers: Record<string, string> = { accept: "application/json", ...request.headers };
  if (request.contentType) headers["content-type"] = request.contentType;
  try {
    const response = await fetch(request.url, {
      method: request.method,
      headers,
      body: request.body as Uint8Array<ArrayBuffer> | undefined,
      signal: combined,
    });
    const body = await readLimited(response, MAX_RESPONSE_BYTES);
    return { kind: "response", status: response.status, body, retryAfterMs: retryAfter(response) };
  } catch (error) {
    signal?.throwIfAborted();
    if (error instanceof ResponseTooLarge)
      return { kind: "error", reason: error.message, cause: error };
    if (timeout.aborted)
      return { kind: "error", reason: `no answer within ${timeoutMs} ms`, cause: error };
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (error as Error).message;
    return { kind: "error", reason: `connection error (${reason})`, cause: error };
  }
}

/** Largest answer read from a suspect; a classifier's answer is a few kilobytes. */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

class ResponseTooLarge extends Error {}

async function readLimited(response: Response, limit: number): Promise<Uint8Array> {
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new ResponseTooLarge(`the answer exceeds ${limit} bytes`);
    }
    chunks.push(value);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

function retryAfter(response: Response): number | undefined {
  const header = response.headers.get("retry-after");
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Exponential backoff with ±25 % jitter, or the server's Retry-After when it names one. */
export function waitBefore(attempt: number, policy: RetryPolicy, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, policy.maxBackoffMs);
  const base = policy.backoffMs * 2 ** (attempt - 1);
  const jitter = 0.75 + Math.random() * 0.5;
  return Math.min(base * jitter, policy.maxBackoffMs);
}

function sleepFor(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

function endpointError(
  request: HttpRequest,
  status: number,
  body: Uint8Array,
): SuspectEndpointError {
  const hint =
    status === 404 || status === 405
      ? "check the URL and the model name"
      : 'check the credentials in the adapter config\'s "headers"';
  return new SuspectEndpointError(
    `${request.method} ${request.url} answered HTTP ${status}${describeBody(body)}; no image can fix that: ${hint}.`,
  );
}

function refusal(
  request: HttpRequest,
  status: number,
  body: Uint8Array,
  attempts: number,
): SuspectHttpError {
  return new SuspectHttpError({
    outcome: "refused",
    message: `${request.method} ${request.url} refused the image with HTTP ${status}${describeBody(body)}.`,
    status,
    attempts,
    body,
  });
}

function describeBody(body: Uint8Array): string {
  const text = new TextDecoder().decode(body.subarray(0, 200)).trim();
  return text ? `: ${JSON.stringify(text)}` : "";
}

/**
 * Sending the key images to the suspect (issue #7, "Querying"): bounded concurrency, each key
 * sent once (repeated or augmented copies of one key are not independent trials, METHOD.md),
 * and every exchange recorded — hashes of the pixels, of the request and of the response, and
 * the response itself — so that the evidence report can be checked later without the suspect.
 * A refusal (4xx), a failure after retries, or an unreadable answer is recorded for that key
 * and does not stop the run; an endpoint error (wrong URL, credentials) or a worker failure does.
 */
import { TaggantsError } from "../errors.ts";
import { AnswerUnreadableError, encodeRequest, parseAnswer } from "./formats.ts";
import { SuspectHttpError } from "./http.ts";
import { sha256Hex, type ImageTensor } from "./images.ts";
import type { Suspect } from "./suspect.ts";

export type QueryRole = "key" | "control";

export interface PlannedQuery {
  role: QueryRole;
  /** Key index in the derivation (controls continue after the K real keys). */
  index: number;
  /** The key image at key resolution, CHW. */
  image: ImageTensor;
}

export interface RecordedBody {
  encoding: "utf8" | "base64";
  text: string;
}

export interface QueryRecord {
  /** Position in the order the queries were sent (shuffled, keys and controls mixed). */
  sequence: number;
  role: QueryRole;
  index: number;
  image_sha256: string;
  request_sha256: string;
  outcome: "answered" | "refused" | "failed";
  status: number | null;
  attempts: number;
  elapsed_ms: number;
  response_sha256: string | null;
  response: RecordedBody | null;
  /** The suspect's labels, best first, as read from the response (all it gave). */
  labels: string[] | null;
  error: string | null;
}

export interface RunQueriesOptions {
  suspect: Suspect;
  queries: readonly PlannedQuery[];
  concurrency: number;
  signal: AbortSignal;
  onSettled?: (done: number) => void;
}

export async function runQueries(options: RunQueriesOptions): Promise<QueryRecord[]> {
  const { queries, concurrency, signal } = options;
  const records: QueryRecord[] = new Array(queries.length);
  let next = 0;
  let done = 0;
  // A failure that must stop the run stops every lane: the first one wins.
  const stop = new AbortController();
  const lane = async (): Promise<void> => {
    while (next < queries.length && !stop.signal.aborted) {
      const sequence = next++;
      try {
        records[sequence] = await runOne(
          options.suspect,
          queries[sequence]!,
          sequence,
          AbortSignal.any([signal, stop.signal]),
        );
      } catch (error) {
        stop.abort(error);
        throw error;
      }
      options.onSettled?.(++done);
    }
  };
  const lanes = Array.from({ length: Math.max(1, Math.min(concurrency, queries.length)) }, lane);
  const results = await Promise.allSettled(lanes);
  const failure = results.find((result) => result.status === "rejected");
  if (failure) throw stop.signal.reason ?? (failure as PromiseRejectedResult).reason;
  return records;
}

async function runOne(
  suspect: Suspect,
  query: PlannedQuery,
  sequence: number,
  signal: AbortSignal,
): Promise<QueryRecord> {
  const request = await encodeRequest(suspect.description.request, query.image);
  const base = {
    sequence,
    role: query.role,
    index: query.index,
    image_sha256: request.imageSha256,
    request_sha256: request.requestSha256,
  };
  const started = performance.now();
  try {
    const answer = await suspect.send(request, signal);
    const record = {
      ...base,
      status: answer.status,
      attempts: answer.attempts,
      elapsed_ms: Math.round(answer.elapsedMs),
      response_sha256: sha256Hex(answer.body),
      response: recordBody(answer.body),
    };
    try {
      const labels = parseAnswer(suspect.description.answer, answer.body);
      return { ...record, outcome: "answered", labels, error: null };
    } catch (error) {
      if (!(error instanceof AnswerUnreadableError)) throw error;
      return { ...record, outcome: "failed", labels: null, error: error.message };
    }
  } catch (error) {
    if (!(error instanceof SuspectHttpError)) throw asRunFailure(error, signal);
    return {
      ...base,
      outcome: error.outcome,
      status: error.status ?? null,
      attempts: error.attempts,
      elapsed_ms: Math.round(performance.now() - started),
      response_sha256: error.body ? sha256Hex(error.body) : null,
      response: error.body ? recordBody(error.body) : null,
      labels: null,
      error: error.message,
    };
  }
}

function asRunFailure(error: unknown, signal: AbortSignal): unknown {
  if (signal.aborted || error instanceof TaggantsError) return error;
  return new TaggantsError(
    "detect-query-failed",
    `A query failed unexpectedly: ${(error as Error).message}`,
    { cause: error },
  );
}

/** The body as text when it is UTF-8 that round-trips exactly, else base64. */
export function recordBody(body: Uint8Array): RecordedBody {
  try {
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(body);
    if (Buffer.from(text, "utf8").equals(body)) return { encoding: "utf8", text };
  } catch {
    // not UTF-8: fall through to base64
  }
  return { encoding: "base64", text: Buffer.from(body).toString("base64") };
}

export function bodyBytes(body: RecordedBody): Uint8Array {
  return new Uint8Array(Buffer.from(body.text, body.encoding === "utf8" ? "utf8" : "base64"));
}

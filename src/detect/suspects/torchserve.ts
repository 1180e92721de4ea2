/**
 * TorchServe inference API suspects: `POST /predictions/{name}` with the image file as the body
 * (a lossless PNG of the upsampled key image), answered with JSON such as
 * `{"Sneaker": 0.91, "Sandal": 0.05, ...}` (the image_classifier handler's top classes), a list of
 * such objects, or a list of labels. The answer's labels are class names.
 */
import { TaggantsError, UsageError } from "../../errors.ts";
import { exchange, SuspectHttpError } from "../http.ts";
import type { SpecOf } from "./index.ts";
import { HttpSuspect, type HttpSuspectOptions } from "./http.ts";

export async function openTorchServeSuspect(
  spec: SpecOf<"torchserve">,
  options: HttpSuspectOptions,
): Promise<HttpSuspect> {
  const size = spec.input_size ?? options.inputSize;
  if (!size) throw missingInputSize(spec.spec);
  const notes = await checkPing(spec.url, spec.headers ?? {}, options);
  return new HttpSuspect(
    {
      kind: "torchserve",
      spec: spec.spec,
      endpoint: spec.url,
      request: {
        encoding: "png",
        height: size[0],
        width: size[1],
        channels: spec.channels ?? options.keyChannels,
      },
      answer: { format: "torchserve" },
      labelSpace: { kind: "names" },
      headerNames: Object.keys(spec.headers ?? {}),
      metadata: null,
      notes,
    },
    { url: spec.url, headers: spec.headers ?? {}, policy: options.policy },
  );
}

/** TorchServe's health check; a refused connection stops the run before any key is sent. */
async function checkPing(
  url: string,
  headers: Record<string, string>,
  options: HttpSuspectOptions,
): Promise<string[]> {
  const ping = new URL("/ping", url).toString();
  try {
    await exchange(
      { url: ping, method: "GET", headers },
      { policy: { ...options.policy, maxAttempts: 1 }, signal: options.signal },
    );
    return [];
  } catch (error) {
    options.signal.throwIfAborted();
    if (error instanceof SuspectHttpError && error.status === undefined) {
      // A server that is down is a runtime failure (exit 3), not a bad command line.
      throw new TaggantsError(
        "detect-suspect-unreachable",
        `Cannot reach the suspect at ${url}: ${error.message}`,
        { cause: error },
      );
    }
    return [
      `The TorchServe health check ${ping} did not answer 200 (${(error as Error).message}); querying anyway.`,
    ];
  }
}

export function missingInputSize(spec: string): UsageError {
  return new UsageError(
    "detect-input-size-unknown",
    `The suspect ${spec} does not announce its input size and the dataset's image size is not uniform; pass --input-size HxW (or "input_size" in the adapter config).`,
  );
}

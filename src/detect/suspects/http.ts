/** The HTTP transport shared by served suspects: POST each encoded key image to one URL. */
import { exchange, type RetryPolicy } from "../http.ts";
import type { EncodedRequest } from "../formats.ts";
import type { RawAnswer, Suspect, SuspectDescription } from "../suspect.ts";

export class HttpSuspect implements Suspect {
  constructor(
    readonly description: SuspectDescription,
    private readonly options: { url: string; headers: Record<string, string>; policy: RetryPolicy },
  ) {}

  send(request: EncodedRequest, signal: AbortSignal): Promise<RawAnswer> {
    return exchange(
      {
        url: this.options.url,
        method: "POST",
        headers: this.options.headers,
        body: request.body,
        contentType: request.contentType,
      },
      { policy: this.options.policy, signal },
    );
  }

  async close(): Promise<void> {}
}

/** Settings every served suspect needs from the detection run. */
export interface HttpSuspectOptions {
  /** Channels of the key images (the dataset's). */
  keyChannels: number;
  /** Input size for suspects that do not announce one: --input-size, else the dataset's. */
  inputSize?: readonly [number, number];
  policy: RetryPolicy;
  signal: AbortSignal;
}

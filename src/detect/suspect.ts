/**
 * A suspect model as detection sees it (METHOD.md, Detection: Bob exposes only predictions):
 * something that takes one encoded key image and gives back one raw answer, plus the formats
 * that say how requests are built and answers read, and the suspect's label space. Adapters for
 * each kind live in `suspects/`.
 */
import type { AnswerFormat, EncodedRequest, RequestFormat } from "./formats.ts";

/** The suspect's labels as announced before any key is sent. */
export type LabelSpace =
  /** Answers are class indices; index i means `names[i]` (a checkpoint written by this tool). */
  | { kind: "named-indices"; names: string[] }
  /** Answers are class names; the full list is not announced (TorchServe, v2 BYTES outputs). */
  | { kind: "names" }
  /** Answers are class indices over `count` classes (count unknown when absent). */
  | { kind: "indices"; count?: number };

/** What the evidence report records about the suspect (never credentials). */
export interface SuspectDescription {
  kind: "checkpoint" | "v2" | "torchserve" | "json";
  /** The suspect as given on the command line. */
  spec: string;
  /** Where requests go (a URL, or the checkpoint folder). */
  endpoint: string;
  request: RequestFormat;
  answer: AnswerFormat;
  labelSpace: LabelSpace;
  /** Names of extra HTTP headers sent (values are not recorded). */
  headerNames: string[];
  /** What the suspect said about itself (v2 model metadata, checkpoint model name, ...). */
  metadata: unknown;
  /** Things the user should know (e.g. a failed health check), shown and recorded. */
  notes: string[];
}

export interface RawAnswer {
  status: number;
  body: Uint8Array;
  attempts: number;
  elapsedMs: number;
}

export interface Suspect {
  readonly description: SuspectDescription;
  /** Send one encoded key image; throws SuspectHttpError on a refusal or persistent failure. */
  send(request: EncodedRequest, signal: AbortSignal): Promise<RawAnswer>;
  close(): Promise<void>;
}

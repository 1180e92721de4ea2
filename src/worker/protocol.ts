/**
 * Every message of the wire between the orchestrator and the worker (protocol version 1); the
 * Python twin is `python/taggants_worker/protocol.py`. A message is multipart: frame 0 is a
 * msgpack map (the header) with a `type` discriminant, frames 1..n are raw tensor bytes, each
 * referenced from the header as `{__tensor__: i, dtype, shape}`. Field names are snake_case.
 */
import { Packr } from "msgpackr";
import { WorkerError } from "./errors.ts";
import { isDType, ITEM_SIZE, elementCount, Tensor, DTYPES } from "./tensor.ts";

export const PROTOCOL_VERSION = 1;

/** Default limit on one message, all frames together (1 GiB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 2 ** 30;

/** Worker → orchestrator, first message: who is answering. */
export interface HelloMessage {
  type: "hello";
  protocol_version: number;
  worker_version: string;
  torch_version: string;
  python_version: string;
  device: "cuda" | "cpu";
  device_name: string;
  pid: number;
}

/** Orchestrator → worker: run `command` with keyword arguments `args`. */
export interface RequestMessage {
  type: "request";
  id: number;
  command: string;
  args: Record<string, unknown>;
}

/** Worker → orchestrator: one progress event of a running request. */
export interface ProgressMessage {
  type: "progress";
  id: number;
  event: Record<string, unknown>;
}

/** Worker → orchestrator: the request's result; ends the request. */
export interface ReplyMessage {
  type: "reply";
  id: number;
  result: Record<string, unknown>;
}

export interface ErrorInfo {
  /** The Python exception's class name, e.g. `ValueError`. */
  type: string;
  message: string;
  traceback?: string;
}

/** Worker → orchestrator: the request failed (`id` is null when it could not be read). */
export interface ErrorMessage {
  type: "error";
  id: number | null;
  error: ErrorInfo;
}

/** Orchestrator → worker: stop request `id` (it then ends with a `Cancelled` error). */
export interface CancelMessage {
  type: "cancel";
  id: number;
}

/** Worker → orchestrator, every heartbeat interval: the worker's main loop is alive. */
export interface HeartbeatMessage {
  type: "heartbeat";
  /** The worker's wall clock, seconds since the epoch. */
  t: number;
}

/** Orchestrator → worker: cancel everything, then exit with code 0. */
export interface ShutdownMessage {
  type: "shutdown";
}

export type WorkerMessage =
  HelloMessage | ProgressMessage | ReplyMessage | ErrorMessage | HeartbeatMessage;
export type OrchestratorMessage = RequestMessage | CancelMessage | ShutdownMessage;
export type Message = WorkerMessage | OrchestratorMessage;

type FieldKind = "int" | "string" | "map" | "number" | "int-or-nil";

// The header fields each message type must carry.
const FIELDS: Record<Message["type"], Record<string, FieldKind>> = {
  hello: {
    protocol_version: "int",
    worker_version: "string",
    torch_version: "string",
    python_version: "string",
    device: "string",
    device_name: "string",
    pid: "int",
  },
  request: { id: "int", command: "string", args: "map" },
  progress: { id: "int", event: "map" },
  reply: { id: "int", result: "map" },
  error: { id: "int-or-nil", error: "map" },
  cancel: { id: "int" },
  heartbeat: { t: "number" },
  shutdown: {},
};

/** A message that does not follow the protocol; `requestId` is set when it could be read. */
export class ProtocolError extends WorkerError {
  constructor(message: string, options: { requestId?: number; cause?: unknown } = {}) {
    super("worker_protocol_error", message, options);
  }
}

// Plain msgpack that Python's `msgpack` reads: no record extension; integers beyond 2^53 come
// back as BigInt instead of losing precision.
const packr = new Packr({
  useRecords: false,
  encodeUndefinedAsNil: true,
  // "auto" (a number when safe, else a BigInt) is implemented but missing from msgpackr's types.
  int64AsType: "auto" as "bigint",
  mapsAsObjects: true,
});

/** The frames of `message`: the msgpack header, then one raw frame per tensor in it. */
export function encodeMessage(message: OrchestratorMessage | WorkerMessage): Uint8Array[] {
  const frames: Uint8Array[] = [new Uint8Array(0)];
  const header = packTensors(message, frames);
  frames[0] = packr.pack(header);
  return frames;
}

export function messageSize(frames: readonly Uint8Array[]): number {
  return frames.reduce((total, frame) => total + frame.byteLength, 0);
}

function packTensors(value: unknown, frames: Uint8Array[]): unknown {
  if (value instanceof Tensor) {
    frames.push(value.data);
    return { __tensor__: frames.length - 1, dtype: value.dtype, shape: value.shape };
  }
  if (Array.isArray(value)) return value.map((item) => packTensors(item, frames));
  if (isPlainObject(value)) {
    const packed: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) packed[key] = packTensors(item, frames);
    return packed;
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

/** Parse and validate a received message; tensors become `Tensor`s viewing their frames. */
export function decodeMessage(frames: readonly Uint8Array[]): Message {
  const [first] = frames;
  if (first === undefined) throw new ProtocolError("An empty message arrived: no header frame.");
  const header = unpackHeader(first);
  const type = header.type;
  if (typeof type !== "string" || !(type in FIELDS)) {
    throw new ProtocolError(
      `Unknown message type ${JSON.stringify(type)}; expected one of ${Object.keys(FIELDS).join(", ")}.`,
      { requestId: readableId(header) },
    );
  }
  validateFields(type as Message["type"], header);
  try {
    return unpackTensors(header, frames) as Message;
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    throw new ProtocolError(error.message, { requestId: readableId(header), cause: error });
  }
}

/** The `id` of a message that will not be decoded in full, if its header can be read. */
export function readRequestId(frames: readonly Uint8Array[]): number | undefined {
  try {
    return frames[0] === undefined ? undefined : readableId(unpackHeader(frames[0]));
  } catch {
    return undefined;
  }
}

function unpackHeader(frame: Uint8Array): Record<string, unknown> {
  let header: unknown;
  try {
    header = packr.unpack(frame);
  } catch (error) {
    throw new ProtocolError(`A header frame is not valid msgpack: ${String(error)}.`, {
      cause: error,
    });
  }
  if (!isPlainObject(header)) {
    throw new ProtocolError(`A header must be a msgpack map, got ${describe(header)}.`);
  }
  return header;
}

function validateFields(type: Message["type"], header: Record<string, unknown>): void {
  for (const [field, kind] of Object.entries(FIELDS[type])) {
    const value = header[field];
    if (!(field in header) || !fieldMatches(kind, value)) {
      throw new ProtocolError(
        `A ${type} message needs field "${field}" as ${kind}, got ${describe(value)}.`,
        { requestId: readableId(header) },
      );
    }
  }
}

function fieldMatches(kind: FieldKind, value: unknown): boolean {
  switch (kind) {
    case "int":
      return Number.isSafeInteger(value);
    case "int-or-nil":
      return value === null || Number.isSafeInteger(value);
    case "number":
      return typeof value === "number";
    case "string":
      return typeof value === "string";
    case "map":
      return isPlainObject(value);
  }
}

function readableId(header: Record<string, unknown>): number | undefined {
  return Number.isSafeInteger(header.id) ? (header.id as number) : undefined;
}

function unpackTensors(value: unknown, frames: readonly Uint8Array[]): unknown {
  if (Array.isArray(value)) return value.map((item) => unpackTensors(item, frames));
  if (isPlainObject(value)) {
    if ("__tensor__" in value) return unpackTensor(value, frames);
    const unpacked: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) unpacked[key] = unpackTensors(item, frames);
    return unpacked;
  }
  return value;
}

function unpackTensor(descriptor: Record<string, unknown>, frames: readonly Uint8Array[]): Tensor {
  const { __tensor__: index, dtype, shape } = descriptor;
  if (!Number.isSafeInteger(index) || (index as number) < 1 || (index as number) >= frames.length) {
    throw new ProtocolError(
      `A tensor descriptor names frame ${describe(index)}, but the message has frames 1..${frames.length - 1}.`,
    );
  }
  if (!isDType(dtype)) {
    throw new ProtocolError(
      `Unknown tensor dtype ${describe(dtype)}; expected one of ${DTYPES.join(", ")}.`,
    );
  }
  const validShape =
    Array.isArray(shape) && shape.every((size) => Number.isSafeInteger(size) && size >= 0);
  if (!validShape) {
    throw new ProtocolError(`A tensor shape must be a list of sizes >= 0, got ${describe(shape)}.`);
  }
  const data = frames[index as number] as Uint8Array;
  const expected = elementCount(shape as number[]) * ITEM_SIZE[dtype];
  if (data.byteLength !== expected) {
    throw new ProtocolError(
      `Tensor frame ${String(index)} holds ${data.byteLength} bytes, but dtype ${dtype} and shape [${(shape as number[]).join(", ")}] need ${expected}.`,
    );
  }
  return new Tensor(dtype, shape as number[], data);
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "bigint") return `${value}n`;
  try {
    const text = JSON.stringify(value);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  } catch {
    return String(value);
  }
}

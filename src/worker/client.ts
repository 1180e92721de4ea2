/**
 * The managed PyTorch worker: spawn it (execa), bind the wire (ZeroMQ `Dealer` over `ipc://`),
 * check its handshake, run requests with progress, timeouts and cancellation, detect a crash or
 * a hang, and shut it down — gracefully, then by force after a named timeout.
 *
 * States: starting → ready → closing → closed, or → failed when the worker exits, stops sending
 * heartbeats, or cannot start. Every pending request is settled on every path: never a hang.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa, type Result } from "execa";
import { Dealer } from "zeromq";
import type { Terminal } from "../cli/terminal.ts";
import { resolvePython, workerEnvironment } from "../env/python.ts";
import { UsageError } from "../errors.ts";
import { WorkerError, WorkerPythonError } from "./errors.ts";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  ProtocolError,
  decodeMessage,
  encodeMessage,
  messageSize,
  readRequestId,
  type HelloMessage,
  type Message,
  type OrchestratorMessage,
} from "./protocol.ts";

export interface StartWorkerOptions {
  /** Receives the worker's log lines (warnings as warnings, the rest under `--verbose`). */
  terminal?: Terminal;
  /** Aborting cancels every pending request and shuts the worker down. */
  signal?: AbortSignal;
  /** The interpreter; defaults to `resolvePython()` (TAGGANTS_PYTHON or the managed venv). */
  python?: string;
  /** What follows the interpreter; defaults to `["-m", "taggants_worker"]`. */
  entry?: readonly string[];
  /** `auto`: torch's CUDA device when available, else the CPU. */
  device?: "auto" | "cpu" | "cuda";
  /** How long to wait for the handshake (the worker imports torch first). */
  startTimeoutMs?: number;
  /** How often the worker sends a heartbeat. */
  heartbeatIntervalMs?: number;
  /** Silence (no message at all) longer than this means the worker hangs: it is killed. */
  heartbeatTimeoutMs?: number;
  /** How long `close()` waits for a graceful exit before SIGKILL. */
  shutdownTimeoutMs?: number;
  /** Largest message (all frames) either side sends; larger ones are refused with an error. */
  maxMessageBytes?: number;
  /** How many lines of the worker's stderr a failure report quotes. */
  stderrTailLines?: number;
  /** Extra environment variables for the worker. */
  env?: Record<string, string>;
}

export interface RequestOptions {
  /** Called with each progress event the command streams before its reply. */
  onProgress?: (event: Record<string, unknown>) => void;
  /** Cancel the request (and reject it) this long after it was sent; queueing in the worker counts. */
  timeoutMs?: number;
  /** Aborting cancels the request in the worker and rejects it at once. */
  signal?: AbortSignal;
}

export type WorkerState = "starting" | "ready" | "closing" | "closed" | "failed";

const DEFAULTS = {
  startTimeoutMs: 120_000,
  heartbeatIntervalMs: 1_000,
  heartbeatTimeoutMs: 30_000,
  shutdownTimeoutMs: 5_000,
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  stderrTailLines: 20,
};

/** ipc:// paths are limited by the kernel's sockaddr_un (108 bytes, terminator included). */
const MAX_IPC_PATH = 100;
/** The worker's exit status when it refuses a start-up setting (python: EXIT_REFUSED_SETTINGS). */
const WORKER_REFUSED_SETTINGS = 2;

interface PendingRequest {
  id: number;
  command: string;
  resolve: (result: Record<string, unknown>) => void;
  reject: (error: Error) => void;
  onProgress: ((event: Record<string, unknown>) => void) | undefined;
  lastProgress: Record<string, unknown> | undefined;
  dispose: () => void;
}

interface Failure {
  code: string;
  /** What happened, e.g. "the worker exited with code 1". */
  what: string;
  cause?: unknown;
}

export async function startWorker(options: StartWorkerOptions = {}): Promise<Worker> {
  return Worker.start(options);
}

type Settings = typeof DEFAULTS & StartWorkerOptions;
type WorkerProcess = ReturnType<typeof spawnWorker>;

export class Worker {
  /** The worker's handshake: protocol, versions, device. */
  hello!: HelloMessage;
  private state: WorkerState = "starting";
  private failure: WorkerError | undefined;
  private readonly pending = new Map<number, PendingRequest>();
  private nextId = 1;
  private lastMessageAt = Date.now();
  private watchdog: NodeJS.Timeout | undefined;
  private sendChain: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;
  private released: Promise<void> | undefined;
  private exited = false;
  private exitResult: Result | undefined;
  private readonly exitPromise: Promise<void>;
  private readonly stderrTail: string[] = [];
  private helloWaiter:
    { resolve: (hello: HelloMessage) => void; reject: (e: Error) => void } | undefined;
  private readonly onAbort = (): void => this.abortAll();

  private constructor(
    private readonly settings: Settings,
    private readonly socket: Dealer,
    private readonly endpointPath: string,
    private readonly child: WorkerProcess,
  ) {
    this.exitPromise = child.then((result) => this.onExit(result));
    collectLines(child.stderr, (line) => this.onStderrLine(line));
    collectLines(child.stdout, (line) => this.onStderrLine(line));
    void this.receiveLoop();
  }

  static async start(options: StartWorkerOptions): Promise<Worker> {
    const settings: Settings = { ...DEFAULTS, ...definedOnly(options) };
    options.signal?.throwIfAborted();
    const python = settings.python ?? resolvePython();
    const endpointPath = ipcPath();
    const socket = new Dealer({ linger: 0 });
    let child: WorkerProcess;
    try {
      await socket.bind(`ipc://${endpointPath}`);
      child = spawnWorker({ ...settings, python }, `ipc://${endpointPath}`);
    } catch (error) {
      socket.close();
      rmSync(endpointPath, { force: true });
      throw new WorkerError("worker_start_failed", `The worker could not start: ${String(error)}`, {
        cause: error,
      });
    }
    const worker = new Worker(settings, socket, endpointPath, child);
    try {
      worker.hello = await worker.handshake();
    } catch (error) {
      worker.state = "closed";
      await worker.release();
      throw error;
    }
    return worker;
  }

  /** Where the worker is in its life; requests are accepted only when `ready`. */
  get status(): WorkerState {
    return this.state;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Run `command` in the worker; resolves with its result map (tensors as `Tensor`s). */
  request<R = Record<string, unknown>>(
    command: string,
    args: Record<string, unknown> = {},
    options: RequestOptions = {},
  ): Promise<R> {
    const id = this.nextId++;
    const refused = this.refusal(id, command, options.signal);
    if (refused) return Promise.reject(refused);
    const frames = encodeMessage({ type: "request", id, command, args });
    const size = messageSize(frames);
    if (size > this.settings.maxMessageBytes) {
      return Promise.reject(
        new WorkerError(
          "worker_message_too_large",
          `Request ${id} (${command}) is ${size} bytes, over the wire's limit of ${this.settings.maxMessageBytes} bytes. Send smaller tensors (e.g. in chunks) or start the worker with a larger maxMessageBytes.`,
          { requestId: id, command },
        ),
      );
    }
    return new Promise<R>((resolve, reject) => {
      this.track(id, command, options, { resolve: resolve as PendingRequest["resolve"], reject });
      this.send(frames).catch((error: unknown) =>
        this.settle(id, undefined, this.requestError(id, "worker_send_failed", error)),
      );
    });
  }

  /** Shut the worker down: a `shutdown` message, then SIGKILL after `shutdownTimeoutMs`. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private refusal(id: number, command: string, signal?: AbortSignal): Error | undefined {
    if (this.state === "ready") {
      return signal?.aborted ? this.cancelledError(id, command, signal.reason) : undefined;
    }
    if (this.failure) {
      return new WorkerError(
        this.failure.code,
        `Request ${id} (${command}) cannot run: ${this.failure.message}`,
        { requestId: id, command, cause: this.failure },
      );
    }
    return new WorkerError(
      "worker_closed",
      `Request ${id} (${command}) cannot run: the worker is ${this.state}. Start a new worker.`,
      { requestId: id, command },
    );
  }

  private track(
    id: number,
    command: string,
    options: RequestOptions,
    settle: Pick<PendingRequest, "resolve" | "reject">,
  ): void {
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(
            () => this.cancel(id, this.timeoutError(id, command, options)),
            options.timeoutMs,
          );
    const onAbort = (): void =>
      this.cancel(id, this.cancelledError(id, command, options.signal?.reason));
    options.signal?.addEventListener("abort", onAbort, { once: true });
    this.pending.set(id, {
      id,
      command,
      ...settle,
      onProgress: options.onProgress,
      lastProgress: undefined,
      dispose: () => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
      },
    });
  }

  private timeoutError(id: number, command: string, options: RequestOptions): WorkerError {
    return new WorkerError(
      "worker_request_timeout",
      `Request ${id} (${command}) took longer than its timeout of ${options.timeoutMs} ms and was cancelled.${this.lastProgressNote(id)}`,
      { requestId: id, command },
    );
  }

  private cancelledError(id: number, command: string, reason: unknown): WorkerError {
    const why = reason instanceof Error ? `: ${reason.message}` : "";
    return new WorkerError("worker_cancelled", `Request ${id} (${command}) was cancelled${why}.`, {
      requestId: id,
      command,
      cause: reason,
    });
  }

  /** Reject request `id` now and tell the worker to stop it. */
  private cancel(id: number, error: WorkerError): void {
    if (!this.settle(id, undefined, error)) return;
    if (this.state === "ready") this.send(encodeMessage({ type: "cancel", id })).catch(() => {});
  }

  /** Settle request `id` with a result or an error; false when it was no longer pending. */
  private settle(id: number, result: Record<string, unknown> | undefined, error?: Error): boolean {
    const request = this.pending.get(id);
    if (!request) return false;
    this.pending.delete(id);
    request.dispose();
    if (error) request.reject(error);
    else request.resolve(result ?? {});
    return true;
  }

  private requestError(id: number, code: string, cause: unknown): WorkerError {
    const command = this.pending.get(id)?.command ?? "?";
    return new WorkerError(
      code,
      `Request ${id} (${command}) could not be sent to the worker: ${String(cause)}`,
      { requestId: id, command, cause },
    );
  }

  private send(frames: Uint8Array[]): Promise<void> {
    // zeromq.js allows one pending send per socket: queue them in order.
    const sent = this.sendChain.then(() => this.socket.send(frames));
    this.sendChain = sent.catch(() => {});
    return sent;
  }

  private handshake(): Promise<HelloMessage> {
    const { startTimeoutMs, signal } = this.settings;
    return new Promise<HelloMessage>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            this.startError(
              "worker_start_timeout",
              `the worker did not say hello within ${startTimeoutMs} ms (startTimeoutMs)`,
            ),
          ),
        startTimeoutMs,
      );
      const onAbort = (): void =>
        reject(
          this.startError("worker_cancelled", "starting the worker was cancelled", signal?.reason),
        );
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.helloWaiter = undefined;
      };
      this.helloWaiter = {
        resolve: (hello) => {
          done();
          this.onHello(hello, resolve, reject);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
    });
  }

  private onHello(
    hello: HelloMessage,
    resolve: (hello: HelloMessage) => void,
    reject: (error: Error) => void,
  ): void {
    if (hello.protocol_version !== PROTOCOL_VERSION) {
      reject(
        new WorkerError(
          "worker_protocol_mismatch",
          `The worker speaks wire protocol version ${hello.protocol_version}, but this taggants speaks version ${PROTOCOL_VERSION}: the Python worker package (version ${hello.worker_version}, pid ${hello.pid}) and the TypeScript side come from different releases. Use the worker package of this checkout (python/) or reinstall both from one release.`,
        ),
      );
      return;
    }
    this.state = "ready";
    this.lastMessageAt = Date.now();
    this.startWatchdog();
    this.settings.signal?.addEventListener("abort", this.onAbort, { once: true });
    resolve(hello);
  }

  private startError(code: string, what: string, cause?: unknown): WorkerError {
    return new WorkerError(code, `The worker could not start: ${what}.${this.stderrNote()}`, {
      cause,
    });
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.socket) this.onFrames(frames);
    } catch (error) {
      if (this.state === "ready") {
        this.fail({
          code: "worker_wire_failed",
          what: `the wire failed (${String(error)})`,
          cause: error,
        });
      }
    }
  }

  private onFrames(frames: Uint8Array[]): void {
    this.lastMessageAt = Date.now();
    let message: Message;
    try {
      message = this.decode(frames);
    } catch (error) {
      this.onBadMessage(error as WorkerError | ProtocolError);
      return;
    }
    this.route(message);
  }

  private decode(frames: Uint8Array[]): Message {
    const size = messageSize(frames);
    if (size > this.settings.maxMessageBytes) {
      const requestId = readRequestId(frames);
      throw new WorkerError(
        "worker_message_too_large",
        `The worker sent a message of ${size} bytes${requestId === undefined ? "" : ` for request ${requestId}`}, over the wire's limit of ${this.settings.maxMessageBytes} bytes (maxMessageBytes).`,
        { requestId },
      );
    }
    return decodeMessage(frames);
  }

  /** A message that breaks the protocol is dropped; the request it names, if any, fails. */
  private onBadMessage(error: WorkerError | ProtocolError): void {
    if (!(error instanceof ProtocolError) && !(error instanceof WorkerError)) throw error;
    this.settings.terminal?.warn(`worker: rejected a message: ${error.message}`);
    if (error.requestId !== undefined) this.settle(error.requestId, undefined, error);
    if (this.helloWaiter) this.helloWaiter.reject(this.startError(error.code, error.message));
  }

  private route(message: Message): void {
    if (this.helloWaiter && message.type !== "hello") {
      this.helloWaiter.reject(
        this.startError(
          "worker_protocol_error",
          `its first message was ${message.type}, not hello`,
        ),
      );
      return;
    }
    switch (message.type) {
      case "hello":
        if (this.helloWaiter) this.helloWaiter.resolve(message);
        else this.settings.terminal?.warn("worker: ignored a second hello message");
        return;
      case "heartbeat":
        return;
      case "progress":
        this.onProgress(message.id, message.event);
        return;
      case "reply":
        this.settle(message.id, message.result);
        return;
      case "error":
        this.onErrorMessage(message.id, message.error);
        return;
      default:
        this.settings.terminal?.warn(
          `worker: ignored a ${message.type} message, which only the orchestrator sends`,
        );
    }
  }

  private onProgress(id: number, event: Record<string, unknown>): void {
    const request = this.pending.get(id);
    if (!request) return; // cancelled or timed out meanwhile
    request.lastProgress = event;
    try {
      request.onProgress?.(event);
    } catch (error) {
      const failure = new WorkerError(
        "worker_progress_handler_failed",
        `Request ${id} (${request.command}) was cancelled because its progress handler threw: ${String(error)}`,
        { requestId: id, command: request.command, cause: error },
      );
      this.cancel(id, failure);
    }
  }

  private onErrorMessage(
    id: number | null,
    info: { type: string; message: string; traceback?: string },
  ): void {
    if (id === null) {
      this.settings.terminal?.warn(`worker: it rejected a message: ${info.type}: ${info.message}`);
      return;
    }
    const request = this.pending.get(id);
    if (!request) return;
    this.settle(
      id,
      undefined,
      new WorkerPythonError(info, { requestId: id, command: request.command }),
    );
  }

  private startWatchdog(): void {
    const { heartbeatTimeoutMs } = this.settings;
    const period = Math.max(10, Math.min(1_000, heartbeatTimeoutMs / 4));
    let lastTick = Date.now();
    this.watchdog = setInterval(() => {
      const now = Date.now();
      // If this process's own event loop was blocked, the silence is ours: start a fresh window.
      if (now - lastTick > 2 * period + 1_000) this.lastMessageAt = now;
      lastTick = now;
      if (now - this.lastMessageAt > heartbeatTimeoutMs) {
        this.fail({
          code: "worker_hung",
          what: `the worker sent nothing, not even a heartbeat, for ${now - this.lastMessageAt} ms (heartbeatTimeoutMs ${heartbeatTimeoutMs}) and was killed`,
        });
      }
    }, period);
    this.watchdog.unref();
  }

  private onStderrLine(line: string): void {
    const { level, text } = parseLogLine(line);
    this.stderrTail.push(level ? `${level}: ${text}` : text);
    if (this.stderrTail.length > this.settings.stderrTailLines) this.stderrTail.shift();
    const terminal = this.settings.terminal;
    // A worker that fails to start: its error lines are in the start error's message already.
    const startFailure = this.state === "starting" && (level === "error" || level === "critical");
    if (startFailure) terminal?.debug(`worker ${level}: ${text}`);
    else if (level === "warning" || level === "error" || level === "critical") {
      terminal?.warn(`worker: ${text}`);
    } else terminal?.debug(`worker ${level ?? "output"}: ${text}`);
  }

  private onExit(result: Result): void {
    this.exited = true;
    this.exitResult = result;
    const what = `the worker ${describeExit(result)}`;
    if (this.helloWaiter && result.exitCode === WORKER_REFUSED_SETTINGS) {
      const reason = [...this.stderrTail].reverse().find((line) => line.startsWith("error: "));
      this.helloWaiter.reject(
        new UsageError(
          "worker_settings_refused",
          `The worker refused its settings: ${reason?.slice("error: ".length) ?? what}.`,
        ),
      );
    } else if (this.helloWaiter) {
      this.helloWaiter.reject(this.startError("worker_start_failed", what));
    }
    if (this.state === "ready") this.fail({ code: "worker_exited", what });
  }

  /** The worker is gone or useless: reject everything pending, kill it, release the wire. */
  private fail(failure: Failure): void {
    if (this.state !== "ready") return;
    this.state = "failed";
    this.failure = new WorkerError(
      failure.code,
      `${capitalise(failure.what)}.${this.stderrNote()}`,
      {
        cause: failure.cause,
      },
    );
    for (const request of [...this.pending.values()]) {
      const message = `Request ${request.id} (${request.command}) failed: ${failure.what}.${this.lastProgressNote(request.id)}${this.stderrNote()}`;
      this.settle(
        request.id,
        undefined,
        new WorkerError(failure.code, message, {
          requestId: request.id,
          command: request.command,
          cause: failure.cause,
        }),
      );
    }
    void this.release();
  }

  private abortAll(): void {
    const reason: unknown = this.settings.signal?.reason;
    for (const request of [...this.pending.values()]) {
      this.cancel(request.id, this.cancelledError(request.id, request.command, reason));
    }
    void this.close();
  }

  private async shutDown(): Promise<void> {
    if (this.state === "ready" || this.state === "starting") {
      this.state = "closing";
      for (const request of [...this.pending.values()]) {
        this.settle(
          request.id,
          undefined,
          new WorkerError(
            "worker_closed",
            `Request ${request.id} (${request.command}) was still pending when the worker was closed.`,
            { requestId: request.id, command: request.command },
          ),
        );
      }
      if (!this.exited) await this.requestExit();
    }
    await this.release();
    if (this.state === "closing") this.state = "closed";
  }

  private async requestExit(): Promise<void> {
    const timeoutMs = this.settings.shutdownTimeoutMs;
    const shutdown: OrchestratorMessage = { type: "shutdown" };
    this.send(encodeMessage(shutdown)).catch(() => {});
    const exitedInTime = await Promise.race([
      this.exitPromise.then(() => true),
      delay(timeoutMs).then(() => false),
    ]);
    if (!exitedInTime) {
      this.settings.terminal?.warn(
        `worker: it did not exit within ${timeoutMs} ms of the shutdown request (shutdownTimeoutMs); killing it`,
      );
    }
  }

  /** Make sure the process is gone, then close the socket and remove the ipc file. */
  private release(): Promise<void> {
    this.released ??= this.releaseOnce();
    return this.released;
  }

  private async releaseOnce(): Promise<void> {
    clearInterval(this.watchdog);
    this.settings.signal?.removeEventListener("abort", this.onAbort);
    if (!this.exited) this.child.kill("SIGKILL");
    await this.exitPromise;
    this.socket.close();
    rmSync(this.endpointPath, { force: true });
  }

  private lastProgressNote(id: number): string {
    const event = this.pending.get(id)?.lastProgress;
    return event
      ? ` Last progress event: ${describeEvent(event)}.`
      : " It had sent no progress event.";
  }

  private stderrNote(): string {
    if (this.stderrTail.length === 0) return " The worker wrote nothing to stderr.";
    return ` Last lines of the worker's stderr:\n  ${this.stderrTail.join("\n  ")}`;
  }
}

function spawnWorker(settings: Settings & { python: string }, endpoint: string) {
  const python = settings.python;
  const entry = settings.entry ?? ["-m", "taggants_worker"];
  const args = [
    ...entry,
    "--endpoint",
    endpoint,
    "--max-message-bytes",
    String(settings.maxMessageBytes),
    "--heartbeat-interval-s",
    String(settings.heartbeatIntervalMs / 1000),
    "--device",
    settings.device ?? "auto",
    "--log-level",
    settings.terminal?.verbosity === "verbose" ? "debug" : "info",
    // The worker exits when this pipe closes, i.e. when this process dies, even by SIGKILL.
    "--watch-stdin",
  ];
  return execa(python, args, {
    env: { ...workerEnvironment(), ...settings.env },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    buffer: false,
    reject: false,
    cleanup: true,
  });
}

function ipcPath(): string {
  const name = `taggants-${process.pid}-${randomBytes(6).toString("hex")}.ipc`;
  const preferred = path.join(os.tmpdir(), name);
  return preferred.length <= MAX_IPC_PATH ? preferred : path.join("/tmp", name);
}

function collectLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let partial = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) if (line.trim() !== "") onLine(line);
  });
  stream.on("end", () => {
    if (partial.trim() !== "") onLine(partial);
  });
}

/** A worker log line (JSON: t, level, logger, message[, traceback]); other lines as they are. */
function parseLogLine(line: string): { level: string | undefined; text: string } {
  try {
    const entry = JSON.parse(line) as Record<string, unknown>;
    if (typeof entry.message === "string" && typeof entry.level === "string") {
      const traceback = typeof entry.traceback === "string" ? `\n${entry.traceback}` : "";
      return { level: entry.level, text: `${entry.message}${traceback}` };
    }
  } catch {
    // Not one of the worker's log lines (a native library's message, a crash): keep it as is.
  }
  return { level: undefined, text: line };
}

function describeExit(result: Result): string {
  if (result.signal) return `was killed by ${result.signal}`;
  if (result.exitCode !== undefined) return `exited with code ${result.exitCode}`;
  return `could not run (${result.shortMessage ?? result.message})`;
}

function describeEvent(event: Record<string, unknown>): string {
  const text = JSON.stringify(event, (_key, value: unknown) =>
    typeof value === "bigint" ? value.toString() : value,
  );
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(options).filter(([, value]) => value !== undefined),
  ) as Partial<T>;
}

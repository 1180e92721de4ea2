/**
 * Errors of the worker and its wire. Each names the request it ended (id and command) when
 * there was one; a crash or hang also names the stage, the exit code or signal, the last
 * progress event and the tail of the worker's stderr.
 */
import { TaggantsError } from "../errors.ts";
import type { ErrorInfo } from "./protocol.ts";

export interface WorkerErrorOptions {
  cause?: unknown;
  requestId?: number;
  command?: string;
}

export class WorkerError extends TaggantsError {
  readonly requestId: number | undefined;
  readonly command: string | undefined;

  constructor(code: string, message: string, options: WorkerErrorOptions = {}) {
    super(code, message, { cause: options.cause });
    this.requestId = options.requestId;
    this.command = options.command;
  }
}

/**
 * The Python exception a command raised, as it crossed the wire. `pythonType` is the exception's
 * class name; the traceback is kept as this error's `cause` (its stack is the Python traceback),
 * which the command line prints under `--verbose`.
 */
export class WorkerPythonError extends WorkerError {
  readonly pythonType: string;
  readonly pythonMessage: string;
  readonly traceback: string | undefined;

  constructor(info: ErrorInfo, options: { requestId: number; command: string }) {
    super(
      info.type === "Cancelled" ? "worker_cancelled" : "worker_python_error",
      `Request ${options.requestId} (${options.command}) failed in the worker: ${info.type}: ${info.message}`,
      { ...options, cause: pythonTraceback(info) },
    );
    this.pythonType = info.type;
    this.pythonMessage = info.message;
    this.traceback = info.traceback;
  }
}

function pythonTraceback(info: ErrorInfo): Error {
  const error = new Error(info.message);
  error.name = `Python ${info.type}`;
  error.stack = info.traceback ?? `${info.type}: ${info.message}`;
  return error;
}

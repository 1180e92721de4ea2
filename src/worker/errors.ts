/**
 * Errors of the worker and its wire. Each names the request it ended (id and command) when
 * there was one; a crash or hang also names the stage, the exit code or signal, the last
 * progress event and the tail of the worker's stderr.
 */
import { TaggantsError, UsageError } from "../errors.ts";
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

/** Python exceptions that the worker raises for bad inputs, naming the value and the choices. */
const INPUT_ERROR_TYPES = new Set(["ValueError", "FileNotFoundError"]);

/**
 * A worker's complaint about its inputs (an unknown model, a recipe setting of the wrong type, a
 * missing checkpoint) as a usage error (exit code 2) carrying the worker's own message; any other
 * error unchanged.
 */
export function asInputError(error: unknown): unknown {
  if (error instanceof WorkerPythonError && INPUT_ERROR_TYPES.has(error.pythonType)) {
    return new UsageError(`worker_${error.command ?? "request"}_input`, error.pythonMessage, {
      cause: error,
    });
  }
  return error;
}

/**
 * Errors that reach the user. Each has a stable `code` (for scripts and tests), an exit code
 * (see README, "Exit codes") and keeps the error that caused it as `cause`.
 */

export const ExitCode = {
  ok: 0,
  /** A negative verdict or a failed check (e.g. `manifest verify` found changes). */
  checkFailed: 1,
  /** The command line or an input file was not what the command expects. */
  usage: 2,
  /** Something went wrong while running (worker crash, I/O error, ...). */
  runtime: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface TaggantsErrorOptions {
  cause?: unknown;
  exitCode?: ExitCode;
}

export class TaggantsError extends Error {
  readonly code: string;
  readonly exitCode: ExitCode;

  constructor(code: string, message: string, options: TaggantsErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = options.exitCode ?? ExitCode.runtime;
  }
}

/** Bad command-line input or a bad input file: exit code 2. */
export class UsageError extends TaggantsError {
  constructor(code: string, message: string, options: Omit<TaggantsErrorOptions, "exitCode"> = {}) {
    super(code, message, { ...options, exitCode: ExitCode.usage });
  }
}

/** A check that ran and failed (a changed dataset, a commitment mismatch): exit code 1. */
export class CheckFailedError extends TaggantsError {
  constructor(code: string, message: string, options: Omit<TaggantsErrorOptions, "exitCode"> = {}) {
    super(code, message, { ...options, exitCode: ExitCode.checkFailed });
  }
}

/**
 * What every command action receives: the terminal (built from the global options) and an
 * AbortSignal that fires on Ctrl-C / SIGTERM so long jobs stop their worker cleanly.
 */
import type { Command } from "@commander-js/extra-typings";
import { Terminal, type Verbosity } from "./terminal.ts";

export interface GlobalOptions {
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
}

export interface CommandContext {
  terminal: Terminal;
  signal: AbortSignal;
}

const interrupt = new AbortController();
let interruptsSeen = 0;
let interruptExitCode: number | undefined;

/** 130 (SIGINT) or 143 (SIGTERM) once the user interrupted the command, else undefined. */
export function exitCodeAfterInterrupt(): number | undefined {
  return interruptExitCode;
}

/** Whether `error` is the user's interrupt itself or what it caused (a request it cancelled). */
export function isInterruptError(error: unknown): boolean {
  if (!interrupt.signal.aborted) return false;
  const reason: unknown = interrupt.signal.reason;
  return error === reason || (error instanceof Error && error.cause === reason);
}

/**
 * After the first signal the command has this long to stop its worker and clean up before the
 * process exits anyway, so a supervisor's single SIGTERM always ends taggants.
 */
export const SIGNAL_GRACE_MS = 15_000;

/** Exit status after a signal: 128 + the signal's number, as shells report it. */
const SIGNAL_EXIT_CODES: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

/** Install once, from main: the first signal aborts, the second (or the grace time) exits. */
export function installSignalHandlers(): void {
  const onSignal = (name: NodeJS.Signals): void => {
    const exitCode = SIGNAL_EXIT_CODES[name] ?? 130;
    interruptsSeen += 1;
    interruptExitCode = exitCode;
    if (interruptsSeen > 1) process.exit(exitCode);
    interrupt.abort(new Error(`interrupted by ${name}`));
    setTimeout(() => process.exit(exitCode), SIGNAL_GRACE_MS).unref();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

export function contextFor(command: { optsWithGlobals(): object }): CommandContext {
  const options = command.optsWithGlobals() as GlobalOptions;
  const verbosity: Verbosity = options.quiet ? "quiet" : options.verbose ? "verbose" : "normal";
  return {
    terminal: new Terminal({ verbosity, json: options.json ?? false, interrupt: interrupt.signal }),
    signal: interrupt.signal,
  };
}

/** The shape every `src/cli/commands/<name>.ts` exports. */
export type RegisterCommand = (program: Command) => void;

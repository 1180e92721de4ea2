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

/** Install once, from main: the first signal aborts, the second exits at once. */
export function installSignalHandlers(): void {
  const onSignal = (name: NodeJS.Signals): void => {
    interruptsSeen += 1;
    if (interruptsSeen > 1) process.exit(130);
    interrupt.abort(new Error(`interrupted by ${name}`));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

export function contextFor(command: { optsWithGlobals(): object }): CommandContext {
  const options = command.optsWithGlobals() as GlobalOptions;
  const verbosity: Verbosity = options.quiet ? "quiet" : options.verbose ? "verbose" : "normal";
  return {
    terminal: new Terminal({ verbosity, json: options.json ?? false }),
    signal: interrupt.signal,
  };
}

/** The shape every `src/cli/commands/<name>.ts` exports. */
export type RegisterCommand = (program: Command) => void;

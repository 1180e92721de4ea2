/**
 * The `taggants` command line. Each top-level command lives in `commands/<name>.ts`; this file
 * only assembles them, maps errors to exit codes and prints failures.
 */
import { Command, CommanderError, type CommandUnknownOpts } from "@commander-js/extra-typings";
import { readFileSync } from "node:fs";
import { ExitCode, TaggantsError, UsageError } from "../errors.ts";
import { exitCodeAfterInterrupt, installSignalHandlers, isInterruptError } from "./context.ts";
import { describeOption } from "./options.ts";
import { Terminal } from "./terminal.ts";
import type { RegisterCommand } from "./context.ts";
import * as detectCommand from "./commands/detect.ts";
import * as serveCommand from "./commands/serve.ts";
import * as keysCommand from "./commands/keys.ts";
import * as manifestCommand from "./commands/manifest.ts";
import * as statsCommand from "./commands/stats.ts";
import * as signCommand from "./commands/sign.ts";
import * as experimentCommand from "./commands/experiment.ts";
import * as trainCommand from "./commands/train.ts";
import * as evalCommand from "./commands/eval.ts";

const commandModules: Array<{ register: RegisterCommand }> = [
  detectCommand,
  serveCommand,
  keysCommand,
  manifestCommand,
  statsCommand,
  signCommand,
  experimentCommand,
  trainCommand,
  evalCommand,
];

function packageVersion(): string {
  const url = new URL("../../package.json", import.meta.url);
  return (JSON.parse(readFileSync(url, "utf8")) as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command()
    .name("taggants")
    .description("Sign an image dataset and prove, with a p-value, that a model was trained on it.")
    .version(packageVersion())
    .option("--json", "print the result as JSON on stdout (logs stay on stderr)")
    .option("-v, --verbose", "more detail, including worker tracebacks")
    .option("-q, --quiet", "only errors and the result")
    .configureHelp({ optionDescription: describeOption })
    // Usage errors are printed by reportFailure, like every other error (inherited by commands).
    .configureOutput({ outputError: () => {} });
  for (const module of commandModules) module.register(program);
  throwUsageErrors(program);
  return program;
}

/** Help and version output, which commander ends with an "error" of its own. */
const HELP_CODES = new Set(["commander.help", "commander.helpDisplayed", "commander.version"]);

/**
 * A usage error found by commander (unknown option, missing required option, invalid argument),
 * with the help of the command it concerns; its code is commander's in this CLI's form
 * ("commander.unknownOption" → "usage-unknown-option").
 */
class CommandLineError extends UsageError {
  readonly help: string;

  constructor(error: CommanderError, command: CommandUnknownOpts) {
    const kind = error.code.replace(/^commander\./, "").replace(/[A-Z]/g, (c) => `-${c}`);
    super(`usage-${kind.toLowerCase()}`, error.message.replace(/^error: /, ""), { cause: error });
    this.help = command.helpInformation({ error: true });
  }
}

/** Every command turns commander's usage errors into a CommandLineError instead of exiting. */
function throwUsageErrors(command: CommandUnknownOpts): void {
  command.exitOverride((error) => {
    throw HELP_CODES.has(error.code) ? error : new CommandLineError(error, command);
  });
  for (const subcommand of command.commands) throwUsageErrors(subcommand);
}

async function main(argv: string[]): Promise<number> {
  installSignalHandlers();
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? ExitCode.ok : Number(process.exitCode);
  } catch (error) {
    // The command's name is the first word after the global flags (which take no values).
    const command = argv.slice(2).find((word) => !word.startsWith("-"));
    return reportFailure(error, argv.includes("--verbose") || argv.includes("-v"), command);
  }
}

/** What re-running an interrupted command picks up, for the commands that resume. */
const RESUMES = new Map([
  ["train", "training continues from its last epoch checkpoint, if one was saved"],
  ["sign", "crafting continues from its last saved step"],
  [
    "experiment",
    "finished stages are reused, and training and crafting continue from their last checkpoints",
  ],
]);

function reportFailure(error: unknown, verbose: boolean, command?: string): number {
  if (error instanceof CommanderError) {
    // Help and version are "errors" for commander; the usage message is already printed.
    return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  }
  const terminal = new Terminal();
  const interrupted = exitCodeAfterInterrupt();
  if (interrupted !== undefined) {
    const resumes = command === undefined ? undefined : RESUMES.get(command);
    terminal.error(
      resumes ? `Interrupted. Re-running the same command resumes: ${resumes}.` : "Interrupted.",
    );
    if (isInterruptError(error)) return interrupted; // already said
  }
  if (error instanceof TaggantsError) {
    terminal.error(`${error.message} [${error.code}]`);
    if (error instanceof CommandLineError) terminal.help(`\n${error.help}`);
    if (verbose && error.cause) terminal.error(`caused by: ${describeCause(error.cause)}`);
    return interrupted ?? error.exitCode;
  }
  // An error no command turned into a TaggantsError (an I/O error, say): its message names the
  // operation and the path; the stack is for bug reports.
  terminal.error(error instanceof Error ? error.message : String(error));
  if (verbose) terminal.error(describeCause(error));
  else terminal.error("run again with --verbose for the stack trace");
  return interrupted ?? ExitCode.runtime;
}

function describeCause(cause: unknown): string {
  return cause instanceof Error ? (cause.stack ?? cause.message) : String(cause);
}

process.exitCode = await main(process.argv);

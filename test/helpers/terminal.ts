import { PassThrough } from "node:stream";
import { Terminal, type Verbosity } from "../../src/cli/terminal.ts";

/**
 * A non-interactive terminal that keeps what it prints to stderr: `printed()` is the raw text,
 * `lines()` its non-empty lines without the timestamp that plain lines start with.
 */
export function recordingTerminal(
  verbosity: Verbosity = "normal",
  interrupt?: AbortSignal,
): {
  terminal: Terminal;
  printed: () => string;
  lines: () => string[];
} {
  const stderr = new PassThrough();
  let text = "";
  stderr.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
  const terminal = new Terminal({
    interactive: false,
    verbosity,
    stderr,
    stdout: new PassThrough(),
    interrupt,
  });
  const lines = () =>
    text
      .split("\n")
      .filter((line) => line.length > 0)
      .map((line) => line.replace(/^\S+ /, ""));
  return { terminal, printed: () => text, lines };
}

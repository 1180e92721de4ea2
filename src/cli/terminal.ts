/**
 * The one module that writes to the terminal. Everything else reports through a `Terminal`:
 * log lines go to stderr, results to stdout (JSON under `--json`), progress bars only on a TTY
 * and plain timestamped lines otherwise (CI, pipes, files).
 */
import cliProgress from "cli-progress";

export type Verbosity = "quiet" | "normal" | "verbose";

export interface TerminalOptions {
  verbosity?: Verbosity;
  json?: boolean;
  /** Defaults to whether stderr is a TTY. */
  interactive?: boolean;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  /** The command's interrupt signal: a stage that fails once it fired was interrupted. */
  interrupt?: AbortSignal;
}

export type ProgressFields = Record<string, string | number>;

export interface Progress {
  /** Set the absolute count of finished units and the fields shown beside the bar. */
  tick(done: number, fields?: ProgressFields): void;
  /** The stage finished: "done", with an optional summary. */
  stop(summary?: string): void;
  /**
   * The stage ended in an error (the caller reports the error itself): never "done";
   * "interrupted" when the user stopped the command, else "failed".
   */
  fail(): void;
}

/** Minimum time between two plain progress lines for one stage. */
const PLAIN_PROGRESS_INTERVAL_MS = 10_000;

export class Terminal {
  readonly verbosity: Verbosity;
  readonly json: boolean;
  readonly interactive: boolean;
  private readonly stdout: NodeJS.WritableStream;
  private readonly stderr: NodeJS.WritableStream;
  private activeBar: cliProgress.SingleBar | undefined;
  private readonly interrupt: AbortSignal | undefined;

  constructor(options: TerminalOptions = {}) {
    this.verbosity = options.verbosity ?? "normal";
    this.json = options.json ?? false;
    this.stdout = options.stdout ?? process.stdout;
    this.stderr = options.stderr ?? process.stderr;
    this.interrupt = options.interrupt;
    this.interactive =
      options.interactive ?? Boolean((this.stderr as NodeJS.WriteStream).isTTY && !process.env.CI);
  }

  info(message: string): void {
    if (this.verbosity !== "quiet") this.line(message);
  }

  warn(message: string): void {
    this.line(`warning: ${message}`);
  }

  error(message: string): void {
    this.line(`error: ${message}`);
  }

  debug(message: string): void {
    if (this.verbosity === "verbose") this.line(message);
  }

  /** A command's help on stderr as it is, without timestamps (after a usage error). */
  help(text: string): void {
    this.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
  }

  /**
   * A progress bar for a stage of `total` units, `alreadyDone` of which a resumed job had
   * finished before this run. Quiet mode shows nothing.
   */
  progress(label: string, total: number, options: { alreadyDone?: number } = {}): Progress {
    if (this.verbosity === "quiet") return { tick: () => {}, stop: () => {}, fail: () => {} };
    const alreadyDone = options.alreadyDone ?? 0;
    return this.interactive
      ? this.barProgress(label, total, alreadyDone)
      : this.plainProgress(label, total, alreadyDone);
  }

  /** Print a command's result: JSON on stdout with `--json`, else the human rendering. */
  result(value: unknown, render: () => string): void {
    if (this.json) this.stdout.write(JSON.stringify(value, null, 2) + "\n");
    else this.stdout.write(render() + "\n");
  }

  private line(message: string): void {
    const text = this.interactive ? message : `${new Date().toISOString()} ${message}`;
    if (this.activeBar) {
      // Keep the bar intact: clear its line, write, and let it redraw.
      this.stderr.write("\r\x1b[2K" + text + "\n");
      this.activeBar.render();
    } else {
      this.stderr.write(text + "\n");
    }
  }

  private barProgress(label: string, total: number, alreadyDone: number): Progress {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {value}/{total} {eta_formatted} {fields}`,
        stream: this.stderr as NodeJS.WriteStream,
        hideCursor: true,
        clearOnComplete: true,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, alreadyDone, { fields: "" });
    this.activeBar = bar;
    const started = Date.now();
    const close = (): void => {
      bar.stop();
      this.activeBar = undefined;
    };
    return {
      tick: (done, fields) => bar.update(done, { fields: formatFields(fields) }),
      stop: (summary) => {
        close();
        if (summary) this.info(`${label}: ${summary}`);
      },
      fail: () => {
        close();
        this.info(`${label}: ${this.howItEnded()} after ${secondsSince(started)} s`);
      },
    };
  }

  private howItEnded(): string {
    return this.interrupt?.aborted ? "interrupted" : "failed";
  }

  private plainProgress(label: string, total: number, alreadyDone: number): Progress {
    let lastPrinted = Date.now();
    let lastDone: number | undefined;
    const started = lastPrinted;
    this.info(
      alreadyDone > 0
        ? `${label}: resuming: ${alreadyDone} of ${total} done, ${total - alreadyDone} to do`
        : `${label}: started (${total} to do)`,
    );
    return {
      tick: (done, fields) => {
        const now = Date.now();
        // The same count twice (a final tick after the last batch, say) is one line, not two.
        if (done === lastDone) return;
        if (now - lastPrinted < PLAIN_PROGRESS_INTERVAL_MS && done < total) return;
        lastPrinted = now;
        lastDone = done;
        this.info(`${label}: ${done}/${total} ${formatFields(fields)}`.trimEnd());
      },
      stop: (summary) => {
        this.info(`${label}: done in ${secondsSince(started)} s${summary ? ` — ${summary}` : ""}`);
      },
      fail: () => {
        this.info(`${label}: ${this.howItEnded()} after ${secondsSince(started)} s`);
      },
    };
  }
}

function secondsSince(started: number): string {
  return ((Date.now() - started) / 1000).toFixed(1);
}

function formatFields(fields: ProgressFields | undefined): string {
  if (!fields) return "";
  return Object.entries(fields)
    .map(([name, value]) => `${name}=${typeof value === "number" ? formatNumber(value) : value}`)
    .join(" ");
}

function formatNumber(value: number): string {
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

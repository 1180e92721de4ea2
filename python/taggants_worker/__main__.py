"""Entry point: ``python -m taggants_worker --endpoint ipc://<socket path> [--watch-stdin]``.

Started by the orchestrator (``src/worker/client.ts``), which binds the endpoint first. Logs go
to stderr as JSON lines; the worker never renders anything for a person.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import stat
import sys
import threading
import time

LOG_LEVELS = ("debug", "info", "warning", "error")


class JsonLinesFormatter(logging.Formatter):
    """One JSON object a line: ``{"t", "level", "logger", "message"[, "traceback"]}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "t": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="taggants_worker", description=__doc__)
    parser.add_argument("--endpoint", required=True, help="ZeroMQ endpoint the orchestrator bound")
    parser.add_argument("--max-message-bytes", type=int, default=1 << 30)
    parser.add_argument("--heartbeat-interval-s", type=float, default=1.0)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    parser.add_argument(
        "--watch-stdin",
        action="store_true",
        help="exit when stdin reaches end-of-file, i.e. when the parent process is gone",
    )
    args = parser.parse_args(argv)
    if args.max_message_bytes <= 0 or args.heartbeat_interval_s <= 0:
        parser.error("--max-message-bytes and --heartbeat-interval-s must be positive")
    return args


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLinesFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.captureWarnings(True)


def remove_ipc_endpoint(endpoint: str) -> None:
    """Remove the socket file of an ``ipc://`` endpoint, once this worker is done with it.

    The orchestrator binds the endpoint and removes the file when it closes the wire; a parent that
    died (SIGKILL, a crash) cannot, so the exiting worker does. Only a socket file is removed.
    """
    if not endpoint.startswith("ipc://"):
        return
    path = endpoint[len("ipc://") :]
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        logging.getLogger("taggants_worker").warning("could not remove %s: %s", path, error)


def watch_stdin(endpoint: str) -> None:
    """Exit the process once stdin closes: the parent died (even by SIGKILL) or let go of us."""
    fd = sys.stdin.fileno()

    def wait_for_eof() -> None:
        # os.read, not sys.stdin: a buffered reader's lock would stall interpreter shutdown.
        while os.read(fd, 65536):
            pass
        logging.getLogger("taggants_worker").warning("stdin closed: the parent is gone; exiting")
        remove_ipc_endpoint(endpoint)
        logging.shutdown()
        os._exit(0)

    threading.Thread(target=wait_for_eof, name="stdin-watch", daemon=True).start()


# The exit status of a worker that refuses its start-up settings; the orchestrator reports it as
# a usage error (exit 2) with the worker's one-line reason.
EXIT_REFUSED_SETTINGS = 2


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    configure_logging(args.log_level)
    # Ctrl-C reaches the whole process group; the orchestrator decides what it means for us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.watch_stdin:
        watch_stdin(args.endpoint)
    started = time.perf_counter()

    # Imported here so that the stdin watcher already runs while torch loads (seconds).
    import taggants_worker.commands  # noqa: F401
    from taggants_worker.server import ServerSettings, select_device, serve

    log = logging.getLogger("taggants_worker")
    try:
        device = select_device(args.device)
    except ValueError as error:  # e.g. --device cuda without a GPU: one line, no traceback
        log.error("%s", error)
        return EXIT_REFUSED_SETTINGS
    log.info("ready in %.1f s on %s", time.perf_counter() - started, device)
    settings = ServerSettings(
        endpoint=args.endpoint,
        max_message_bytes=args.max_message_bytes,
        heartbeat_interval_s=args.heartbeat_interval_s,
    )
    try:
        code = serve(settings, device=device)
    finally:
        remove_ipc_endpoint(args.endpoint)
    log.info("shut down (exit code %d)", code)
    return code


def run() -> int:
    """``main`` with its failures logged as structured lines instead of a bare traceback."""
    try:
        return main()
    except Exception:
        logging.getLogger("taggants_worker").exception("the worker failed")
        return 1


if __name__ == "__main__":
    code = run()
    # Everything a command writes is already on disk (atomically); tearing down torch's
    # interpreter state only costs seconds on a busy machine, so leave at once.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

"""The worker's main loop: answers the orchestrator's requests over ZeroMQ (protocol version 1).

Threads: the main thread owns the DEALER socket (ZeroMQ sockets are not thread-safe): it
receives requests, cancels and shutdowns, sends heartbeats, and sends what the command thread
queues in the outbox. One command thread runs requests one at a time, in arrival order, so a
long command never stops the heartbeats that tell the orchestrator the worker is alive.
"""

from __future__ import annotations

import collections
import logging
import os
import platform
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import zmq

from taggants_worker import __version__, protocol, registry
from taggants_worker.handles import HandleRegistry
from taggants_worker.registry import Cancelled, Context

log = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class ServerSettings:
    endpoint: str
    max_message_bytes: int = protocol.DEFAULT_MAX_MESSAGE_BYTES
    heartbeat_interval_s: float = 1.0
    # How long a shutdown waits for the running command to notice its cancellation.
    shutdown_grace_s: float = 2.0


def select_device(requested: str) -> torch.device:
    """``auto``: torch's CUDA device when available, else the CPU."""
    if requested not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {requested!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' was requested, but torch sees no CUDA device; use --device cpu, or "
            "--device auto to take the GPU when there is one"
        )
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def hello_message(device: torch.device) -> protocol.Hello:
    return protocol.hello(
        worker_version=__version__,
        torch_version=torch.__version__,
        python_version=platform.python_version(),
        device=device.type,
        device_name=device_name(device),
        pid=os.getpid(),
    )


def error_info(exc: BaseException) -> protocol.ErrorInfo:
    return {
        "type": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "traceback": "".join(traceback.format_exception(exc)),
    }


class Outbox:
    """Messages queued by other threads for the main thread to send; wakes the main loop's poll."""

    def __init__(self) -> None:
        self._items: collections.deque[list[Any]] = collections.deque()
        self._condition = threading.Condition()
        self._queued = 0
        self._sent = 0
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)

    def fileno(self) -> int:
        return self._wake_read

    def put(self, frames: list[Any]) -> None:
        with self._condition:
            self._items.append(frames)
            self._queued += 1
        try:
            os.write(self._wake_write, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already; the main loop will drain everything

    def take_all(self) -> list[list[Any]]:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass
        with self._condition:
            items = list(self._items)
            self._items.clear()
        return items

    def mark_sent(self, count: int) -> None:
        with self._condition:
            self._sent += count
            self._condition.notify_all()

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything queued before this call has been sent."""
        with self._condition:
            target = self._queued
            return self._condition.wait_for(lambda: self._sent >= target, timeout=timeout_s)

    def close(self) -> None:
        os.close(self._wake_read)
        os.close(self._wake_write)


@dataclass
class _Pending:
    request_id: int
    command: str
    args: dict[str, Any]
    cancel: threading.Event = field(default_factory=threading.Event)


class Server:
    def __init__(
        self, settings: ServerSettings, *, socket: zmq.Socket, device: torch.device
    ) -> None:
        self._settings = settings
        self._socket = socket
        self._device = device
        self._handles = HandleRegistry()
        self._outbox = Outbox()
        self._condition = threading.Condition()
        self._queue: collections.deque[_Pending] = collections.deque()
        self._running: _Pending | None = None
        self._stopping = False
        # Set when a command calls sys.exit(code): the worker then ends with that code.
        self._exit_code: int | None = None
        self._executor = threading.Thread(target=self._run_commands, name="commands", daemon=True)

    def run(self) -> int:
        """Say hello, then serve until a shutdown message arrives; returns the exit code.

        A command that calls ``sys.exit(code)`` ends the worker too (after the messages it queued
        are sent); its request gets no reply, as with any other exit.
        """
        self._send(protocol.encode(hello_message(self._device)))
        self._executor.start()
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._outbox.fileno(), zmq.POLLIN)
        interval = self._settings.heartbeat_interval_s
        next_heartbeat = time.monotonic() + interval
        while not self._stopping:
            timeout_ms = max(0.0, next_heartbeat - time.monotonic()) * 1000
            ready = dict(poller.poll(timeout_ms))
            if self._socket in ready:
                self._receive_all()
            if self._outbox.fileno() in ready:
                self._send_outbox()
            if time.monotonic() >= next_heartbeat:
                self._send(protocol.encode(protocol.heartbeat(time.time())))
                next_heartbeat = time.monotonic() + interval
        self._send_outbox()  # whatever the command thread queued before the loop ended
        self._stop_commands()
        self._outbox.close()
        return self._exit_code or 0

    def _send(self, frames: Sequence[Any]) -> None:
        # copy=False: large tensor frames leave from their own memory (pyzmq copies small ones).
        self._socket.send_multipart(frames, copy=False)

    def _send_outbox(self) -> None:
        items = self._outbox.take_all()
        for frames in items:
            if frames:
                self._send(frames)
        self._outbox.mark_sent(len(items))

    def _receive_all(self) -> None:
        while True:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._dispatch(frames)

    def _dispatch(self, frames: list[zmq.Frame]) -> None:
        try:
            message = self._decode(frames)
        except (protocol.ProtocolError, protocol.MessageTooLargeError) as exc:
            log.warning("rejected a message (request %s): %s", exc.request_id, exc)
            info: protocol.ErrorInfo = {"type": type(exc).__name__, "message": str(exc)}
            self._send(protocol.encode(protocol.error(exc.request_id, info)))
            return
        kind = message["type"]
        if kind == "request":
            self._enqueue(message)  # type: ignore[arg-type]
        elif kind == "cancel":
            self._cancel(message["id"])  # type: ignore[typeddict-item]
        elif kind == "shutdown":
            log.info("shutdown requested")
            self._stopping = True
        else:
            info = {
                "type": "ProtocolError",
                "message": f"a {kind} message only travels from the worker to the orchestrator",
            }
            self._send(protocol.encode(protocol.error(message.get("id"), info)))  # type: ignore[arg-type]

    def _decode(self, frames: list[zmq.Frame]) -> protocol.Message:
        size = protocol.message_size(frames)
        limit = self._settings.max_message_bytes
        if size > limit:
            raise protocol.MessageTooLargeError(
                f"a message of {size} bytes exceeds the worker's limit of {limit} bytes; send "
                f"smaller tensors or raise maxMessageBytes",
                request_id=protocol.read_request_id(frames),
            )
        return protocol.decode(frames)

    def _enqueue(self, request: protocol.Request) -> None:
        pending = _Pending(request["id"], request["command"], request["args"])
        with self._condition:
            in_use = {p.request_id for p in self._queue}
            if self._running is not None:
                in_use.add(self._running.request_id)
            if pending.request_id in in_use:
                info: protocol.ErrorInfo = {
                    "type": "ProtocolError",
                    "message": f"request id {pending.request_id} is already in use",
                }
                self._send(protocol.encode(protocol.error(pending.request_id, info)))
                return
            self._queue.append(pending)
            self._condition.notify()

    def _cancel(self, request_id: int) -> None:
        with self._condition:
            if self._running is not None and self._running.request_id == request_id:
                self._running.cancel.set()
                log.info("cancelling running request %d", request_id)
                return
            queued = next((p for p in self._queue if p.request_id == request_id), None)
            if queued is not None:
                self._queue.remove(queued)
        if queued is None:
            log.debug("cancel for request %d, which is no longer pending", request_id)
            return
        cancelled = Cancelled(f"request {request_id} ({queued.command}) was cancelled")
        self._send(protocol.encode(protocol.error(request_id, error_info(cancelled))))

    def _run_commands(self) -> None:
        while True:
            with self._condition:
                while not self._queue and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                pending = self._queue.popleft()
                self._running = pending
            try:
                self._outbox.put(self._execute(pending))
            except SystemExit as exc:
                self._exit(pending, exc)
                return
            finally:
                with self._condition:
                    self._running = None

    def _execute(self, pending: _Pending) -> list[Any]:
        """Run one request; returns the frames of its reply or error."""
        max_bytes = self._settings.max_message_bytes
        ctx = Context(
            request_id=pending.request_id,
            command=pending.command,
            handles=self._handles,
            device=self._device,
            emit_progress=lambda event: self._outbox.put(
                protocol.encode(protocol.progress(pending.request_id, event), max_bytes=max_bytes)
            ),
            cancel_event=pending.cancel,
            flush=self._outbox.flush,
        )
        started = time.perf_counter()
        try:
            result = registry.invoke(pending.command, ctx, pending.args)
            frames = protocol.encode(
                protocol.reply(pending.request_id, result), max_bytes=max_bytes
            )
        except SystemExit:
            raise
        except BaseException as exc:  # every other failure must answer the request
            # INFO: the error goes back to the orchestrator, which decides how loud it is.
            log.info("request %d (%s) failed: %r", pending.request_id, pending.command, exc)
            return protocol.encode(protocol.error(pending.request_id, error_info(exc)))
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.debug(
            "request %d (%s) done in %.1f ms", pending.request_id, pending.command, elapsed_ms
        )
        return frames

    def _exit(self, pending: _Pending, exc: SystemExit) -> None:
        code = exc.code if isinstance(exc.code, int) else 1
        log.info(
            "request %d (%s) ended the worker with code %d",
            pending.request_id,
            pending.command,
            code,
        )
        with self._condition:
            self._exit_code = code
            self._stopping = True
        self._outbox.put([])  # wakes the main loop, which sends what is queued and returns

    def _stop_commands(self) -> None:
        with self._condition:
            self._stopping = True
            self._queue.clear()
            if self._running is not None:
                self._running.cancel.set()
            self._condition.notify_all()
        self._executor.join(timeout=self._settings.shutdown_grace_s)
        if self._executor.is_alive():
            log.warning(
                "the running command did not stop within %.1f s of the shutdown; exiting anyway",
                self._settings.shutdown_grace_s,
            )


# How long closing the socket may wait for queued messages (a last progress event) to go out.
CLOSE_LINGER_MS = 1_000


def serve(settings: ServerSettings, *, device: torch.device) -> int:
    """Connect to the orchestrator's endpoint and serve until shutdown; returns the exit code."""
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(settings.endpoint)
    try:
        return Server(settings, socket=socket, device=device).run()
    finally:
        socket.close(linger=CLOSE_LINGER_MS)
        context.term()

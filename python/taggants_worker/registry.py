"""The worker's command table and the context every command receives.

A command is a plain function registered by name; the server looks it up for each ``request``
message and calls it with a :class:`Context` and the request's arguments as keyword arguments::

    from taggants_worker.registry import command

    @command("train")
    def train(ctx, *, data: dict, model: str, epochs: int) -> dict:
        ctx.progress(epoch=1, epochs=epochs, loss=0.5)  # streams; raises Cancelled once cancelled
        handle = ctx.handles.add(net, kind="model")      # -> "model:3"
        net = ctx.handles.get(handle, kind="model")
        net.to(ctx.device)                               # torch.device: cuda when present, else cpu
        return {"metrics": {...}, "weights": tensor}     # torch tensors travel as tensors

Tensors inside the arguments arrive as CPU torch tensors. Unknown or missing arguments raise
``TypeError`` naming them, which reaches the orchestrator as a typed error.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from taggants_worker.handles import HandleRegistry

CommandFunction = Callable[..., Mapping[str, Any] | None]


class Cancelled(Exception):  # noqa: N818 - the name is the wire's error type, read by the client
    """The orchestrator cancelled the request (raised by ``ctx.progress`` and friends)."""


class Context:
    """What a running command may use: progress, cancellation, handles, the device and a logger."""

    def __init__(
        self,
        *,
        request_id: int,
        command: str,
        handles: HandleRegistry,
        device: torch.device,
        emit_progress: Callable[[dict[str, Any]], None],
        cancel_event: threading.Event | None = None,
        flush: Callable[[float], bool] | None = None,
    ) -> None:
        self.request_id = request_id
        self.command = command
        self.handles = handles
        self.device = device
        self.log = logging.getLogger(f"taggants_worker.commands.{command}")
        self._emit_progress = emit_progress
        self._cancel_event = cancel_event or threading.Event()
        self._flush = flush

    def progress(self, **event: Any) -> None:
        """Stream one progress event (a flat map of numbers and strings) before the reply.

        Raises :class:`Cancelled` when the request was cancelled, so that long loops which report
        progress stop without checking for cancellation themselves.
        """
        self.check_cancelled()
        self._emit_progress(event)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the progress events sent so far have left the worker; False on timeout.

        Only needed before something that may end the process (the events are sent by the
        server's main thread while the command runs).
        """
        return self._flush(timeout_s) if self._flush is not None else True

    @property
    def cancelled(self) -> bool:
        return self._cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise :class:`Cancelled` if the orchestrator cancelled this request."""
        if self._cancel_event.is_set():
            raise Cancelled(f"request {self.request_id} ({self.command}) was cancelled")

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; raise :class:`Cancelled` as soon as the request is cancelled."""
        if self._cancel_event.wait(timeout=seconds):
            self.check_cancelled()


@dataclass(frozen=True)
class Command:
    name: str
    function: CommandFunction
    signature: inspect.Signature

    @property
    def accepts_any_argument(self) -> bool:
        return any(p.kind is p.VAR_KEYWORD for p in self.signature.parameters.values())

    @property
    def argument_names(self) -> list[str]:
        params = list(self.signature.parameters.values())[1:]
        return [p.name for p in params if p.kind is not p.VAR_KEYWORD]

    @property
    def required_argument_names(self) -> list[str]:
        params = list(self.signature.parameters.values())[1:]
        required = (p for p in params if p.default is p.empty and p.kind is not p.VAR_KEYWORD)
        return [p.name for p in required]


_COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[CommandFunction], CommandFunction]:
    """Register the decorated function as the wire command ``name``.

    The function takes ``ctx`` first and then keyword-only arguments (or ``**args``), and returns
    a map (or None for an empty reply).
    """

    def register(function: CommandFunction) -> CommandFunction:
        if name in _COMMANDS:
            raise ValueError(
                f"command {name!r} is registered twice "
                f"({_COMMANDS[name].function.__module__} and {function.__module__})"
            )
        signature = inspect.signature(function)
        _validate_signature(name, signature)
        _COMMANDS[name] = Command(name=name, function=function, signature=signature)
        return function

    return register


def _validate_signature(name: str, signature: inspect.Signature) -> None:
    params = list(signature.parameters.values())
    if not params or params[0].kind not in (
        params[0].POSITIONAL_ONLY,
        params[0].POSITIONAL_OR_KEYWORD,
    ):
        raise TypeError(f"command {name!r} must take the context as its first argument")
    for param in params[1:]:
        if param.kind not in (param.KEYWORD_ONLY, param.VAR_KEYWORD):
            raise TypeError(
                f"command {name!r}: argument {param.name!r} must be keyword-only (put it after *)"
            )


def command_names() -> list[str]:
    return sorted(_COMMANDS)


def get_command(name: str) -> Command:
    """The command registered as ``name``; unknown names raise ``ValueError`` listing known ones."""
    found = _COMMANDS.get(name)
    if found is None:
        raise ValueError(f"unknown command {name!r}; known commands: {', '.join(command_names())}")
    return found


def invoke(name: str, ctx: Context, args: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``args`` against the command's signature, run it, and return its result map."""
    found = get_command(name)
    _check_arguments(found, args)
    result = found.function(ctx, **args)
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        raise TypeError(
            f"command {name!r} returned a {type(result).__name__}; commands must return a map"
        )
    return dict(result)


def _check_arguments(found: Command, args: Mapping[str, Any]) -> None:
    if not isinstance(args, Mapping) or not all(isinstance(key, str) for key in args):
        raise TypeError(f"command {found.name!r}: args must be a map with string keys")
    given = set(args)
    if not found.accepts_any_argument:
        unknown = sorted(given - set(found.argument_names))
        if unknown:
            raise TypeError(
                f"command {found.name!r} got unknown argument(s) {', '.join(unknown)}; "
                f"it accepts: {', '.join(found.argument_names) or 'no arguments'}"
            )
    missing = [arg for arg in found.required_argument_names if arg not in given]
    if missing:
        raise TypeError(
            f"command {found.name!r} is missing required argument(s): {', '.join(missing)}"
        )

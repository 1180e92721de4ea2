"""Core wire commands: liveness, echo, tensors kept by handle, and diagnostics.

The ``debug.*`` commands exist so that the orchestrator's handling of progress, errors, crashes,
hangs and cancellation can be exercised against a real worker (tests, ``taggants doctor``-style
checks); they touch no data.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

import torch

from taggants_worker.registry import Context, command

log = logging.getLogger(__name__)

# Exception types that ``debug.raise`` may raise, by name.
_RAISABLE: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "RuntimeError": RuntimeError,
    "TypeError": TypeError,
    "KeyError": KeyError,
    "ZeroDivisionError": ZeroDivisionError,
}


@command("ping")
def ping(ctx: Context) -> dict[str, Any]:
    return {}


@command("echo")
def echo(ctx: Context, **args: Any) -> dict[str, Any]:
    """Return the arguments unchanged; tensors make the round trip through the worker."""
    return args


@command("tensor.put")
def tensor_put(ctx: Context, *, tensor: torch.Tensor) -> dict[str, Any]:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor.put: 'tensor' must be a tensor, got {type(tensor).__name__}")
    return {"handle": ctx.handles.add(tensor, kind="tensor")}


@command("tensor.get")
def tensor_get(ctx: Context, *, handle: str) -> dict[str, Any]:
    return {"tensor": ctx.handles.get(handle, kind="tensor")}


@command("handle.free")
def handle_free(ctx: Context, *, handle: str) -> dict[str, Any]:
    ctx.handles.free(handle)
    return {}


@command("debug.progress")
def debug_progress(ctx: Context, *, count: int, interval_s: float = 0.0) -> dict[str, Any]:
    """Stream ``count`` progress events ``{step, steps}``, ``interval_s`` apart."""
    for step in range(1, count + 1):
        if interval_s > 0:
            ctx.sleep(interval_s)
        ctx.progress(step=step, steps=count)
    return {"count": count}


@command("debug.raise")
def debug_raise(ctx: Context, *, type: str = "RuntimeError", message: str = "") -> dict[str, Any]:  # noqa: A002
    """Raise the named Python exception, to check that it arrives as a typed error."""
    exception = _RAISABLE.get(type)
    if exception is None:
        raise ValueError(
            f"debug.raise: unknown exception type {type!r}; choose one of {', '.join(_RAISABLE)}"
        )
    raise exception(message)


@command("debug.sleep")
def debug_sleep(ctx: Context, *, seconds: float, progress: bool = False) -> dict[str, Any]:
    """Wait ``seconds`` (cancellable); with ``progress``, announce the wait first."""
    if progress:
        ctx.progress(stage="sleeping", seconds=seconds)
    ctx.sleep(seconds)
    return {"slept": seconds}


@command("debug.exit")
def debug_exit(ctx: Context, *, code: int = 1, message: str = "") -> dict[str, Any]:
    """End the worker with exit ``code`` mid-request, as a crash would, after logging ``message``.

    ``sys.exit`` in a command ends the worker once its queued messages are sent (see server.py).
    """
    ctx.progress(stage="exiting", code=code)
    if message:
        log.error(message)
    sys.exit(code)


@command("debug.freeze")
def debug_freeze(ctx: Context) -> dict[str, Any]:
    """Stop the whole worker process (SIGSTOP): no heartbeats, no reply, as a deadlock would."""
    ctx.progress(stage="freezing")
    ctx.flush()
    os.kill(os.getpid(), signal.SIGSTOP)
    return {}

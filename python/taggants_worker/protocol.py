"""Every message of the wire between the orchestrator and the worker (protocol version 1).

A message is multipart: frame 0 is a msgpack map (the header) whose ``type`` field names the
message, frames 1..n are raw tensor bytes (see ``tensors.py``). Field names are snake_case on
both sides; ``src/worker/protocol.ts`` is the TypeScript twin of this file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NotRequired, TypedDict

import msgpack

from taggants_worker.tensors import pack_tensors, unpack_tensors

PROTOCOL_VERSION = 1

# Default limit on one message (all frames together); the orchestrator passes its own.
DEFAULT_MAX_MESSAGE_BYTES = 1 << 30


class Hello(TypedDict):
    """Worker -> orchestrator, first message: who is answering."""

    type: Literal["hello"]
    protocol_version: int
    worker_version: str
    torch_version: str
    python_version: str
    device: Literal["cuda", "cpu"]
    device_name: str
    pid: int


class Request(TypedDict):
    """Orchestrator -> worker: run ``command`` with keyword arguments ``args``."""

    type: Literal["request"]
    id: int
    command: str
    args: dict[str, Any]


class Progress(TypedDict):
    """Worker -> orchestrator: one progress event of a running request."""

    type: Literal["progress"]
    id: int
    event: dict[str, Any]


class Reply(TypedDict):
    """Worker -> orchestrator: the request's result; ends the request."""

    type: Literal["reply"]
    id: int
    result: dict[str, Any]


class ErrorInfo(TypedDict):
    type: str  # the Python exception's class name, e.g. "ValueError"
    message: str
    traceback: NotRequired[str]


class Error(TypedDict):
    """Worker -> orchestrator: the request failed (``id`` is None if it could not be read)."""

    type: Literal["error"]
    id: int | None
    error: ErrorInfo


class Cancel(TypedDict):
    """Orchestrator -> worker: stop request ``id`` (it then ends with a ``Cancelled`` error)."""

    type: Literal["cancel"]
    id: int


class Heartbeat(TypedDict):
    """Worker -> orchestrator, every heartbeat interval: the worker's main loop is alive."""

    type: Literal["heartbeat"]
    t: float  # the worker's wall clock, seconds since the epoch


class Shutdown(TypedDict):
    """Orchestrator -> worker: cancel everything, then exit with code 0."""

    type: Literal["shutdown"]


Message = Hello | Request | Progress | Reply | Error | Cancel | Heartbeat | Shutdown

# The header fields each message type must carry, with their Python types.
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "hello": {
        "protocol_version": (int,),
        "worker_version": (str,),
        "torch_version": (str,),
        "python_version": (str,),
        "device": (str,),
        "device_name": (str,),
        "pid": (int,),
    },
    "request": {"id": (int,), "command": (str,), "args": (dict,)},
    "progress": {"id": (int,), "event": (dict,)},
    "reply": {"id": (int,), "result": (dict,)},
    "error": {"id": (int, type(None)), "error": (dict,)},
    "cancel": {"id": (int,)},
    "heartbeat": {"t": (int, float)},
    "shutdown": {},
}
MESSAGE_TYPES = tuple(_FIELDS)


class ProtocolError(ValueError):
    """A message that does not follow the protocol; ``request_id`` is set when it could be read."""

    def __init__(self, message: str, *, request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class MessageTooLargeError(ValueError):
    """A message over the configured size limit; ``request_id`` is set when it could be read."""

    def __init__(self, message: str, *, request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


def hello(**fields: Any) -> Hello:
    return {"type": "hello", "protocol_version": PROTOCOL_VERSION, **fields}  # type: ignore[typeddict-item]


def progress(request_id: int, event: Mapping[str, Any]) -> Progress:
    return {"type": "progress", "id": request_id, "event": dict(event)}


def reply(request_id: int, result: Mapping[str, Any]) -> Reply:
    return {"type": "reply", "id": request_id, "result": dict(result)}


def error(request_id: int | None, info: ErrorInfo) -> Error:
    return {"type": "error", "id": request_id, "error": info}


def heartbeat(t: float) -> Heartbeat:
    return {"type": "heartbeat", "t": t}


def encode(message: Mapping[str, Any], *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[Any]:
    """The frames of ``message``: the msgpack header, then one raw frame per tensor in it."""
    frames: list[Any] = [b""]
    header = pack_tensors(message, frames)
    frames[0] = msgpack.packb(header, use_bin_type=True)
    size = message_size(frames)
    if size > max_bytes:
        raise MessageTooLargeError(
            f"a {message.get('type')} message of {size} bytes exceeds the wire's limit of "
            f"{max_bytes} bytes; send smaller tensors (e.g. in chunks) or raise the limit "
            f"(maxMessageBytes when starting the worker)"
        )
    return frames


def message_size(frames: Sequence[Any]) -> int:
    return sum(memoryview(frame).nbytes for frame in frames)


def decode(frames: Sequence[Any]) -> Message:
    """Parse and validate a received message; tensors become CPU torch tensors over the frames."""
    if not frames:
        raise ProtocolError("empty message: expected a msgpack header frame")
    header = _unpack_header(frames[0])
    kind = header.get("type")
    if kind not in _FIELDS:
        raise ProtocolError(
            f"unknown message type {kind!r}; expected one of {', '.join(MESSAGE_TYPES)}",
            request_id=_readable_id(header),
        )
    _validate_fields(kind, header)
    try:
        return unpack_tensors(header, frames)
    except ValueError as exc:
        raise ProtocolError(str(exc), request_id=_readable_id(header)) from exc


def read_request_id(frames: Sequence[Any]) -> int | None:
    """The ``id`` of a message that will not be decoded in full, if its header can be read."""
    try:
        return _readable_id(_unpack_header(frames[0])) if frames else None
    except ProtocolError:
        return None


def _unpack_header(frame: Any) -> dict[str, Any]:
    try:
        header = msgpack.unpackb(memoryview(frame), raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(f"header frame is not valid msgpack: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError(f"header must be a msgpack map, got {type(header).__name__}")
    return header


def _validate_fields(kind: str, header: Mapping[str, Any]) -> None:
    for field, types in _FIELDS[kind].items():
        value = header.get(field)
        if field not in header or not isinstance(value, types) or isinstance(value, bool):
            expected = " or ".join("nil" if t is type(None) else t.__name__ for t in types)
            raise ProtocolError(
                f"{kind} message: field {field!r} must be {expected}, got {value!r}",
                request_id=_readable_id(header),
            )


def _readable_id(header: Mapping[str, Any]) -> int | None:
    value = header.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None

"""The worker's main loop, driven over an in-process socket as the orchestrator would."""

import contextlib
import threading
from collections.abc import Iterator

import msgpack
import pytest
import torch
import zmq

import taggants_worker.commands  # noqa: F401  (registers the core commands)
from taggants_worker import protocol
from taggants_worker.registry import Context, command
from taggants_worker.server import Server, ServerSettings


class Orchestrator:
    def __init__(self, socket: zmq.Socket) -> None:
        self.socket = socket

    def send(self, message: dict) -> None:
        self.socket.send_multipart(protocol.encode(message))

    def send_raw(self, frames: list[bytes]) -> None:
        self.socket.send_multipart(frames)

    def receive(self, *, skip_heartbeats: bool = True) -> dict:
        while True:
            assert self.socket.poll(10_000), "the worker did not answer within 10 s"
            message = protocol.decode(self.socket.recv_multipart())
            if not (skip_heartbeats and message["type"] == "heartbeat"):
                return message

    def request(self, request_id: int, command: str, **args: object) -> None:
        self.send({"type": "request", "id": request_id, "command": command, "args": args})


@contextlib.contextmanager
def running_server() -> Iterator[tuple[Orchestrator, threading.Thread, list[int]]]:
    """A server on its own thread; yields our end of the wire, the thread and its exit code."""
    context = zmq.Context()
    endpoint = f"inproc://worker-{id(context)}"
    ours = context.socket(zmq.DEALER)
    ours.bind(endpoint)
    theirs = context.socket(zmq.DEALER)
    theirs.connect(endpoint)
    settings = ServerSettings(endpoint=endpoint, heartbeat_interval_s=0.05, max_message_bytes=4096)
    server = Server(settings, socket=theirs, device=torch.device("cpu"))
    exit_codes: list[int] = []
    thread = threading.Thread(target=lambda: exit_codes.append(server.run()))
    thread.start()
    orchestrator = Orchestrator(ours)
    assert orchestrator.receive()["type"] == "hello"
    try:
        yield orchestrator, thread, exit_codes
    finally:
        if thread.is_alive():
            orchestrator.send({"type": "shutdown"})
        thread.join(timeout=10)
        ours.close(linger=0)
        theirs.close(linger=0)
        context.term()
    assert not thread.is_alive(), "the server did not stop after a shutdown message"


@pytest.fixture
def orchestrator() -> Iterator[Orchestrator]:
    with running_server() as (orchestrator, _, exit_codes):
        yield orchestrator
    assert exit_codes == [0]


def test_a_command_calling_sys_exit_ends_the_server_with_its_code() -> None:
    with running_server() as (orchestrator, thread, exit_codes):
        orchestrator.request(1, "debug.exit", code=3)
        assert orchestrator.receive() == {
            "type": "progress",
            "id": 1,
            "event": {"stage": "exiting", "code": 3},
        }
        thread.join(timeout=10)
    assert exit_codes == [3]


def test_hello_carries_the_protocol_version_and_device() -> None:
    from taggants_worker.server import hello_message

    hello = hello_message(torch.device("cpu"))
    assert hello["protocol_version"] == protocol.PROTOCOL_VERSION
    assert hello["device"] == "cpu"
    assert hello["torch_version"] == torch.__version__


def test_heartbeats_flow_while_idle(orchestrator: Orchestrator) -> None:
    assert orchestrator.receive(skip_heartbeats=False)["type"] == "heartbeat"


def test_progress_then_reply(orchestrator: Orchestrator) -> None:
    orchestrator.request(1, "debug.progress", count=3)
    messages = [orchestrator.receive() for _ in range(4)]
    assert [m["type"] for m in messages] == ["progress", "progress", "progress", "reply"]
    assert [m["event"]["step"] for m in messages[:3]] == [1, 2, 3]
    assert messages[3] == {"type": "reply", "id": 1, "result": {"count": 3}}


def test_a_python_exception_becomes_a_typed_error(orchestrator: Orchestrator) -> None:
    orchestrator.request(2, "debug.raise", type="KeyError", message="missing")
    error = orchestrator.receive()
    assert error["type"] == "error" and error["id"] == 2
    assert error["error"]["type"] == "KeyError"
    assert "Traceback" in error["error"]["traceback"]


def test_a_malformed_message_is_answered_and_the_server_keeps_serving(
    orchestrator: Orchestrator,
) -> None:
    orchestrator.send_raw([b"\xc1"])
    error = orchestrator.receive()
    assert error["id"] is None and error["error"]["type"] == "ProtocolError"
    orchestrator.send_raw([msgpack.packb({"type": "request", "id": 3, "command": "ping"})])
    assert orchestrator.receive()["id"] == 3
    orchestrator.request(4, "ping")
    assert orchestrator.receive() == {"type": "reply", "id": 4, "result": {}}


def test_a_request_over_the_limit_is_refused_by_the_server(orchestrator: Orchestrator) -> None:
    orchestrator.request(5, "echo", t=torch.zeros(2048))
    error = orchestrator.receive()
    assert error["id"] == 5 and error["error"]["type"] == "MessageTooLargeError"
    assert "exceeds the worker's limit of 4096 bytes" in error["error"]["message"]


@command("test.zeros")
def zeros(ctx: Context, *, count: int) -> dict:
    return {"zeros": torch.zeros(count, dtype=torch.uint8)}


def test_a_reply_over_the_limit_becomes_an_error(orchestrator: Orchestrator) -> None:
    orchestrator.request(6, "test.zeros", count=10_000)
    error = orchestrator.receive()
    assert error["id"] == 6 and error["error"]["type"] == "MessageTooLargeError"
    assert "exceeds the wire's limit of 4096 bytes" in error["error"]["message"]
    orchestrator.request(7, "test.zeros", count=10)
    assert orchestrator.receive()["result"]["zeros"].shape == (10,)


def test_cancel_stops_the_running_and_the_queued_request(orchestrator: Orchestrator) -> None:
    orchestrator.request(10, "debug.sleep", seconds=30, progress=True)
    assert orchestrator.receive()["type"] == "progress"
    orchestrator.request(11, "debug.sleep", seconds=30)
    orchestrator.send({"type": "cancel", "id": 11})
    orchestrator.send({"type": "cancel", "id": 10})
    errors = {m["id"]: m["error"]["type"] for m in (orchestrator.receive(), orchestrator.receive())}
    assert errors == {10: "Cancelled", 11: "Cancelled"}
    orchestrator.request(12, "ping")
    assert orchestrator.receive()["id"] == 12


def test_a_duplicate_request_id_is_refused(orchestrator: Orchestrator) -> None:
    orchestrator.request(20, "debug.sleep", seconds=30, progress=True)
    assert orchestrator.receive()["type"] == "progress"
    orchestrator.request(20, "ping")
    error = orchestrator.receive()
    assert error["id"] == 20 and "already in use" in error["error"]["message"]
    orchestrator.send({"type": "cancel", "id": 20})
    assert orchestrator.receive()["error"]["type"] == "Cancelled"

"""The worker process: it removes its ipc endpoint's socket file when it exits."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from taggants_worker import protocol


@pytest.fixture
def bound_endpoint(tmp_path: Path) -> Iterator[tuple[zmq.Socket, Path]]:
    """The orchestrator's side: a DEALER bound to an ipc file in the test's own folder."""
    path = tmp_path / "wire.ipc"
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(f"ipc://{path}")
    try:
        yield socket, path
    finally:
        socket.close(linger=0)
        context.term()
        path.unlink(missing_ok=True)


def start_worker(path: Path) -> subprocess.Popen:
    endpoint = f"ipc://{path}"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taggants_worker",
            "--endpoint",
            endpoint,
            "--device",
            "cpu",
            "--watch-stdin",
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def wait_for_hello(socket: zmq.Socket) -> None:
    assert socket.poll(120_000), "the worker did not say hello within 120 s"
    assert protocol.decode(socket.recv_multipart())["type"] == "hello"


@pytest.mark.parametrize("ending", ["shutdown message", "parent gone (stdin closed)"])
def test_the_worker_removes_its_ipc_socket_file_when_it_exits(
    bound_endpoint: tuple[zmq.Socket, Path], ending: str
) -> None:
    socket, path = bound_endpoint
    worker = start_worker(path)
    try:
        wait_for_hello(socket)
        assert path.exists()
        if ending == "shutdown message":
            socket.send_multipart(protocol.encode({"type": "shutdown"}))
        else:
            worker.stdin.close()
        assert worker.wait(timeout=60) == 0
    finally:
        worker.kill()
        worker.wait()
    assert not path.exists(), f"{path} was left behind after a {ending}"


def test_a_device_torch_does_not_have_is_refused_in_one_line_with_exit_status_2(
    tmp_path: Path,
) -> None:
    from taggants_worker.__main__ import EXIT_REFUSED_SETTINGS

    endpoint = f"ipc://{tmp_path / 'wire.ipc'}"
    result = subprocess.run(
        [sys.executable, "-m", "taggants_worker", "--endpoint", endpoint, "--device", "cuda"],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},  # no GPU, even on a machine with one
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == EXIT_REFUSED_SETTINGS == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "use --device cpu" in lines[0], lines

"""The floor for bench/wire.bench.ts: a Python <-> Python pyzmq echo of the same frames.

Two processes over ipc://, raw frames, zero-copy on both sides (``copy=False``): the client
sends a small header frame plus a payload frame of N bytes and times the round trip. Prints one
JSON object: ``{"<bytes>": {"times_ms": [...], "median_ms": ..., "mb_per_s": ...}, ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import zmq


def serve(endpoint: str) -> None:
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    socket.send(b"ready")
    while True:
        frames = socket.recv_multipart(copy=False)
        if frames[0].bytes == b"stop":
            return
        socket.send_multipart(frames, copy=False)


def measure(socket: zmq.Socket, size: int, repeats: int, warmup: int) -> dict[str, object]:
    payload = np.random.default_rng(0).integers(0, 256, size=size, dtype=np.uint8)
    header = b"\x83\xa4type\xa7request\xa2id\x01\xa4args\x80"  # a msgpack map, as the wire sends
    times = []
    for index in range(warmup + repeats):
        started = time.perf_counter()
        socket.send_multipart([header, payload], copy=False)
        reply = socket.recv_multipart(copy=False)
        elapsed = time.perf_counter() - started
        assert len(reply[1]) == size, "the echo lost bytes"
        if index >= warmup:
            times.append(elapsed)
    median = statistics.median(times)
    return {
        "times_ms": [t * 1e3 for t in times],
        "median_ms": median * 1e3,
        "mb_per_s": size / 1e6 / median,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", metavar="ENDPOINT")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4 << 20, 64 << 20])
    parser.add_argument("--repeats", type=int, nargs="+", default=[20, 5])
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    socket_path = os.path.join(tempfile.gettempdir(), f"taggants-echo-{os.getpid()}.ipc")
    endpoint = f"ipc://{socket_path}"
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(endpoint)
    server = subprocess.Popen([sys.executable, __file__, "--serve", endpoint])
    try:
        assert socket.recv() == b"ready"
        results = {
            str(size): measure(socket, size, repeats, warmup=2)
            for size, repeats in zip(args.sizes, args.repeats, strict=True)
        }
        socket.send(b"stop")
    finally:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        socket.close(linger=0)
        context.term()
        if os.path.exists(socket_path):
            os.unlink(socket_path)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

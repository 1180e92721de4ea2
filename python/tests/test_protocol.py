"""The wire codec: every dtype bit-exact, zero-copy receive, and malformed messages rejected."""

import msgpack
import numpy as np
import pytest
import torch

from taggants_worker import protocol
from taggants_worker.tensors import DTYPES, TensorDecodeError, pack_tensors, unpack_tensors


def random_tensor(dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    itemsize = torch.empty((), dtype=dtype).element_size()
    count = int(np.prod(shape)) if shape else 1
    drawn = np.random.default_rng(0).integers(0, 256, size=count * itemsize, dtype=np.uint8)
    raw = np.frombuffer(bytearray(drawn.tobytes()), dtype=np.uint8)
    if dtype == torch.bool:
        raw &= 1
    return torch.from_numpy(raw).view(dtype).reshape(shape)


def round_trip(message: dict) -> dict:
    frames = [bytearray(memoryview(f)) for f in protocol.encode(message)]
    return protocol.decode(frames)


@pytest.mark.parametrize("name", list(DTYPES))
@pytest.mark.parametrize("shape", [(), (0,), (3, 5), (2, 1, 4)])
def test_every_dtype_round_trips_bit_exactly(name: str, shape: tuple[int, ...]) -> None:
    tensor = random_tensor(DTYPES[name], shape)
    back = round_trip(protocol.reply(1, {"t": tensor}))["result"]["t"]
    assert back.dtype == tensor.dtype
    assert tuple(back.shape) == shape
    assert (
        back.reshape(-1).view(torch.uint8).tolist() == tensor.reshape(-1).view(torch.uint8).tolist()
    )


def test_non_contiguous_and_numpy_inputs_travel_as_their_values() -> None:
    matrix = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    result = round_trip(protocol.reply(1, {"t": matrix.t(), "n": np.arange(3, dtype=np.int16)}))
    assert torch.equal(result["result"]["t"], matrix.t())
    assert torch.equal(result["result"]["n"], torch.tensor([0, 1, 2], dtype=torch.int16))


def test_a_received_tensor_views_its_frame_without_a_copy() -> None:
    frame = bytearray(np.arange(16, dtype=np.float32).tobytes())
    descriptor = {"__tensor__": 1, "dtype": "float32", "shape": [4, 4]}
    tensor = unpack_tensors(descriptor, [b"", frame])
    frame[0:4] = np.float32(99).tobytes()
    assert tensor[0, 0].item() == 99.0


def test_a_misaligned_frame_is_copied_before_it_is_viewed() -> None:
    backing = bytearray(9)
    backing[1:9] = np.array([1.5], dtype=np.float64).tobytes()
    misaligned = memoryview(backing)[1:]
    descriptor = {"__tensor__": 1, "dtype": "float64", "shape": [1]}
    assert unpack_tensors(descriptor, [b"", misaligned]).item() == 1.5


def test_tensors_nested_in_lists_and_maps_are_found() -> None:
    frames: list = [b""]
    packed = pack_tensors({"a": [torch.ones(2), {"b": torch.zeros(1, dtype=torch.int64)}]}, frames)
    assert len(frames) == 3
    assert packed["a"][1]["b"] == {"__tensor__": 2, "dtype": "int64", "shape": [1]}


def test_an_unsupported_dtype_is_refused_with_the_valid_choices() -> None:
    with pytest.raises(TypeError, match="complex64 cannot travel.*float32"):
        protocol.encode(protocol.reply(1, {"z": torch.zeros(2, dtype=torch.complex64)}))


def test_a_message_over_the_limit_is_refused() -> None:
    with pytest.raises(protocol.MessageTooLargeError, match="exceeds the wire's limit of 1000"):
        protocol.encode(protocol.reply(3, {"t": torch.zeros(1000)}), max_bytes=1000)


@pytest.mark.parametrize(
    ("frames", "match", "request_id"),
    [
        ([], "empty message", None),
        ([b"\xc1"], "not valid msgpack", None),
        ([msgpack.packb([1, 2])], "must be a msgpack map", None),
        ([msgpack.packb({"type": "gossip", "id": 4})], "unknown message type 'gossip'", 4),
        ([msgpack.packb({"type": "request", "id": 5, "command": "x"})], "'args' must be", 5),
        (
            [msgpack.packb({"type": "request", "id": True, "command": "x", "args": {}})],
            "'id'",
            None,
        ),
        ([msgpack.packb({"type": "cancel", "id": "7"})], "field 'id' must be int", None),
    ],
)
def test_malformed_messages_are_rejected(frames: list, match: str, request_id: int | None) -> None:
    with pytest.raises(protocol.ProtocolError, match=match) as caught:
        protocol.decode(frames)
    assert caught.value.request_id == request_id


@pytest.mark.parametrize(
    ("descriptor", "frame", "match"),
    [
        ({"__tensor__": 2, "dtype": "float32", "shape": [1]}, b"\0" * 4, "names frame 2"),
        ({"__tensor__": 1, "dtype": "float8", "shape": [1]}, b"\0", "unknown tensor dtype"),
        ({"__tensor__": 1, "dtype": "int32", "shape": [-1]}, b"", "list of sizes >= 0"),
        ({"__tensor__": 1, "dtype": "int32", "shape": [2]}, b"\0" * 4, "holds 4 bytes.*need 8"),
    ],
)
def test_bad_tensor_descriptors_are_rejected(descriptor: dict, frame: bytes, match: str) -> None:
    with pytest.raises(TensorDecodeError, match=match):
        unpack_tensors({"x": descriptor}, [b"", frame])
    header = msgpack.packb(
        {"type": "request", "id": 9, "command": "echo", "args": {"x": descriptor}}
    )
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.decode([header, frame])
    assert caught.value.request_id == 9


def test_read_request_id_reads_only_the_header() -> None:
    header = msgpack.packb({"type": "request", "id": 12, "args": {"x": {"__tensor__": 5}}})
    assert protocol.read_request_id([header]) == 12
    assert protocol.read_request_id([b"\xc1"]) is None

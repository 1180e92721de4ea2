"""Tensors on the wire: ``{"__tensor__": i, "dtype": d, "shape": [...]}`` plus raw frame ``i``.

Frame ``i`` (1-based, after the msgpack header) holds the tensor's C-contiguous little-endian
bytes. Receiving is zero-copy where the frame's address suits the dtype (numpy ``frombuffer``
then ``torch.from_numpy``); sending hands pyzmq a view of the tensor's own memory.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

TENSOR_KEY = "__tensor__"

# Wire dtype name -> torch dtype. The names are the protocol's; see docs/ARCHITECTURE.md.
DTYPES: dict[str, torch.dtype] = {
    "uint8": torch.uint8,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "bool": torch.bool,
}
_NAMES: dict[torch.dtype, str] = {dtype: name for name, dtype in DTYPES.items()}

if sys.byteorder != "little":  # the wire is little-endian and frames are sent as they lie
    raise RuntimeError(f"the taggants worker needs a little-endian machine, not {sys.byteorder}")


class TensorDecodeError(ValueError):
    """A tensor descriptor that does not match the protocol or its frame."""


def pack_tensors(value: Any, frames: list[Any]) -> Any:
    """Replace every torch tensor (and numpy array) in ``value`` by a descriptor.

    Appends each tensor's bytes to ``frames`` (which already holds the header slot at index 0);
    maps, lists and tuples are walked, everything else is returned unchanged.
    """
    if isinstance(value, torch.Tensor):
        return _pack_one(value, frames)
    if isinstance(value, np.ndarray):
        return _pack_one(torch.from_numpy(np.ascontiguousarray(value)), frames)
    if isinstance(value, Mapping):
        return {key: pack_tensors(item, frames) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [pack_tensors(item, frames) for item in value]
    return value


def _pack_one(tensor: torch.Tensor, frames: list[Any]) -> dict[str, Any]:
    name = _NAMES.get(tensor.dtype)
    if name is None:
        raise TypeError(
            f"tensor dtype {tensor.dtype} cannot travel on the wire; "
            f"supported dtypes: {', '.join(DTYPES)}"
        )
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    if flat.is_conj() or flat.is_neg():
        flat = flat.resolve_conj().resolve_neg()
    # A uint8 numpy view of the tensor's memory: pyzmq sends it without a copy.
    frames.append(flat.view(torch.uint8).numpy())
    return {TENSOR_KEY: len(frames) - 1, "dtype": name, "shape": list(tensor.shape)}


def unpack_tensors(value: Any, frames: Sequence[Any]) -> Any:
    """Replace every tensor descriptor in ``value`` by a CPU torch tensor viewing its frame."""
    if isinstance(value, Mapping):
        if TENSOR_KEY in value:
            return _unpack_one(value, frames)
        return {key: unpack_tensors(item, frames) for key, item in value.items()}
    if isinstance(value, list):
        return [unpack_tensors(item, frames) for item in value]
    return value


def _unpack_one(descriptor: Mapping[str, Any], frames: Sequence[Any]) -> torch.Tensor:
    index, dtype, shape = _validate_descriptor(descriptor, frame_count=len(frames))
    raw = np.frombuffer(frames[index], dtype=np.uint8)
    itemsize = torch.empty((), dtype=dtype).element_size()
    expected = itemsize * _element_count(shape)
    if raw.nbytes != expected:
        raise TensorDecodeError(
            f"tensor frame {index} holds {raw.nbytes} bytes, but dtype {_NAMES[dtype]} and shape "
            f"{list(shape)} need {expected}"
        )
    if raw.ctypes.data % itemsize != 0 or not raw.flags.writeable:
        # numpy allocations are aligned for every dtype, and commands may write to their inputs;
        # pyzmq's zero-copy frames are writable and malloc-aligned, so this copy is rare.
        raw = raw.copy()
    return torch.from_numpy(raw).view(dtype).reshape(shape)


def _validate_descriptor(
    descriptor: Mapping[str, Any], *, frame_count: int
) -> tuple[int, torch.dtype, tuple[int, ...]]:
    index = descriptor.get(TENSOR_KEY)
    if not isinstance(index, int) or isinstance(index, bool) or not 1 <= index < frame_count:
        raise TensorDecodeError(
            f"tensor descriptor names frame {index!r}, but the message has frames 1.."
            f"{frame_count - 1}"
        )
    name = descriptor.get("dtype")
    dtype = DTYPES.get(name) if isinstance(name, str) else None
    if dtype is None:
        raise TensorDecodeError(
            f"unknown tensor dtype {name!r}; expected one of {', '.join(DTYPES)}"
        )
    shape = descriptor.get("shape")
    valid_shape = isinstance(shape, list) and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    )
    if not valid_shape:
        raise TensorDecodeError(f"tensor shape must be a list of sizes >= 0, got {shape!r}")
    return index, dtype, tuple(shape)


def _element_count(shape: Sequence[int]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count

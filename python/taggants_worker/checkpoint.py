"""Checkpoints: a folder with `model.safetensors`, `checkpoint.json` and, while training,
`train_state.pt` (optimizer, scheduler and RNG state).

Serves the surrogate model (Alice loads it to craft taggants) and the suspect models (loaded
for detection or served behind an inference API). Loading never unpickles arbitrary objects:
weights come from safetensors and the training state through `torch.load(weights_only=True)`.

A checkpoint is written into a temporary sibling folder and renamed into place, so a reader
(or a resumed run after SIGKILL) sees either the previous complete checkpoint or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .models import ModelSpec, build_model

SCHEMA = "taggants.checkpoint/1"
RECORD_FILE = "checkpoint.json"
WEIGHTS_FILE = "model.safetensors"
TRAIN_STATE_FILE = "train_state.pt"


def save_checkpoint(
    out: str | Path,
    *,
    model: nn.Module,
    record: dict[str, Any],
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint folder `out` atomically; returns its path.

    `out` must be missing or an earlier checkpoint: the swap replaces the whole folder, so
    anything else at that path (a user's folder, a file) is refused rather than deleted.
    """
    out = Path(out)
    validate_checkpoint_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        save_file(_contiguous_state_dict(model), str(staging / WEIGHTS_FILE))
        if train_state is not None:
            torch.save(train_state, staging / TRAIN_STATE_FILE)
        record = {"schema": SCHEMA, **record}
        (staging / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
        _fsync_folder(staging)
        _apply_umask(staging)
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def validate_checkpoint_target(out: Path) -> None:
    """Raise ValueError unless `out` is missing or a checkpoint folder (it will be replaced)."""
    if not out.exists() and not out.is_symlink():
        return
    if out.is_dir() and not out.is_symlink() and (out / RECORD_FILE).is_file():
        return
    kind = "a file" if out.is_file() else "a folder that is not a checkpoint"
    raise ValueError(
        f"{out} is {kind}; a checkpoint is written only to a new path or over an earlier "
        f"checkpoint (a folder with {RECORD_FILE}). Choose another output path."
    )


def load_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint folder (in eval mode) and return it with its record."""
    folder = resolve_checkpoint(path)
    record = load_record(folder)
    model = build_model(ModelSpec.from_json(record["model"]))
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    return model.to(device).eval(), record


def load_record(path: str | Path) -> dict[str, Any]:
    """The parsed `checkpoint.json` of a checkpoint folder."""
    folder = resolve_checkpoint(path)
    record = json.loads((folder / RECORD_FILE).read_text())
    if record.get("schema") != SCHEMA:
        raise ValueError(
            f"{folder / RECORD_FILE} has schema {record.get('schema')!r}, expected {SCHEMA!r}"
        )
    return record


def load_train_state(path: str | Path) -> dict[str, Any] | None:
    """The optimizer/scheduler/RNG state of an unfinished run, or None when there is none."""
    file = resolve_checkpoint(path) / TRAIN_STATE_FILE
    if not file.exists():
        return None
    return torch.load(file, map_location="cpu", weights_only=True)


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Weights from a `.safetensors` file, or a `.pt`/`.pth` state dict without unpickling."""
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a state dict")
    return state


def checkpoint_exists(path: str | Path) -> bool:
    try:
        return (resolve_checkpoint(path) / RECORD_FILE).exists()
    except FileNotFoundError:
        return False


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder for `path` (a folder or its checkpoint.json).

    If a crash happened between the two renames of `_swap_in`, the folder is missing and the
    previous checkpoint sits in `.<name>.old-*`; it is moved back first.
    """
    folder = Path(path)
    if folder.name == RECORD_FILE:
        folder = folder.parent
    if not folder.exists():
        _recover_swap(folder)
    if not (folder / RECORD_FILE).exists():
        raise FileNotFoundError(f"{folder} is not a checkpoint: it has no {RECORD_FILE}")
    return folder


def _swap_in(staging: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()
    os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def _recover_swap(folder: Path) -> None:
    if not folder.parent.exists():
        return
    olds = sorted(folder.parent.glob(f".{folder.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds and (olds[-1] / RECORD_FILE).exists():
        os.replace(olds[-1], folder)


def _fsync_folder(folder: Path) -> None:
    for file in folder.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())


def _apply_umask(folder: Path) -> None:
    # mkdtemp makes a private folder; give the checkpoint the usual permissions instead.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for file in folder.iterdir():
        os.chmod(file, 0o666 & ~umask)


def _contiguous_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage; copies keep it simple and correct.
    state = model.state_dict()
    return {name: tensor.detach().to("cpu").contiguous().clone() for name, tensor in state.items()}

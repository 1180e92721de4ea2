"""Resumable state of a crafting job (METHOD.md, Signing, step 4; issue 5 "a killed signing job
resumes and ends with the same taggants").

The state holds what the optimisation loop needs to continue bit for bit: the position
(restart, steps done), the taggants, the signed-Adam state, the random generator and the best
taggants kept so far. It is written atomically (temporary file, then rename) and loaded with
`weights_only=True`. A fingerprint of the job's inputs and settings guards against resuming a
different job from a stale file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

STATE_FORMAT = "taggants.craft-state/1"


@dataclass
class CraftState:
    restart: int  # the restart in progress (0-based)
    step: int  # steps completed in that restart
    taggants: torch.Tensor | None  # float [K, n, C, H, W] in [0, 1] units; None before init
    optimizer: dict | None  # torch.optim.Adam state_dict; None before init
    generator: torch.Tensor  # torch.Generator.get_state()
    best_taggants: torch.Tensor  # float [K, n, C, H, W]
    best_objective: torch.Tensor  # float64 [K]; +inf where no restart has finished
    restart_objectives: torch.Tensor  # float64 [R, K]; NaN for restarts not finished


def fingerprint(tensors: dict[str, torch.Tensor], settings: dict) -> str:
    """SHA-256 over the inputs' bytes and the settings that change the result."""
    digest = hashlib.sha256()
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_state(path: str | os.PathLike, state: CraftState, job: str) -> None:
    """Writes `state` atomically to `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": STATE_FORMAT,
        "job": job,
        "restart": state.restart,
        "step": state.step,
        "taggants": state.taggants,
        "optimizer": state.optimizer,
        "generator": state.generator,
        "best_taggants": state.best_taggants,
        "best_objective": state.best_objective,
        "restart_objectives": state.restart_objectives,
    }
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    torch.save(payload, temporary)
    os.replace(temporary, target)


def load_state(path: str | os.PathLike, job: str) -> CraftState | None:
    """The saved state of job `job`, or None when `path` does not exist.

    Raises ValueError when the file belongs to another job or is not a crafting state.
    """
    source = Path(path)
    if not source.exists():
        return None
    payload = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise ValueError(f"{source} is not a crafting state file ({STATE_FORMAT}); remove it")
    if payload["job"] != job:
        raise ValueError(
            f"crafting state {source} belongs to a different job (other inputs, surrogate or "
            "settings); remove it or pass another state_path"
        )
    return CraftState(
        restart=int(payload["restart"]),
        step=int(payload["step"]),
        taggants=payload["taggants"],
        optimizer=payload["optimizer"],
        generator=payload["generator"],
        best_taggants=payload["best_taggants"],
        best_objective=payload["best_objective"],
        restart_objectives=payload["restart_objectives"],
    )

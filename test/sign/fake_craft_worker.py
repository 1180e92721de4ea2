"""A worker whose `craft` command is a fast stand-in, for testing the signing orchestration.

The real worker serves every other command; `craft` here returns each signing image plus a
fixed ±ε pattern (clipped to [0, 255]) and a cosine of 0.5 per key, so the TypeScript side can be
tested end to end (signing set, writers, manifest, commitment, record) without crafting;
`craft.cosine` answers 0.25 per key.
Each call appends one line to $FAKE_CRAFT_LOG when set, so tests can count calls. A crafting
seed of FAILING_SEED makes `craft` fail, as a crashed or refused crafting job would.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

import taggants_worker.commands  # noqa: F401  (registers the real commands)
from taggants_worker import registry
from taggants_worker.__main__ import main
from taggants_worker.data import DatasetSpec, open_dataset

FAILING_SEED = 999

registry._COMMANDS.pop("craft", None)
registry._COMMANDS.pop("craft.cosine", None)


@registry.command("craft")
def fake_craft(
    ctx: registry.Context,
    *,
    surrogates: list[str],
    data: dict[str, Any],
    signing_indices: torch.Tensor,
    keys: torch.Tensor,
    key_labels: torch.Tensor,
    eps_255: float,
    steps: int,
    restarts: int,
    seed: int = 0,
    **_: Any,
) -> dict[str, Any]:
    if seed == FAILING_SEED:
        raise RuntimeError(f"crafting failed (the stand-in fails for seed {FAILING_SEED})")
    if os.environ.get("FAKE_CRAFT_LOG"):
        with open(os.environ["FAKE_CRAFT_LOG"], "a") as log:
            log.write(f"craft {signing_indices.shape[0]}x{signing_indices.shape[1]}\n")
    dataset = open_dataset(DatasetSpec.from_wire(data), channels=int(keys.shape[1]))
    images = dataset.images(signing_indices.reshape(-1)).to(torch.int16)
    pattern = torch.ones_like(images)
    pattern[..., ::2] = -1
    signed = (images + pattern * int(eps_255)).clamp(0, 255).to(torch.uint8)
    for step in range(1, steps + 1):
        ctx.progress(restart=1, step=step, steps=steps, objective=0.5, cosine_mean=0.5, psnr=30.0)
    k = int(keys.shape[0])
    return {"signed": signed, "cosine": torch.full((k,), 0.5), "objective": 0.5 * k}


@registry.command("craft.cosine")
def fake_craft_cosine(
    ctx: registry.Context,
    *,
    surrogates: list[str],
    images: torch.Tensor,
    keys: torch.Tensor,
    key_labels: torch.Tensor,
    **_: Any,
) -> dict[str, Any]:
    """A cosine of 0.25 per key for images as written (the stand-in craft reports 0.5)."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[0] % keys.shape[0]:
        raise ValueError(
            f"images must be uint8 [K·n, C, H, W], got {images.dtype} {list(images.shape)}"
        )
    return {"cosine": torch.full((int(key_labels.shape[0]),), 0.25)}


if __name__ == "__main__":
    # Leave without interpreter finalisation, which can wait on threads of the early torch import.
    code = main()
    logging.shutdown()
    os._exit(code)

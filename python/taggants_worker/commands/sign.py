"""Wire commands `craft` and `craft.cosine`: taggants for a signing set (METHOD.md, Signing,
steps 3–5), and how well given signed images still match their keys.

The orchestrator chooses the keys and the signing set; `craft` loads the surrogate
checkpoint(s) and the signing images, runs `craft.craft_taggants`, and replies with the signed
uint8 images. `craft.cosine` measures the per-key gradient cosine of signed images as they will
be published (e.g. after JPEG re-encoding). The contract is the `craft` row of
docs/ARCHITECTURE.md ("Worker commands").
"""

from __future__ import annotations

from typing import Any

import torch

from taggants_worker.augment import augment_spec_from_recipe
from taggants_worker.checkpoint import load_checkpoint
from taggants_worker.craft import CraftSettings, Surrogate, craft_taggants, measure_cosine
from taggants_worker.data import DatasetSpec, open_dataset
from taggants_worker.recipes import recipe_from_json
from taggants_worker.registry import Context, command


@command("craft")
def craft(
    ctx: Context,
    *,
    surrogates: list[str],
    data: dict[str, Any],
    signing_indices: torch.Tensor,
    keys: torch.Tensor,
    key_labels: torch.Tensor,
    eps_255: float,
    steps: int = 250,
    restarts: int = 1,
    step_size: float = 0.1,
    aug_draws: int = 2,
    perceptual: str = "none",
    perceptual_weight: float = 0.0,
    seed: int = 0,
    chunk_size: int = 256,
    state_path: str | None = None,
    checkpoint_every: int = 0,
    param_prefixes: list[str] | None = None,
    ensemble: str = "mean",
) -> dict[str, Any]:
    """Craft taggants; progress {restart, restarts, step, steps, objective, objective_per_key,
    cosine_mean, eps_used, psnr}.

    signing_indices: int64 [K, n], sample indices of `data` (row i: the images of key i).
    keys: uint8 [K, C, r, r]; key_labels: int64 [K]; eps_255: ε in units of 1/255.
    Reply: signed uint8 [K·n, C, H, W] (row-major over signing_indices), cosine and
    cosine_quantised float32 [K] (unaugmented gradient cosine before / after rounding to 8
    bits), objective (sum over keys, after rounding) and objective_per_key float64 [K].
    """
    settings = CraftSettings(
        eps_255=float(eps_255),
        steps=int(steps),
        restarts=int(restarts),
        step_size=float(step_size),
        aug_draws=int(aug_draws),
        perceptual=perceptual,
        perceptual_weight=float(perceptual_weight),
        seed=int(seed),
        chunk_size=int(chunk_size),
        param_prefixes=tuple(param_prefixes) if param_prefixes is not None else None,
        ensemble=ensemble,
        state_path=state_path,
        checkpoint_every=int(checkpoint_every),
    )
    loaded = _load_surrogates(surrogates, device=ctx.device)
    images, labels = _load_signing_images(data, signing_indices, key_labels, loaded)
    result = craft_taggants(
        surrogates=[surrogate for surrogate, _ in loaded],
        images=images,
        image_labels=labels,
        keys=keys,
        key_labels=key_labels.to(torch.int64),
        settings=settings,
        on_progress=lambda event: ctx.progress(**event),
    )
    k_count, n = images.shape[:2]
    return {
        "signed": result.signed.reshape(k_count * n, *images.shape[2:]),
        "cosine": result.cosine,
        "cosine_quantised": result.cosine_quantised,
        "objective": result.objective,
        "objective_per_key": result.objective_per_key,
    }


@command("craft.cosine")
def craft_cosine(
    ctx: Context,
    *,
    surrogates: list[str],
    images: torch.Tensor,
    keys: torch.Tensor,
    key_labels: torch.Tensor,
    chunk_size: int = 256,
    param_prefixes: list[str] | None = None,
) -> dict[str, Any]:
    """Per-key cosine float32 [K] between the summed gradient of signed images and the key's
    gradient, without augmentation, averaged over the surrogates.

    images: uint8 [K·n, C, H, W], row-major by key as `craft` replies (each carries the label
    of its key); keys: uint8 [K, C, r, r]; key_labels: int64 [K].
    """
    k_count = int(key_labels.shape[0])
    if images.dim() != 4 or k_count == 0 or images.shape[0] % k_count:
        raise ValueError(
            f"images must be uint8 [K·n, C, H, W] with K = {k_count} keys, got {list(images.shape)}"
        )
    loaded = _load_surrogates(surrogates, device=ctx.device)
    per_key = images.reshape(k_count, images.shape[0] // k_count, *images.shape[1:])
    labels = key_labels.to(torch.int64)[:, None].expand(per_key.shape[:2])
    cosine = measure_cosine(
        surrogates=[surrogate for surrogate, _ in loaded],
        images=per_key,
        image_labels=labels,
        keys=keys,
        key_labels=key_labels.to(torch.int64),
        chunk_size=int(chunk_size),
        param_prefixes=tuple(param_prefixes) if param_prefixes is not None else None,
    )
    return {"cosine": cosine}


def _load_surrogates(paths: list[str], *, device: torch.device) -> list[tuple[Surrogate, dict]]:
    if not paths:
        raise ValueError("craft needs at least one surrogate checkpoint in `surrogates`, got []")
    loaded = []
    for path in paths:
        model, record = load_checkpoint(path, device=device)
        height, width = (int(v) for v in record["input_size"][-2:])
        surrogate = Surrogate(
            model=model,
            input_size=(height, width),
            augment=augment_spec_from_recipe(recipe_from_json(record["recipe"]["config"])),
            normalization=record["normalization"],
        )
        loaded.append((surrogate, record))
    first = loaded[0][1]
    for path, (_, record) in zip(paths, loaded, strict=True):
        if record["classes"] != first["classes"] or record["channels"] != first["channels"]:
            raise ValueError(
                f"surrogate {path} has {len(record['classes'])} classes and "
                f"{record['channels']} channels, unlike {paths[0]} ({len(first['classes'])} "
                f"classes, {first['channels']} channels); an ensemble needs one label space"
            )
    return loaded


def _load_signing_images(
    data: dict[str, Any],
    signing_indices: torch.Tensor,
    key_labels: torch.Tensor,
    loaded: list[tuple[Surrogate, dict]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [K, n, C, H, W] signing images and int64 [K, n] labels, checked against the keys."""
    record = loaded[0][1]
    index = torch.as_tensor(signing_indices, dtype=torch.int64)
    if index.dim() != 2 or index.shape[0] != key_labels.shape[0]:
        raise ValueError(
            f"signing_indices must be int64 [K, n] with K = {key_labels.shape[0]} keys, "
            f"got shape {list(index.shape)}"
        )
    if index.unique().numel() != index.numel():
        raise ValueError("signing_indices repeat an image; each image belongs to at most one key")
    dataset = open_dataset(DatasetSpec.from_wire(data), channels=int(record["channels"]))
    if dataset.classes != record["classes"]:
        raise ValueError(
            f"the dataset has {len(dataset.classes)} classes {dataset.classes[:5]}…, the "
            f"surrogate {len(record['classes'])} {record['classes'][:5]}…; use a surrogate "
            "trained on this dataset"
        )
    images = dataset.images(index.reshape(-1))  # [K·n, C, H, W]
    labels = dataset.labels[index.reshape(-1)].reshape(index.shape)
    wrong = (labels != key_labels.to(torch.int64)[:, None]).nonzero()
    if wrong.numel():
        k, j = (int(v) for v in wrong[0])
        raise ValueError(
            f"signing image {int(index[k, j])} of key {k} has another label than its key; a "
            "key's signing images must all carry the key's label"
        )
    return images.reshape(*index.shape, *images.shape[1:]), labels

"""Wire commands of the worker's compute: datasets, training, evaluation and prediction.

The table in docs/ARCHITECTURE.md ("Worker commands") is the contract; this module validates
the arguments and calls the library modules (`data`, `train`, `predict`, `distributed`).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from taggants_worker.checkpoint import load_checkpoint
from taggants_worker.data import DatasetSpec, ImageDataset, open_dataset
from taggants_worker.distributed import run_torchrun
from taggants_worker.predict import predict_top_k
from taggants_worker.registry import Context, command
from taggants_worker.train import evaluate, train_model

_DATASET_KIND = "dataset"


@command("dataset.open")
def dataset_open(
    ctx: Context,
    *,
    manifest: str,
    root: str,
    split: str = "train",
    overlay: str | None = None,
    channels: int | None = None,
) -> dict[str, Any]:
    """Open a dataset split and keep it in the worker; sizes are those of its first image when
    sizes vary (height/width are -1 then)."""
    spec = DatasetSpec.from_wire(
        {"manifest": manifest, "root": root, "split": split, "overlay": overlay}
    )
    dataset = open_dataset(spec, channels=channels)
    size = dataset.image_size() or (-1, -1)
    return {
        "handle": ctx.handles.add(dataset, kind=_DATASET_KIND),
        "size": len(dataset),
        "classes": dataset.classes,
        "channels": dataset.channels,
        "height": size[0],
        "width": size[1],
    }


@command("dataset.images")
def dataset_images(
    ctx: Context, *, dataset: dict[str, Any] | str, indices: torch.Tensor | list[int]
) -> dict[str, Any]:
    """uint8 images [N, C, H, W] and int64 labels [N] of the given sample indices.

    `dataset` is a wire dataset map or a handle from `dataset.open`.
    """
    opened = _dataset(ctx, dataset)
    index = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
    return {"images": opened.images(index), "labels": opened.labels[index].clone()}


@command("train")
def train(
    ctx: Context,
    *,
    data: dict[str, Any],
    model: str,
    recipe: str,
    epochs: int,
    out: str,
    seed: int = 0,
    data_seed: int = 0,
    test_data: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    channels: int | None = None,
    input_size: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
    nproc_per_node: int = 1,
) -> dict[str, Any]:
    """Train or resume; progress {epoch, epochs, step, steps, loss, lr, images_per_s}."""
    if nproc_per_node > 1:
        request = {
            "data": data,
            "test_data": test_data,
            "model": model,
            "recipe": recipe,
            "epochs": epochs,
            "out": out,
            "seed": seed,
            "data_seed": data_seed,
            "overrides": overrides,
            "channels": channels,
            "input_size": input_size,
            "model_kwargs": model_kwargs,
        }
        return run_torchrun(
            request, nproc_per_node=nproc_per_node, on_progress=lambda e: ctx.progress(**e)
        )
    return train_model(
        data=DatasetSpec.from_wire(data),
        test_data=DatasetSpec.from_wire(test_data) if test_data else None,
        model=model,
        recipe=recipe,
        epochs=epochs,
        out=out,
        seed=seed,
        data_seed=data_seed,
        overrides=overrides,
        channels=channels,
        input_size=input_size,
        model_kwargs=model_kwargs,
        device=ctx.device,
        progress=ctx.progress,
    )


@command("eval")
def eval_command(ctx: Context, *, checkpoint: str, data: dict[str, Any]) -> dict[str, Any]:
    """Top-1/top-5 accuracy (%), mean loss and image count of a checkpoint on a dataset split,
    with the epoch it holds of how many its run planned."""
    model, record = load_checkpoint(checkpoint, device=ctx.device)
    dataset = open_dataset(DatasetSpec.from_wire(data), channels=int(record["channels"]))
    if dataset.classes != record["classes"]:
        raise ValueError(
            f"the dataset's classes {dataset.classes[:5]}… differ from the checkpoint's "
            f"{record['classes'][:5]}…; evaluate on a dataset with the same classes"
        )
    batch = int(record["recipe"]["config"].get("eval_batch_size", 512))
    metrics = evaluate(model, dataset, record=record, device=ctx.device, batch_size=batch)
    return {**metrics, "epoch": int(record["epoch"]), "epochs": int(record["epochs"])}


@command("predict")
def predict(
    ctx: Context, *, checkpoint: str, images: torch.Tensor, top_k: int = 1
) -> dict[str, Any]:
    """Top-k class indices int64 [N, k], best first; nothing else of the model leaves."""
    return {"top_k": predict_top_k(checkpoint, images, top_k=top_k, device=ctx.device)}


def _dataset(ctx: Context, dataset: dict[str, Any] | str) -> ImageDataset:
    if isinstance(dataset, str):
        return ctx.handles.get(dataset, kind=_DATASET_KIND)
    spec = DatasetSpec.from_wire(dataset)
    key = (spec, os.stat(spec.manifest).st_mtime_ns)
    if key not in _recent:
        # Crafting asks for images of one dataset many times; keep the last two open.
        while len(_recent) >= 2:
            _recent.pop(next(iter(_recent)))
        _recent[key] = open_dataset(spec)
    return _recent[key]


_recent: dict[tuple[DatasetSpec, int], ImageDataset] = {}

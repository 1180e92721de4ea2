"""The plain PyTorch reference for bench/train.bench.ts.

`prepare`: write the first N Fashion-MNIST training images (and all test images) as idx files.
`loop`: train a model with a plain loop — the same timm model, batch size, data, optimiser and
per-sample augmentation (the worker's own `train_transform`) as the `simple` recipe with the
model preset's defaults — and print the images/s of the last epoch.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from timm.optim import create_optimizer_v2
from torch.nn import functional
from torch.utils.data import DataLoader, Dataset

from taggants_worker.data import read_idx
from taggants_worker.models import build_model, model_spec_for, resolve_model_name
from taggants_worker.recipes import resolve_recipe
from taggants_worker.transforms import train_transform


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes(), compresslevel=1))


def prepare(source: Path, out: Path, count: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for prefix, limit in (("train", count), ("t10k", None)):
        for kind in ("images-idx3", "labels-idx1"):
            array = read_idx(source / f"{prefix}-{kind}-ubyte.gz")[:limit]
            write_idx(out / f"{prefix}-{kind}-ubyte.gz", np.ascontiguousarray(array))


class Augmented(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def loop(data: Path, model_name: str, epochs: int, batch_size: int) -> dict[str, float]:
    images = torch.from_numpy(read_idx(data / "train-images-idx3-ubyte.gz").copy()).unsqueeze(1)
    labels = torch.from_numpy(read_idx(data / "train-labels-idx1-ubyte.gz").astype(np.int64))
    _, _, preset_recipes = resolve_model_name(model_name)
    recipe = resolve_recipe(
        "simple",
        image_size=28,
        preset_defaults=preset_recipes.get("simple"),
        overrides={"batch_size": batch_size},
    )
    spec = model_spec_for(model_name, num_classes=10, in_chans=1, img_size=28)
    torch.manual_seed(0)
    model = build_model(spec).train()
    optimizer = create_optimizer_v2(
        model,
        opt=recipe.optimizer,
        lr=recipe.scaled_lr(1),
        weight_decay=recipe.weight_decay,
        momentum=recipe.momentum,
    )
    transform = train_transform(recipe, input_size=28, channels=1, source_size=(28, 28))
    loader = DataLoader(
        Augmented(images, labels, transform),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
    )
    rate = 0.0
    for _ in range(epochs):
        started, seen = time.perf_counter(), 0
        for x, y in loader:
            x = (x.float() / 255 - 0.39) / 0.23
            loss = functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += x.shape[0]
        rate = seen / (time.perf_counter() - started)
    return {"images_per_s": rate}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["prepare", "loop"])
    parser.add_argument("--source", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--count", type=int, default=4096)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    if args.mode == "prepare":
        prepare(args.source, args.data, args.count)
    else:
        print(json.dumps(loop(args.data, args.model, args.epochs, args.batch_size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Prediction: the suspect model's black box, top-k labels for a batch of images.

Detection queries a suspect with each key image and counts top-k hits; when the suspect is a
local checkpoint, this module is its black box. Images go through the model's evaluation
preprocessing (explicit channel conversion, nearest-neighbour resize to the input size, the
normalisation used in training) and only class indices come back — no logits, no features.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import RECORD_FILE, WEIGHTS_FILE, load_checkpoint, resolve_checkpoint
from .data import convert_channels
from .transforms import Normalize, resize_nearest

PREDICT_BATCH = 256
_CACHE_SIZE = 4


class LoadedModel:
    """A checkpoint's model on a device, with its preprocessing."""

    def __init__(self, model: nn.Module, record: dict[str, Any], device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.record = record
        self.device = device
        self.channels = int(record["channels"])
        self.input_size = int(record["input_size"][0])
        self.normalize = Normalize(**record["normalization"]).to(device)
        self.num_classes = len(record["classes"])

    @torch.no_grad()
    def top_k(self, images: torch.Tensor, *, k: int) -> torch.Tensor:
        """uint8 [N, C, h, w] → int64 [N, k] class indices, best first."""
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N,C,H,W], got {images.dtype} {images.shape}")
        if not 1 <= k <= self.num_classes:
            raise ValueError(f"top_k must be in [1, {self.num_classes}], got {k}")
        results = []
        for batch in images.split(PREDICT_BATCH):
            x = convert_channels(batch, self.channels)
            x = resize_nearest(x, input_size=self.input_size)
            x = self.normalize(x.to(self.device))
            on_cuda = self.device.type == "cuda"
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=on_cuda):
                logits = self.model(x).float()
            results.append(logits.topk(k, dim=1).indices.to("cpu", torch.int64))
        if not results:
            return torch.empty((0, k), dtype=torch.int64)
        return torch.cat(results)


_loaded: dict[tuple[str, int, int], LoadedModel] = {}


def load_for_prediction(path: str | Path, *, device: torch.device) -> LoadedModel:
    """The checkpoint's model, cached while its files are unchanged (a few at a time)."""
    folder = resolve_checkpoint(path)
    stamp = os.stat(folder / RECORD_FILE).st_mtime_ns, os.stat(folder / WEIGHTS_FILE).st_mtime_ns
    key = (str(folder.resolve()), *stamp)
    if key not in _loaded:
        while len(_loaded) >= _CACHE_SIZE:
            _loaded.pop(next(iter(_loaded)))
        model, record = load_checkpoint(folder, device=device)
        _loaded[key] = LoadedModel(model, record, device)
    return _loaded[key]


def predict_top_k(
    checkpoint: str | Path, images: torch.Tensor, *, top_k: int, device: torch.device
) -> torch.Tensor:
    """Top-k class indices [N, top_k] of a checkpoint's model for uint8 images [N, C, h, w]."""
    return load_for_prediction(checkpoint, device=device).top_k(images, k=top_k)

"""Training and evaluation: Alice's surrogate model and Bob's simulated suspect models.

`train_model` reads like the run it performs: open the data, resolve the model and recipe,
resume from the checkpoint folder if one is there, train epoch by epoch (an atomic checkpoint
after each), evaluate top-1/top-5 on the test split, write the final checkpoint.

Determinism and resume: the model is initialised from `seed`; the data order of epoch e is a
permutation drawn from (`data_seed`, e) and the augmentation/Mixup randomness from (`seed`, e),
so a run resumed after a kill repeats exactly the epochs it lost and ends with the same
schedule (and, on the CPU, the same weights) as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from timm.data import Mixup
from timm.loss import BinaryCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch import nn
from torch.nn import functional

from . import __version__
from .checkpoint import (
    checkpoint_exists,
    load_record,
    load_train_state,
    save_checkpoint,
    validate_checkpoint_target,
)
from .data import DatasetSpec, ImageDataset, TensorImageDataset, open_dataset
from .distributed import SINGLE_PROCESS, DistInfo
from .models import ModelSpec, build_model, model_spec_for, normalization_for, resolve_model_name
from .recipes import RecipeConfig, resolve_recipe
from .transforms import Normalize, TransformedDataset, eval_transform, train_transform

ProgressFn = Callable[..., None]
PROGRESS_INTERVAL_S = 0.5
DEFAULT_INPUT_SIZE = 224  # for ImageFolder datasets whose images differ in size


@dataclass(frozen=True)
class TrainPlan:
    """Everything that defines a run; a checkpoint resumes only under the same plan."""

    model: ModelSpec
    recipe: RecipeConfig
    epochs: int
    seed: int
    data_seed: int
    classes: list[str]
    channels: int
    input_size: int
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model.to_json(),
            "recipe": {"name": self.recipe.name, "config": self.recipe.to_json()},
            "epochs": self.epochs,
            "seeds": {"seed": self.seed, "data_seed": self.data_seed},
            "classes": self.classes,
            "channels": self.channels,
            "input_size": [self.input_size, self.input_size],
            "normalization": normalization_for(self.channels),
            "data": self.data,
        }


def train_model(
    *,
    data: DatasetSpec,
    model: str,
    recipe: str,
    epochs: int,
    out: str | Path,
    seed: int = 0,
    data_seed: int = 0,
    test_data: DatasetSpec | None = None,
    overrides: dict[str, Any] | None = None,
    channels: int | None = None,
    input_size: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
    device: torch.device | None = None,
    progress: ProgressFn | None = None,
    dist: DistInfo = SINGLE_PROCESS,
) -> dict[str, Any]:
    """Train (or resume, or return the finished run in `out`); returns {checkpoint, metrics}.

    `model_kwargs` are passed to the timm model on top of the preset's (e.g. `depth` of a ViT).
    """
    device = device or torch.device("cpu")
    if epochs < 1:
        raise ValueError(f"epochs must be ≥ 1, got {epochs}")
    validate_checkpoint_target(Path(out))
    dataset = open_dataset(data, channels=channels)
    plan = make_plan(
        dataset=dataset,
        data=data_identity(data),
        model=model,
        recipe=recipe,
        epochs=epochs,
        seed=seed,
        data_seed=data_seed,
        overrides=overrides,
        input_size=input_size,
        model_kwargs=model_kwargs,
    )
    out = Path(out)
    start_epoch, resumed = 0, None
    if checkpoint_exists(out):
        record = load_record(out)
        check_same_plan(record, plan, out)
        if record.get("complete"):
            return {"checkpoint": str(out), "metrics": record["metrics"], "resumed": True}
        start_epoch, resumed = int(record["epoch"]), (record, load_train_state(out))

    run = TrainingRun(plan=plan, dataset=dataset, device=device, dist=dist)
    if resumed is not None:
        run.restore(out, resumed[1])
    history = list(resumed[0].get("history", [])) if resumed else []
    for epoch in range(start_epoch, epochs):
        history.append(run.train_epoch(epoch, progress=progress))
        if dist.is_main and epoch + 1 < epochs:
            run.save(out, epoch=epoch + 1, history=history, metrics={}, final=False)
        dist.barrier()

    metrics = {"train_loss": history[-1]["loss"]}
    if test_data is not None and dist.is_main:
        test_set = open_dataset(test_data, channels=plan.channels)
        metrics.update(evaluate(run.bare_model, test_set, plan=plan, device=device))
    if dist.is_main:
        run.save(out, epoch=epochs, history=history, metrics=metrics, final=True)
    result = {"checkpoint": str(out), "metrics": metrics, "resumed": start_epoch > 0}
    if dist.enabled:
        result["rank_digests"] = dist.check_same_weights(run.bare_model)
    dist.barrier()
    return result


def make_plan(
    *,
    dataset: ImageDataset,
    data: dict[str, Any],
    model: str,
    recipe: str,
    epochs: int,
    seed: int,
    data_seed: int,
    overrides: dict[str, Any] | None,
    input_size: int | None,
    model_kwargs: dict[str, Any] | None = None,
) -> TrainPlan:
    """The run's plan; `data` is what it records about the data (`data_identity`)."""
    size = dataset.image_size()
    if input_size is None:
        if size is not None and size[0] != size[1]:
            raise ValueError(f"images are {size[0]}×{size[1]}; give a square input_size")
        input_size = size[0] if size is not None else DEFAULT_INPUT_SIZE
    _, _, preset_recipes = resolve_model_name(model)
    config = resolve_recipe(
        recipe,
        image_size=input_size,
        preset_defaults=preset_recipes.get(recipe),
        overrides=overrides,
    )
    spec = model_spec_for(
        model,
        num_classes=len(dataset.classes),
        in_chans=dataset.channels,
        img_size=input_size,
        extra={"drop_path_rate": config.drop_path_rate, "init_values": config.layer_scale_init},
        kwargs=model_kwargs,
    )
    return TrainPlan(
        model=spec,
        recipe=config,
        epochs=epochs,
        seed=seed,
        data_seed=data_seed,
        classes=dataset.classes,
        channels=dataset.channels,
        input_size=input_size,
        data=data,
    )


def data_identity(spec: DatasetSpec) -> dict[str, Any]:
    summary = json.loads(Path(spec.manifest).read_text())
    identity = {"root_hash": summary["root_hash"], "split": spec.split}
    if spec.overlay is not None:
        identity["overlay"] = str(spec.overlay)
    return identity


def check_same_plan(record: dict[str, Any], plan: TrainPlan, out: Path) -> None:
    """A checkpoint folder resumes only the run that made it."""
    wanted = plan.to_json()
    for key in ("model", "recipe", "epochs", "seeds", "classes", "data"):
        have, want = _normalise(record.get(key)), _normalise(wanted[key])
        if have != want:
            raise ValueError(
                f"{out} holds a checkpoint of another run ({key} differs: "
                f"{_describe_difference(have, want)}); use another output folder or the same "
                "settings to resume"
            )


def _describe_difference(have: Any, want: Any) -> str:
    """`it has 1, this run has 3`, or for settings `hflip 0.0 → 0.5` for each one that differs.

    Values are written as compact JSON, the way `--set` takes them.
    """
    if not (isinstance(have, dict) and isinstance(want, dict)):
        return f"it has {_as_setting(have)}, this run has {_as_setting(want)}"
    return ", ".join(_changed_settings(have, want))


def _changed_settings(have: dict, want: dict, prefix: str = "") -> list[str]:
    changes = []
    for key in sorted(have.keys() | want.keys()):
        old, new = have.get(key), want.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += _changed_settings(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix}{key} {_as_setting(old)} → {_as_setting(new)}")
    return changes


def _as_setting(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class TrainingRun:
    """The model, optimiser, schedule, loss and data loader of one run, epoch by epoch."""

    def __init__(
        self, *, plan: TrainPlan, dataset: ImageDataset, device: torch.device, dist: DistInfo
    ) -> None:
        self.plan, self.dataset, self.device, self.dist = plan, dataset, device, dist
        config = plan.recipe
        torch.manual_seed(plan.seed)  # model initialisation
        self.bare_model = build_model(plan.model).to(device)
        self.channels_last = device.type == "cuda" and config.channels_last
        if self.channels_last:
            self.bare_model = self.bare_model.to(memory_format=torch.channels_last)
        self.model = dist.wrap(self.bare_model, device)
        if config.compile:
            self.model = torch.compile(self.model)
        self.normalize = Normalize(**normalization_for(plan.channels)).to(device)
        self.batches_per_epoch = len(dataset) // (config.batch_size * dist.world_size)
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"{len(dataset)} images are fewer than one batch of {config.batch_size} per "
                f"process; lower batch_size (e.g. taggants train … --set batch_size=16)"
            )
        self.optimizer = create_optimizer_v2(
            self.bare_model,
            opt=config.optimizer,
            lr=config.scaled_lr(dist.world_size),
            weight_decay=config.weight_decay,
            momentum=config.momentum,
        )
        total = plan.epochs * self.batches_per_epoch
        self.scheduler = CosineLRScheduler(
            self.optimizer,
            t_initial=total,
            lr_min=config.min_lr,
            warmup_t=int(round(config.warmup_epochs * self.batches_per_epoch)),
            warmup_lr_init=config.warmup_lr,
            t_in_epochs=False,
        )
        self.mixup = make_mixup(config, num_classes=len(plan.classes))
        self.loss_fn = make_loss(config, mixup=self.mixup is not None)
        self.transform = train_transform(
            config,
            input_size=plan.input_size,
            channels=plan.channels,
            source_size=dataset.image_size(),
        )
        self.autocast = device.type == "cuda" and config.amp

    def restore(self, out: Path, train_state: dict[str, Any] | None) -> None:
        from .checkpoint import WEIGHTS_FILE, load_state_dict_file

        if train_state is None:
            raise ValueError(f"{out} is an unfinished checkpoint without train_state.pt")
        self.bare_model.load_state_dict(load_state_dict_file(out / WEIGHTS_FILE))
        self.optimizer.load_state_dict(train_state["optimizer"])
        self.scheduler.load_state_dict(train_state["scheduler"])

    def train_epoch(self, epoch: int, *, progress: ProgressFn | None) -> dict[str, float]:
        """One pass over this process's share of the data; returns {epoch, loss, images_per_s}."""
        seed_everything(self.plan.seed * 1_000_003 + epoch)
        self.model.train()
        reporter = ProgressReporter(progress if self.dist.is_main else None)
        steps = self.batches_per_epoch
        started, images, loss_sum = time.perf_counter(), 0, torch.zeros((), device=self.device)
        for step, (x, y) in enumerate(self.batches(epoch)):
            loss = self.train_step(x, y, update=epoch * steps + step)
            loss_sum += loss.detach()
            images += x.shape[0] * self.dist.world_size
            if reporter.due():
                rate = images / (time.perf_counter() - started)
                reporter.emit(
                    epoch=epoch + 1,
                    epochs=self.plan.epochs,
                    step=step + 1,
                    steps=steps,
                    loss=float(loss.detach()),
                    lr=self.optimizer.param_groups[0]["lr"],
                    images_per_s=rate,
                )
        elapsed = time.perf_counter() - started
        mean_loss = float(self.dist.mean(loss_sum / steps))
        return {"epoch": epoch + 1, "loss": mean_loss, "images_per_s": images / elapsed}

    def train_step(self, x: torch.Tensor, y: torch.Tensor, *, update: int) -> torch.Tensor:
        x = self.normalize(x.to(self.device, non_blocking=True))
        y = y.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.mixup is not None:
            x, y = self.mixup(x, y)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.loss_fn(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.plan.recipe.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.plan.recipe.grad_clip)
        self.optimizer.step()
        self.scheduler.step_update(num_updates=update + 1)
        return loss

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of uint8 images [B, C, H, W] and labels [B] in the epoch's order."""
        order = epoch_order(len(self.dataset), data_seed=self.plan.data_seed, epoch=epoch)
        order = order[self.dist.rank :: self.dist.world_size]
        batch = self.plan.recipe.batch_size
        order = order[: self.batches_per_epoch * batch]
        loader = torch.utils.data.DataLoader(
            TransformedDataset(self.dataset, self.transform),
            batch_size=batch,
            sampler=order.tolist(),
            num_workers=self.plan.recipe.num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=True,
            generator=torch.Generator().manual_seed(self.plan.seed * 1_000_003 + epoch),
        )
        yield from loader

    def save(
        self,
        out: Path,
        *,
        epoch: int,
        history: list[dict[str, float]],
        metrics: dict[str, Any],
        final: bool,
    ) -> None:
        record = {
            **self.plan.to_json(),
            "epoch": epoch,
            "complete": final,
            "metrics": metrics,
            "history": history,
            "versions": tool_versions(),
        }
        state = None
        if not final:
            state = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
            }
        save_checkpoint(out, model=self.bare_model, record=record, train_state=state)


def make_mixup(config: RecipeConfig, *, num_classes: int) -> Mixup | None:
    if config.mixup <= 0 and config.cutmix <= 0:
        return None
    return Mixup(
        mixup_alpha=config.mixup,
        cutmix_alpha=config.cutmix,
        label_smoothing=config.label_smoothing,
        num_classes=num_classes,
    )


def make_loss(config: RecipeConfig, *, mixup: bool) -> nn.Module:
    if config.loss == "bce":
        # Mixup already folds label smoothing into its soft targets.
        return BinaryCrossEntropy(smoothing=0.0 if mixup else config.label_smoothing)
    if mixup:
        return SoftTargetCrossEntropy()
    return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


def epoch_order(size: int, *, data_seed: int, epoch: int) -> torch.Tensor:
    """The permutation of sample indices for `epoch`, from the data seed alone."""
    generator = torch.Generator().manual_seed(data_seed * 1_000_003 + epoch)
    return torch.randperm(size, generator=generator)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy (timm's Mixup draws from it) and Python's `random`."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: ImageDataset,
    *,
    plan: TrainPlan | None = None,
    record: dict[str, Any] | None = None,
    device: torch.device | None = None,
    batch_size: int = 512,
) -> dict[str, float]:
    """Top-1, top-5 accuracy (%) and mean cross-entropy of `model` on `dataset`."""
    info = plan.to_json() if plan is not None else record
    assert info is not None, "evaluate needs the run's plan or the checkpoint's record"
    device = device or next(model.parameters()).device
    input_size = int(info["input_size"][0])
    normalize = Normalize(**info["normalization"]).to(device)
    model.eval()
    k = min(5, len(info["classes"]))
    hits1 = hits5 = 0
    loss_sum = 0.0
    for x, y in eval_batches(dataset, input_size=input_size, batch_size=batch_size):
        x, y = normalize(x.to(device)), y.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x).float()
        loss_sum += float(functional.cross_entropy(logits, y, reduction="sum"))
        top = logits.topk(k, dim=1).indices  # [B, k]
        hits1 += int((top[:, 0] == y).sum())
        hits5 += int((top == y[:, None]).any(dim=1).sum())
    count = len(dataset)
    return {
        "top1": 100.0 * hits1 / count,
        "top5": 100.0 * hits5 / count,
        "loss": loss_sum / count,
        "count": count,
    }


def eval_batches(
    dataset: ImageDataset, *, input_size: int, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """uint8 batches at the model's input size, in dataset order."""
    if isinstance(dataset, TensorImageDataset) and dataset.image_size() == (input_size,) * 2:
        for start in range(0, len(dataset), batch_size):
            end = min(start + batch_size, len(dataset))
            yield dataset.tensor[start:end], dataset.labels[start:end]
        return
    loader = torch.utils.data.DataLoader(
        TransformedDataset(dataset, eval_transform(input_size=input_size)),
        batch_size=batch_size,
    )
    yield from loader


class ProgressReporter:
    """Calls `progress` at most every PROGRESS_INTERVAL_S seconds (the first call at once)."""

    def __init__(self, progress: ProgressFn | None) -> None:
        self.progress = progress
        self.last = -math.inf

    def due(self) -> bool:
        return self.progress is not None and time.monotonic() - self.last >= PROGRESS_INTERVAL_S

    def emit(self, **event: Any) -> None:
        self.last = time.monotonic()
        if self.progress is not None:
            self.progress(**event)


def tool_versions() -> dict[str, str]:
    import torchvision

    return {
        "taggants_worker": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
    }


def _normalise(value: Any) -> Any:
    return json.loads(json.dumps(value))

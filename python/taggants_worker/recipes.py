"""Training recipes: `simple` and `deit3`, as named, documented, overridable configurations.

The method trains Alice's surrogate with simple augmentation (random crop with padding or
random resized crop, horizontal flip) and tests Bob's models trained with other recipes; the
paper's "≠ augmentations" scenario is the DeiT-III recipe (3-Augment, Mixup, CutMix).

- `simple`: random crop with padding (small images) or random resized crop (≥ 64 px),
  horizontal flip, SGD with Nesterov momentum (or AdamW), cosine schedule with linear
  warm-up, cross-entropy.
- `deit3`: DeiT-III's ImageNet recipe (Touvron et al., "DeiT III: Revenge of the ViT", 2022):
  3-Augment (one of grayscale / solarise / Gaussian blur, then colour jitter 0.3), simple
  random resized crop, flip, Mixup 0.8 + CutMix 1.0 (timm `Mixup`), binary cross-entropy,
  LAMB, cosine with warm-up, drop-path 0.05 and LayerScale 1e-4 where the model has them,
  learning rate 3e-3 at batch 2048 scaled linearly with the batch size.

Adaptation to small gray images (≤ 64 px, e.g. Fashion-MNIST 28×28): the resized crop keeps
at least 25 % of the area instead of 8 %, the Gaussian blur's σ shrinks with the image
(DeiT-III's 0.1–2 px at 224 px), grayscale is a no-op on one channel and colour jitter's
saturation only acts on RGB, and LAMB runs at 1e-2 per 256 images with half an epoch of
warm-up: at DeiT-III's 3e-3 per 2048 images a compact CNN stays at chance for the few epochs a
CPU run affords (9.5 % top-1 after 2 epochs on 20 000 Fashion-MNIST images; 74.9 % after 6 with
the adapted rate). Every setting can be overridden; the resolved configuration is
recorded in the checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

RECIPES = ("simple", "deit3")
SMALL_IMAGE_PX = 64


@dataclass(frozen=True)
class RecipeConfig:
    """One recipe's settings. Learning rates are per `lr_base_batch` images (linear scaling)."""

    name: str
    # Data and augmentation.
    batch_size: int = 128
    crop: str = "pad"  # "pad": random crop with zero padding; "rrc": random resized crop
    crop_padding: int = 2  # pixels of zero padding on each side ("pad"; 0: no crop)
    rrc_scale: tuple[float, float] = (0.08, 1.0)  # area fraction range ("rrc")
    hflip: float = 0.5  # probability of a horizontal flip; 0 where flips change meaning
    three_augment: bool = False  # DeiT-III: grayscale / solarise / blur, one at random
    color_jitter: float = 0.0  # brightness, contrast and saturation strength
    mixup: float = 0.0  # Mixup alpha (0 = off)
    cutmix: float = 0.0  # CutMix alpha (0 = off)
    label_smoothing: float = 0.0
    # Optimisation.
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum), "adamw" or "lamb"
    lr: float = 0.05  # at `lr_base_batch` images per step
    lr_base_batch: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.5
    warmup_lr: float = 1e-5
    min_lr: float = 1e-5
    loss: str = "ce"  # "ce" (cross-entropy) or "bce" (binary cross-entropy on soft targets)
    grad_clip: float | None = None
    # Model regularisers (applied where the architecture has them, see models.model_spec_for).
    drop_path_rate: float | None = None
    layer_scale_init: float | None = None
    # Execution.
    num_workers: int = 0  # DataLoader worker processes (0: load in the training process)
    amp: bool = True  # bfloat16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True  # on CUDA, for convolutional models
    compile: bool = False  # torch.compile the model
    eval_batch_size: int = 512

    def scaled_lr(self, world_size: int = 1) -> float:
        """The learning rate for the global batch (batch_size × world_size), scaled linearly."""
        return self.lr * self.batch_size * world_size / self.lr_base_batch

    def to_json(self) -> dict[str, Any]:
        value = dataclasses.asdict(self)
        value["rrc_scale"] = list(self.rrc_scale)
        return value


def default_recipe(name: str, *, image_size: int) -> RecipeConfig:
    """The named recipe adapted to square-ish images of `image_size` pixels."""
    small = image_size <= SMALL_IMAGE_PX
    if name == "simple":
        return RecipeConfig(
            name="simple",
            crop="pad" if small else "rrc",
            crop_padding=2 if small else 4,
        )
    if name == "deit3":
        return RecipeConfig(
            name="deit3",
            batch_size=256 if small else 2048,
            crop="rrc",
            rrc_scale=(0.25, 1.0) if small else (0.08, 1.0),
            three_augment=True,
            color_jitter=0.3,
            mixup=0.8,
            cutmix=1.0,
            optimizer="lamb",
            lr=1e-2 if small else 3e-3,
            lr_base_batch=256 if small else 2048,
            weight_decay=0.05 if small else 0.02,
            warmup_epochs=0.5 if small else 5.0,
            warmup_lr=1e-6,
            min_lr=1e-5,
            loss="bce",
            drop_path_rate=0.05,
            layer_scale_init=1e-4,
        )
    raise ValueError(f"unknown recipe {name!r}; expected one of {RECIPES}")


def resolve_recipe(
    name: str,
    *,
    image_size: int,
    preset_defaults: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> RecipeConfig:
    """The recipe after the model preset's defaults and then the user's overrides."""
    config = default_recipe(name, image_size=image_size)
    for source in (preset_defaults or {}, overrides or {}):
        config = _apply(config, source)
    validate_recipe(config)
    return config


def validate_recipe(config: RecipeConfig) -> None:
    choices = {"crop": ("pad", "rrc"), "optimizer": ("sgd", "adamw", "lamb"), "loss": ("ce", "bce")}
    for key, valid in choices.items():
        if getattr(config, key) not in valid:
            raise ValueError(f"recipe {key} must be one of {valid}, got {getattr(config, key)!r}")
    if config.batch_size < 2:
        raise ValueError(f"batch_size must be at least 2, got {config.batch_size}")
    if (config.mixup or config.cutmix) and config.batch_size % 2:
        raise ValueError(
            f"batch_size must be even with Mixup or CutMix (timm mixes pairs), "
            f"got {config.batch_size}"
        )
    if config.crop_padding < 0:
        raise ValueError(
            f"crop_padding is a number of pixels ≥ 0 (0: no crop), got {config.crop_padding}"
        )
    low, high = config.rrc_scale
    if not 0.0 < low <= high <= 1.0:
        raise ValueError(f"rrc_scale needs 0 < low ≤ high ≤ 1, got [{low}, {high}]")
    if not 0.0 <= config.hflip <= 1.0:
        raise ValueError(f"hflip is a probability in [0, 1], got {config.hflip}")


@dataclass(frozen=True)
class AugmentationParams:
    """The geometric augmentation of a recipe, as crafting taggants needs to mirror it."""

    crop: str  # "pad" or "rrc"
    crop_padding: int  # pixels, for "pad"
    rrc_scale: tuple[float, float]
    hflip: bool


def augmentation_params(config: RecipeConfig) -> AugmentationParams:
    return AugmentationParams(
        crop=config.crop,
        crop_padding=config.crop_padding,
        rrc_scale=config.rrc_scale,
        hflip=config.hflip > 0,
    )


def recipe_from_json(value: dict[str, Any]) -> RecipeConfig:
    """The recipe recorded in a checkpoint."""
    value = dict(value)
    value["rrc_scale"] = tuple(value["rrc_scale"])
    return RecipeConfig(**value)


def _apply(config: RecipeConfig, overrides: dict[str, Any]) -> RecipeConfig:
    names = {f.name for f in dataclasses.fields(RecipeConfig)} - {"name"}
    unknown = set(overrides) - names
    if unknown:
        raise ValueError(
            f"unknown recipe settings {sorted(unknown)}; valid settings: {', '.join(sorted(names))}"
        )
    changes = {k: _area_range(v) if k == "rrc_scale" else v for k, v in overrides.items()}
    for name, value in changes.items():
        _validate_setting_type(name, value, default=getattr(config, name))
    return dataclasses.replace(config, **changes)


def _area_range(value: Any) -> tuple[float, float]:
    """`rrc_scale` as given on the wire (a list of two numbers) → a tuple."""
    numbers = isinstance(value, list | tuple) and len(value) == 2
    if not numbers or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise ValueError(
            f"recipe setting rrc_scale={value!r} should be two area fractions [low, high], "
            "e.g. --set rrc_scale=[0.25,1.0]"
        )
    return (float(value[0]), float(value[1]))


def _validate_setting_type(name: str, value: Any, *, default: Any) -> None:
    """Refuse an override whose type differs from the setting's (e.g. lr="abc")."""
    if default is None:  # the optional numeric settings (grad_clip, drop_path_rate, ...)
        ok = value is None or isinstance(value, int | float) and not isinstance(value, bool)
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):  # a count of pixels, images or workers
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(
            f"recipe setting {name}={value!r} should be of type {type(default).__name__}, "
            f"like its default {default!r}"
        )

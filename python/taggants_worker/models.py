"""Models: any timm model by name, plus the named presets the method runs on.

Serves two roles of the method: Alice's surrogate model (trained on clean data, used to craft
taggants) and Bob's suspect models (trained on signed data with other seeds, recipes and
architectures). Models are always created offline (`pretrained=False`); a local weights file
may be loaded on top.

The CPU-scale presets are a compact CNN (`taggants_cnn`, registered into timm's registry below
so it is created by name like any timm model) and a small ViT (timm's `VisionTransformer` on
28×28 inputs with 7×7 patches and average pooling). The paper-scale presets are
`deit3_small_patch16_224` (ViT-S with LayerScale), `resnet50` and `convnext_tiny`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import register_model
from torch import nn

# Mean/std used to normalise uint8 images (after scaling to [0, 1]). For one channel this is
# the average of ImageNet's three, as timm does when it adapts a model to `in_chans=1`.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalization_for(channels: int) -> dict[str, list[float]]:
    """Per-channel mean and std (of pixels in [0, 1]) for a model with `channels` inputs."""
    if channels == 3:
        return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    if channels == 1:
        return {"mean": [sum(IMAGENET_MEAN) / 3], "std": [sum(IMAGENET_STD) / 3]}
    raise ValueError(f"channels must be 1 or 3, got {channels}")


class CompactCnn(nn.Module):
    """A small VGG-style CNN for 28×28-to-64×64 images: three conv stages and a linear head.

    Shapes for a 28×28 input: [B,C,28,28] → stage 1 → [B,w0,14,14] → stage 2 → [B,w1,7,7]
    → stage 3 → [B,w2,7,7] → average pool to p×p → [B,w2·p·p] → optional hidden linear + ReLU
    → [B,hidden] → linear → [B,num_classes].
    Pooling to a small grid (p = 3) rather than to one value keeps where features are, which
    on Fashion-MNIST converges much faster, and still accepts any input size.
    There are no residual branches, so stochastic depth (drop-path) does not apply to it.
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_chans: int = 1,
        widths: tuple[int, int, int] = (16, 32, 64),
        pool_size: int = 3,
        hidden: int = 0,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        w0, w1, w2 = widths
        self.num_classes = num_classes
        self.features = nn.Sequential(
            *_conv_bn_relu(in_chans, w0),
            nn.MaxPool2d(2),
            *_conv_bn_relu(w0, w1),
            nn.MaxPool2d(2),
            *_conv_bn_relu(w1, w2),
        )
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        features = w2 * pool_size * pool_size
        self.hidden = (
            nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True))
            if hidden
            else nn.Identity()
        )
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(hidden or features, num_classes)
        # timm's helpers (e.g. resolve_data_config) read these.
        self.pretrained_cfg = {"input_size": (in_chans, 28, 28), "num_classes": num_classes}
        self.default_cfg = self.pretrained_cfg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.head(self.drop(self.hidden(x)))


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


@register_model
def taggants_cnn(pretrained: bool = False, **kwargs: Any) -> CompactCnn:
    """The compact CNN preset (see `CompactCnn`); registered so `timm.create_model` finds it."""
    if pretrained:
        raise ValueError("taggants_cnn has no pretrained weights; pass a local weights file")
    for timm_internal in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(timm_internal, None)
    if "widths" in kwargs:
        kwargs["widths"] = tuple(kwargs["widths"])
    return CompactCnn(**kwargs)


@dataclass(frozen=True)
class ModelPreset:
    """A named model: the timm name, its kwargs, and recipe settings it trains well with."""

    timm_name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    # Per recipe name: overrides applied before the user's own (e.g. AdamW for a ViT).
    recipe_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""


PRESETS: dict[str, ModelPreset] = {
    "cnn": ModelPreset(
        "taggants_cnn",
        {"widths": (16, 32, 64), "pool_size": 3, "hidden": 128},
        description="compact CNN for small gray images (CPU scale)",
    ),
    # 7×7 patches (16 tokens) and average pooling instead of a class token. Fashion-MNIST, all
    # 60 000 images, 2 CPU threads, plain loop, 5 epochs at batch 128 (218 s): 88.4 % and 87.7 %
    # (two seeds) without augmentation, 86.6 % with 1-pixel crops, 87.7 % with flips; 4×4
    # patches (49 tokens) train about half as fast per image. A schedule this short gains
    # nothing from cropping, so the preset's `simple` recipe leaves images as they are;
    # augmentation is one `--set crop_padding=2 hflip=0.5` away for longer schedules.
    "vit-small-28": ModelPreset(
        "vit_tiny_patch16_224",
        {
            "patch_size": 7,
            "embed_dim": 128,
            "depth": 4,
            "num_heads": 4,
            "mlp_ratio": 2.0,
            "class_token": False,
            "global_pool": "avg",
        },
        recipe_defaults={
            "simple": {
                "optimizer": "adamw",
                "lr": 2e-3,
                "lr_base_batch": 128,
                "batch_size": 128,
                "weight_decay": 0.05,
                "crop_padding": 0,
                "hflip": 0.0,
            }
        },
        description="small ViT with 7×7 patches and average pooling for 28×28 images (CPU scale)",
    ),
    "deit3-small": ModelPreset(
        "deit3_small_patch16_224", description="ViT-S/16 with LayerScale (paper scale)"
    ),
    "resnet50": ModelPreset("resnet50", description="ResNet-50 (paper scale)"),
    "convnext-tiny": ModelPreset("convnext_tiny", description="ConvNeXt-T (paper scale)"),
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model: recorded in checkpoint.json as `model`."""

    name: str
    kwargs: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": _jsonable(self.kwargs)}

    @staticmethod
    def from_json(value: dict[str, Any]) -> ModelSpec:
        return ModelSpec(name=str(value["name"]), kwargs=dict(value["kwargs"]))


def resolve_model_name(name: str) -> tuple[str, dict[str, Any], dict[str, dict[str, Any]]]:
    """A preset or timm name → (timm name, preset kwargs, preset recipe defaults)."""
    if name in PRESETS:
        preset = PRESETS[name]
        return preset.timm_name, dict(preset.kwargs), preset.recipe_defaults
    if timm.is_model(name):
        return name, {}, {}
    raise ValueError(
        f"unknown model {name!r}: expected a preset ({', '.join(PRESETS)}) or a timm model name "
        "(see timm.list_models())"
    )


def model_spec_for(
    name: str,
    *,
    num_classes: int,
    in_chans: int,
    img_size: int | None = None,
    extra: dict[str, Any] | None = None,
    kwargs: dict[str, Any] | None = None,
) -> ModelSpec:
    """The spec of a model for a dataset: optional kwargs only where the family accepts them.

    `kwargs` go to the model as given (after the preset's). `img_size` and entries of `extra`
    (drop-path rate, LayerScale init, ...) are kept only if
    the model's constructor takes them; CNNs, for instance, take any input size and have no
    `img_size`. What was applied is what the spec (and so the checkpoint) records.
    """
    timm_name, preset_kwargs, _ = resolve_model_name(name)
    kwargs = {**preset_kwargs, **(kwargs or {}), "num_classes": num_classes, "in_chans": in_chans}
    optional = dict(extra or {})
    if img_size is not None:
        optional["img_size"] = img_size
    accepted = accepted_kwargs(timm_name)
    for key, value in optional.items():
        if value is not None and (accepted is None or key in accepted):
            kwargs[key] = value
    return ModelSpec(timm_name, kwargs)


def accepted_kwargs(timm_name: str) -> set[str] | None:
    """Constructor keyword names of a timm model's class, or None if they cannot be listed."""
    with torch.device("meta"):  # builds the module without allocating its weights
        probe = timm.create_model(timm_name, pretrained=False, num_classes=2)
    parameters = inspect.signature(type(probe).__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return set(parameters)


def build_model(spec: ModelSpec, *, weights: str | Path | None = None) -> nn.Module:
    """Create the model offline; load a local safetensors/`.pt` weights file if given."""
    kwargs = dict(spec.kwargs)
    model = timm.create_model(spec.name, pretrained=False, **kwargs)
    if weights is not None:
        from .checkpoint import load_state_dict_file

        model.load_state_dict(load_state_dict_file(Path(weights)))
    return model


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value

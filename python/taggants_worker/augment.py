"""Differentiable data augmentation for crafting taggants (METHOD.md, Signing, step 4).

Gradient matching must see the signing images the way the surrogate's training recipe shows
them, so each crafting step draws a fresh augmentation A per image and differentiates through
it. This module implements the "crop with padding + horizontal flip" family that the simple
recipes use: pad each image by `pad` pixels, cut a window of the original size at a random
integer offset, and mirror it with probability 1/2.

Both operations are a pure re-indexing of pixels, so a single advanced-indexing gather does
them for the whole batch at once: no Python loop over images, exact pixel values (no
interpolation), and a deterministic backward pass on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional

from .recipes import RecipeConfig, augmentation_params

PAD_MODES = ("constant", "reflect", "replicate")


@dataclass(frozen=True)
class AugmentSpec:
    """Which augmentation the surrogate's recipe used.

    pad: translation range in pixels; offsets are uniform in [-pad, pad] on each axis
        (0 disables translation).
    flip: mirror horizontally with probability 1/2.
    pad_mode: how the border is filled: "constant" (zeros, as torchvision's RandomCrop
        default), "reflect" or "replicate".
    """

    pad: int = 0
    flip: bool = False
    pad_mode: str = "constant"

    def __post_init__(self) -> None:
        if self.pad < 0:
            raise ValueError(f"augmentation pad must be >= 0 pixels, got {self.pad}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(
                f"augmentation pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}"
            )

    @property
    def is_identity(self) -> bool:
        return self.pad == 0 and not self.flip


@dataclass(frozen=True)
class AugmentDraw:
    """One random draw for a batch of N images: integer offsets and flip flags, shape [N]."""

    dy: torch.Tensor  # int64 [N], in [0, 2·pad]: top row of the window in the padded image
    dx: torch.Tensor  # int64 [N], in [0, 2·pad]
    flip: torch.Tensor  # bool [N]


def draw_augmentation(spec: AugmentSpec, count: int, generator: torch.Generator) -> AugmentDraw:
    """Draws `count` independent augmentations from `generator` (CPU, so seeds reproduce)."""
    span = 2 * spec.pad + 1
    dy = torch.randint(0, span, (count,), generator=generator)
    dx = torch.randint(0, span, (count,), generator=generator)
    if spec.flip:
        flip = torch.randint(0, 2, (count,), generator=generator).bool()
    else:
        flip = torch.zeros(count, dtype=torch.bool)
    return AugmentDraw(dy=dy, dx=dx, flip=flip)


def apply_augmentation(images: torch.Tensor, draw: AugmentDraw, spec: AugmentSpec) -> torch.Tensor:
    """Applies `draw` to `images` [N, C, H, W]; differentiable with respect to `images`."""
    n, _, height, width = images.shape
    if draw.dy.shape != (n,):
        raise ValueError(f"augmentation draw is for {draw.dy.shape[0]} images, batch has {n}")
    if spec.is_identity:
        return images
    padded = images
    if spec.pad > 0:
        pads = (spec.pad, spec.pad, spec.pad, spec.pad)
        padded = functional.pad(images, pads, mode=spec.pad_mode)  # [N, C, H+2p, W+2p]

    device = images.device
    rows = draw.dy.to(device)[:, None] + torch.arange(height, device=device)  # [N, H]
    cols = torch.arange(width, device=device)
    # A flipped window reads its columns right to left.
    cols = torch.where(draw.flip.to(device)[:, None], width - 1 - cols, cols)  # [N, W]
    cols = draw.dx.to(device)[:, None] + cols
    batch = torch.arange(n, device=device)[:, None, None]  # [N, 1, 1]
    # Advanced indexing on dims 0, 2, 3 puts the broadcast index dims first: [N, H, W, C].
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def augment_spec_from_recipe(config: RecipeConfig) -> AugmentSpec:
    """The crafting augmentation mirroring a surrogate's training recipe (`RecipeConfig`).

    Supports the recipes' random crop with zero padding (torchvision's RandomCrop) and the
    horizontal flip; a random-resized-crop recipe is refused rather than approximated.
    """
    params = augmentation_params(config)
    if params.crop != "pad":
        raise ValueError(
            f"crafting mirrors the recipe's crop {params.crop!r}, but only 'pad' (random crop "
            "with zero padding) is implemented; train the surrogate with crop='pad'"
        )
    return AugmentSpec(pad=params.crop_padding, flip=params.hflip, pad_mode="constant")

"""Differentiable data augmentation for crafting taggants (METHOD.md, Signing, step 4).

Gradient matching must see the signing images the way the surrogate's training recipe shows
them, so each crafting step draws a fresh augmentation A per image and differentiates through
it. Two geometric families mirror the recipes (recipes.py), each with an optional horizontal
flip (probability 1/2):

- crop "pad": pad by `pad` pixels, cut a window of the original size at a random integer
  offset (torchvision's RandomCrop with padding). This is a pure re-indexing of pixels, so one
  advanced-indexing gather does the whole batch: exact pixel values and a deterministic
  backward pass on the CPU.
- crop "rrc": random resized crop (torchvision's RandomResizedCrop): a box of random area
  fraction in `rrc_scale` and aspect ratio in `rrc_ratio`, resized back to the image size by
  bilinear sampling (`affine_grid` + `grid_sample`, one call for the batch). Differences from
  torchvision: the box is continuous rather than whole pixels, a box that does not fit is
  clipped to the image instead of being redrawn, and there is no antialiasing (crops are
  never larger than the image, so resizing only enlarges).

No Python loop over images; draws come from a CPU torch.Generator so seeds reproduce.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional

from .recipes import RecipeConfig, augmentation_params

CROPS = ("pad", "rrc")
PAD_MODES = ("constant", "reflect", "replicate")


@dataclass(frozen=True)
class AugmentSpec:
    """Which augmentation the surrogate's recipe used.

    crop: "pad" (random crop with padding) or "rrc" (random resized crop).
    pad: translation range in pixels for "pad"; offsets are uniform in [-pad, pad] on each
        axis (0 disables translation).
    pad_mode: how "pad" fills the border: "constant" (zeros, torchvision's RandomCrop
        default), "reflect" or "replicate".
    rrc_scale: range of the box's area as a fraction of the image's, for "rrc".
    rrc_ratio: range of the box's aspect ratio (width / height), for "rrc".
    flip: mirror horizontally with probability 1/2.
    """

    crop: str = "pad"
    pad: int = 0
    pad_mode: str = "constant"
    rrc_scale: tuple[float, float] = (0.08, 1.0)
    rrc_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = False

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ValueError(f"augmentation crop must be one of {CROPS}, got {self.crop!r}")
        if self.pad < 0:
            raise ValueError(f"augmentation pad must be >= 0 pixels, got {self.pad}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(
                f"augmentation pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}"
            )
        low, high = self.rrc_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"rrc_scale must satisfy 0 < low <= high <= 1, got {self.rrc_scale}")
        if not 0 < self.rrc_ratio[0] <= self.rrc_ratio[1]:
            raise ValueError(f"rrc_ratio must satisfy 0 < low <= high, got {self.rrc_ratio}")

    @property
    def is_identity(self) -> bool:
        return self.crop == "pad" and self.pad == 0 and not self.flip


@dataclass(frozen=True)
class AugmentDraw:
    """One random draw for a batch of N images (every field has N rows).

    For "pad": dy, dx int64 in [0, 2·pad], the window's top-left corner in the padded image.
    For "rrc": box float [N, 4] = (centre x, centre y, width, height) in affine_grid's
    normalised coordinates ([-1, 1] spans the image; width 1 = the full image width).
    """

    flip: torch.Tensor  # bool [N]
    dy: torch.Tensor | None = None
    dx: torch.Tensor | None = None
    box: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.flip.shape[0])

    def rows(self, start: int, stop: int) -> AugmentDraw:
        """The draws of images [start, stop)."""

        def cut(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[start:stop]

        return AugmentDraw(
            flip=self.flip[start:stop], dy=cut(self.dy), dx=cut(self.dx), box=cut(self.box)
        )


def draw_augmentation(spec: AugmentSpec, count: int, generator: torch.Generator) -> AugmentDraw:
    """Draws `count` independent augmentations from `generator` (CPU, so seeds reproduce)."""
    if spec.crop == "pad":
        span = 2 * spec.pad + 1
        dy = torch.randint(0, span, (count,), generator=generator)
        dx = torch.randint(0, span, (count,), generator=generator)
        return AugmentDraw(flip=_draw_flips(spec, count, generator), dy=dy, dx=dx)
    return AugmentDraw(
        flip=_draw_flips(spec, count, generator), box=_draw_boxes(spec, count, generator)
    )


def _draw_flips(spec: AugmentSpec, count: int, generator: torch.Generator) -> torch.Tensor:
    if not spec.flip:
        return torch.zeros(count, dtype=torch.bool)
    return torch.randint(0, 2, (count,), generator=generator).bool()


def _draw_boxes(spec: AugmentSpec, count: int, generator: torch.Generator) -> torch.Tensor:
    """Random-resized-crop boxes float [count, 4] (cx, cy, w, h), normalised coordinates."""
    uniform = torch.rand(count, 4, generator=generator, dtype=torch.float64)
    low, high = spec.rrc_scale
    area = low + (high - low) * uniform[:, 0]  # fraction of the image
    log_low, log_high = math.log(spec.rrc_ratio[0]), math.log(spec.rrc_ratio[1])
    ratio = torch.exp(log_low + (log_high - log_low) * uniform[:, 1])  # width / height
    width = torch.sqrt(area * ratio).clamp(max=1.0)  # fraction of the image width
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    # Centres keep the box inside the image: |c| ≤ 1 − size in [-1, 1] coordinates.
    cx = (uniform[:, 2] * 2 - 1) * (1 - width)
    cy = (uniform[:, 3] * 2 - 1) * (1 - height)
    return torch.stack([cx, cy, width, height], dim=1).float()


def apply_augmentation(images: torch.Tensor, draw: AugmentDraw, spec: AugmentSpec) -> torch.Tensor:
    """Applies `draw` to `images` [N, C, H, W]; differentiable with respect to `images`."""
    if len(draw) != images.shape[0]:
        raise ValueError(
            f"augmentation draw is for {len(draw)} images, the batch has {images.shape[0]}"
        )
    if spec.is_identity:
        return images
    if spec.crop == "rrc":
        return _resized_crop(images, draw)
    return _padded_crop(images, draw, spec)


def _padded_crop(images: torch.Tensor, draw: AugmentDraw, spec: AugmentSpec) -> torch.Tensor:
    n, _, height, width = images.shape
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
    return out.permute(0, 3, 1, 2).contiguous()


def _resized_crop(images: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
    box = draw.box.to(images.device, images.dtype)  # [N, 4]
    sign = 1.0 - 2.0 * draw.flip.to(images.device, images.dtype)  # −1 mirrors the box
    theta = torch.zeros(images.shape[0], 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = box[:, 2] * sign
    theta[:, 0, 2] = box[:, 0]
    theta[:, 1, 1] = box[:, 3]
    theta[:, 1, 2] = box[:, 1]
    grid = functional.affine_grid(theta, list(images.shape), align_corners=False)
    return functional.grid_sample(
        images, grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def augment_spec_from_recipe(config: RecipeConfig) -> AugmentSpec:
    """The crafting augmentation mirroring a surrogate's training recipe (`RecipeConfig`):
    its crop ("pad" with zero padding, or "rrc" with its scale range) and flip."""
    params = augmentation_params(config)
    return AugmentSpec(
        crop=params.crop,
        pad=params.crop_padding if params.crop == "pad" else 0,
        pad_mode="constant",
        rrc_scale=tuple(params.rrc_scale),
        flip=params.hflip,
    )

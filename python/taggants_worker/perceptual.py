"""Perceptual penalty on taggants (METHOD.md, Signing, step 4: "optional perceptual penalty").

The crafting objective may add λ · P(x, x + δ) per signing image to keep taggants
inconspicuous. The default P is 1 − SSIM (kornia's implementation): structural, weight-free and
differentiable, so it needs no download. LPIPS is not offered: it needs pretrained backbone
weights, which this worker neither ships nor downloads (README, Limitations).
"""

from __future__ import annotations

from collections.abc import Callable

import kornia
import torch

PERCEPTUAL_CHOICES = ("none", "ssim")
SSIM_WINDOW = 11  # pixels; clipped to the image size for small images


PerceptualPenalty = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ssim_penalty(clean: torch.Tensor, signed: torch.Tensor) -> torch.Tensor:
    """1 − mean SSIM per image; images [N, C, H, W] in [0, 1]. Returns float [N]."""
    side = min(clean.shape[-2], clean.shape[-1])
    window = min(SSIM_WINDOW, side if side % 2 == 1 else side - 1)
    similarity = kornia.metrics.ssim(clean, signed, window, max_val=1.0)  # [N, C, H, W]
    return 1.0 - similarity.flatten(1).mean(dim=1)


def make_perceptual_penalty(kind: str) -> PerceptualPenalty | None:
    """Returns the penalty function for `kind` ("none" gives None)."""
    if kind == "none":
        return None
    if kind == "ssim":
        return ssim_penalty
    raise ValueError(f"unknown perceptual penalty {kind!r}; choose one of {PERCEPTUAL_CHOICES}")

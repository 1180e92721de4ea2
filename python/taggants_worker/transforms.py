"""Image pipelines of the recipes: training augmentation, evaluation preprocessing, normalisation.

Serves the training of the surrogate and suspect models (the method's "simple augmentation"
and DeiT-III's 3-Augment) and the suspect's black box (its evaluation preprocessing). Built
from torchvision's `transforms.v2`, applied per sample on uint8 [C, H, W] tensors; normalising
to float happens per batch on the training device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torchvision.transforms import InterpolationMode, v2

from .recipes import SMALL_IMAGE_PX, RecipeConfig

# Evaluation of images larger than the input: resize to input / EVAL_CROP_PCT, centre crop.
EVAL_CROP_PCT = 0.875


def train_transform(
    config: RecipeConfig,
    *,
    input_size: int,
    channels: int,
    source_size: tuple[int, int] | None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 [C, H, W] → augmented uint8 [C, input_size, input_size] for one sample.

    `source_size` is the (H, W) every dataset image has, or None when sizes vary.
    """
    steps: list[v2.Transform] = []
    if config.crop == "rrc":
        steps.append(v2.RandomResizedCrop(input_size, scale=config.rrc_scale, antialias=True))
    else:
        if source_size != (input_size, input_size):
            steps.append(v2.Resize(input_size, antialias=True))
            steps.append(v2.CenterCrop(input_size))
        if config.crop_padding > 0:
            steps.append(v2.RandomCrop(input_size, padding=config.crop_padding))
    if config.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(config.hflip))
    if config.three_augment:
        steps.append(three_augment(input_size=input_size, channels=channels))
    if config.color_jitter > 0:
        strength = config.color_jitter
        saturation = strength if channels == 3 else None  # saturation needs colour
        steps.append(v2.ColorJitter(brightness=strength, contrast=strength, saturation=saturation))
    return v2.Compose(steps) if steps else v2.Identity()


def three_augment(*, input_size: int, channels: int) -> v2.Transform:
    """DeiT-III's 3-Augment: grayscale, solarisation or Gaussian blur, one chosen per image.

    The blur's σ range is DeiT-III's 0.1–2 px at 224 px, scaled to the input size.
    """
    scale = max(input_size / 224, 1 / 8)
    sigma = (0.1 * scale, 2.0 * scale) if input_size <= SMALL_IMAGE_PX else (0.1, 2.0)
    kernel = 2 * max(1, round(3 * sigma[1])) + 1
    return v2.RandomChoice(
        [
            v2.Grayscale(num_output_channels=channels),
            v2.RandomSolarize(threshold=128, p=1.0),
            v2.GaussianBlur(kernel_size=kernel, sigma=sigma),
        ]
    )


def eval_transform(*, input_size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Evaluation preprocessing of one dataset image: an image already square at the input size
    is used as it is, as training uses it; any other is resized so that a centre crop of the
    input size keeps `EVAL_CROP_PCT` of it, then centre-cropped."""
    resize_and_crop = v2.Compose(
        [
            v2.Resize(int(round(input_size / EVAL_CROP_PCT)), antialias=True),
            v2.CenterCrop(input_size),
        ]
    )
    return functools.partial(_eval_image, size=(input_size, input_size), other=resize_and_crop)


def _eval_image(image: torch.Tensor, *, size: tuple[int, int], other: v2.Transform) -> torch.Tensor:
    return image if tuple(image.shape[-2:]) == size else other(image)


def resize_nearest(images: torch.Tensor, *, input_size: int) -> torch.Tensor:
    """uint8 [N, C, h, w] → [N, C, input_size, input_size] by nearest-neighbour resizing."""
    if images.shape[-2:] == (input_size, input_size):
        return images
    return v2.functional.resize(
        images, [input_size, input_size], interpolation=InterpolationMode.NEAREST_EXACT
    )


class Normalize(torch.nn.Module):
    """uint8 [N, C, H, W] → float [N, C, H, W] in the model's normalised pixel space."""

    def __init__(self, *, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() - self.mean) / self.std


class TransformedDataset(torch.utils.data.Dataset):
    """A dataset whose images pass through `transform` (labels unchanged)."""

    def __init__(self, base: torch.utils.data.Dataset, transform: Callable) -> None:
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.base[index]
        return self.transform(image), label

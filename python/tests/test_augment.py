"""Tests of the differentiable crop-with-padding and flip augmentation used while crafting."""

import dataclasses

import pytest
import torch
from torch.nn import functional

from taggants_worker.augment import (
    AugmentDraw,
    AugmentSpec,
    apply_augmentation,
    augment_spec_from_recipe,
    draw_augmentation,
)
from taggants_worker.recipes import default_recipe


def _images(n=4, channels=3, size=6):
    return torch.arange(n * channels * size * size, dtype=torch.float32).reshape(
        n, channels, size, size
    )


def _reference_crop(image, dy, dx, pad, flip):
    """Independent definition: zero-pad, cut the window at (dy, dx), mirror if asked."""
    padded = functional.pad(image, (pad, pad, pad, pad))
    height, width = image.shape[-2:]
    window = padded[:, dy : dy + height, dx : dx + width]
    return torch.flip(window, dims=[-1]) if flip else window


def test_augmentation_equals_padding_then_cropping_then_flipping_each_image():
    spec = AugmentSpec(pad=2, flip=True)
    images = _images()
    draw = AugmentDraw(
        dy=torch.tensor([0, 4, 2, 1]),
        dx=torch.tensor([3, 0, 2, 4]),
        flip=torch.tensor([False, True, True, False]),
    )
    out = apply_augmentation(images, draw, spec)
    for i in range(4):
        expected = _reference_crop(
            images[i], int(draw.dy[i]), int(draw.dx[i]), 2, bool(draw.flip[i])
        )
        assert torch.equal(out[i], expected)


def test_augmentation_without_padding_or_flip_is_the_identity():
    images = _images()
    spec = AugmentSpec()
    draw = draw_augmentation(spec, 4, torch.Generator().manual_seed(0))
    assert apply_augmentation(images, draw, spec) is images


def test_augmentation_is_differentiable_with_respect_to_the_images():
    spec = AugmentSpec(pad=2, flip=True)
    images = _images().requires_grad_(True)
    draw = draw_augmentation(spec, 4, torch.Generator().manual_seed(1))
    weights = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    (apply_augmentation(images, draw, spec) * weights).sum().backward()
    # Each output pixel reads exactly one input pixel (or padding): the gradient of a pixel is
    # the weight of the output pixel that reads it, which we recover by augmenting one-hot maps.
    assert images.grad is not None and images.grad.abs().sum() > 0
    probe = torch.zeros(1, 3, 6, 6)
    probe[0, 1, 2, 3] = 1.0
    sub = AugmentDraw(dy=draw.dy[:1], dx=draw.dx[:1], flip=draw.flip[:1])
    moved = apply_augmentation(probe, sub, spec)
    assert images.grad[0, 1, 2, 3] == pytest.approx(float((moved[0] * weights[0]).sum()))


def test_draws_differ_between_calls_and_repeat_with_the_same_seed():
    spec = AugmentSpec(pad=4, flip=True)
    generator = torch.Generator().manual_seed(3)
    first = draw_augmentation(spec, 64, generator)
    second = draw_augmentation(spec, 64, generator)
    assert not torch.equal(first.dx, second.dx)
    assert first.flip.any() and not first.flip.all()
    again = draw_augmentation(spec, 64, torch.Generator().manual_seed(3))
    assert torch.equal(first.dy, again.dy) and torch.equal(first.flip, again.flip)
    assert int(first.dy.min()) >= 0 and int(first.dy.max()) <= 8


def test_augmentation_settings_are_validated():
    with pytest.raises(ValueError, match="pad_mode"):
        AugmentSpec(pad=1, pad_mode="wrap")
    with pytest.raises(ValueError, match="pad"):
        AugmentSpec(pad=-1)


def test_the_surrogate_recipe_decides_padding_and_flip():
    spec = augment_spec_from_recipe(default_recipe("simple", image_size=28))
    assert spec == AugmentSpec(pad=2, flip=True, pad_mode="constant")
    no_flip = dataclasses.replace(default_recipe("simple", image_size=28), hflip=0.0)
    assert augment_spec_from_recipe(no_flip).flip is False
    large = augment_spec_from_recipe(default_recipe("simple", image_size=224))
    assert (large.crop, large.rrc_scale, large.flip) == ("rrc", (0.08, 1.0), True)


def test_a_full_size_resized_crop_is_the_identity_or_the_mirror_image():
    spec = AugmentSpec(crop="rrc", rrc_scale=(1.0, 1.0), rrc_ratio=(1.0, 1.0), flip=True)
    images = torch.rand(8, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    draw = draw_augmentation(spec, 8, torch.Generator().manual_seed(1))
    out = apply_augmentation(images, draw, spec)
    expected = torch.where(draw.flip[:, None, None, None], images.flip(-1), images)
    torch.testing.assert_close(out, expected)


def test_a_resized_crop_of_half_the_width_enlarges_one_half_of_the_image():
    images = torch.arange(4.0).repeat(1, 1, 4, 1)  # [1, 1, 4, 4], columns 0 1 2 3
    # Left half: centre x = −0.5, width 0.5 (normalised), full height.
    draw = AugmentDraw(flip=torch.tensor([False]), box=torch.tensor([[-0.5, 0.0, 0.5, 1.0]]))
    out = apply_augmentation(images, draw, AugmentSpec(crop="rrc"))
    # The box spans pixels 0 and 1, i.e. [0, 2) in pixel units; four output pixels sample it at
    # −0.25 (clamped to the border: 0), 0.25, 0.75 and 1.25, interpolated linearly.
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([0.0, 0.25, 0.75, 1.25]))


def test_resized_crops_are_differentiable_and_differ_between_draws():
    spec = AugmentSpec(crop="rrc", rrc_scale=(0.25, 1.0), flip=True)
    images = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    images.requires_grad_(True)
    generator = torch.Generator().manual_seed(2)
    first = draw_augmentation(spec, 16, generator)
    second = draw_augmentation(spec, 16, generator)
    assert not torch.equal(first.box, second.box)
    area = first.box[:, 2] * first.box[:, 3]
    assert float(area.min()) >= 0.25 - 1e-6 and float(area.max()) <= 1.0
    assert (first.box[:, :2].abs() <= 1 - first.box[:, 2:] + 1e-6).all()  # inside the image
    apply_augmentation(images, first, spec).square().sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0

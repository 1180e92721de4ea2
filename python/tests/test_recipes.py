"""Recipes: named configurations, overrides, linear scaling, and a few steps that learn."""

from __future__ import annotations

import pytest
import torch
from manifest_builder import write_idx_dataset

from taggants_worker.data import DatasetSpec, open_dataset
from taggants_worker.distributed import SINGLE_PROCESS
from taggants_worker.models import resolve_model_name
from taggants_worker.recipes import augmentation_params, resolve_recipe
from taggants_worker.train import TrainingRun, data_identity, make_plan, seed_everything
from taggants_worker.transforms import train_transform

torch.set_num_threads(1)


def test_deit3_scales_its_learning_rate_linearly_with_the_batch():
    paper = resolve_recipe("deit3", image_size=224)
    assert (paper.batch_size, paper.optimizer, paper.loss) == (2048, "lamb", "bce")
    assert (paper.mixup, paper.cutmix, paper.color_jitter) == (0.8, 1.0, 0.3)
    assert paper.scaled_lr() == pytest.approx(3e-3)
    small = resolve_recipe("deit3", image_size=28, overrides={"batch_size": 512})
    assert small.scaled_lr() == pytest.approx(2e-2)
    assert small.scaled_lr(world_size=4) == pytest.approx(8e-2)


def test_simple_crops_with_padding_on_small_images_and_resized_crops_on_large_ones():
    assert augmentation_params(resolve_recipe("simple", image_size=28)).crop == "pad"
    large = augmentation_params(resolve_recipe("simple", image_size=224))
    assert large.crop == "rrc" and large.hflip is True


def test_overrides_apply_after_preset_defaults_and_unknown_ones_are_refused():
    config = resolve_recipe(
        "simple",
        image_size=28,
        preset_defaults={"optimizer": "adamw", "lr": 1e-3},
        overrides={"lr": 5e-4, "hflip": 0.0},
    )
    assert (config.optimizer, config.lr, config.hflip) == ("adamw", 5e-4, 0.0)
    assert augmentation_params(config).hflip is False
    with pytest.raises(ValueError, match="unknown recipe settings \\['lrr'\\]; valid settings"):
        resolve_recipe("simple", image_size=28, overrides={"lrr": 1})
    with pytest.raises(ValueError, match="optimizer must be one of"):
        resolve_recipe("simple", image_size=28, overrides={"optimizer": "adam"})
    with pytest.raises(ValueError, match="unknown recipe 'fancy'"):
        resolve_recipe("fancy", image_size=28)


@pytest.mark.parametrize("channels", [1, 3])
def test_three_augment_keeps_the_image_shape_and_type(channels):
    config = resolve_recipe("deit3", image_size=28)
    transform = train_transform(config, input_size=28, channels=channels, source_size=(28, 28))
    torch.manual_seed(0)
    image = torch.randint(0, 256, (channels, 28, 28), dtype=torch.uint8)
    outputs = [transform(image) for _ in range(12)]
    assert all(o.shape == (channels, 28, 28) and o.dtype == torch.uint8 for o in outputs)
    assert any(not torch.equal(o, image) for o in outputs)


def test_the_small_vit_preset_trains_on_unaugmented_images():
    _, _, preset_recipes = resolve_model_name("vit-small-28")
    config = resolve_recipe("simple", image_size=28, preset_defaults=preset_recipes["simple"])
    assert (config.crop_padding, config.hflip, config.optimizer) == (0, 0.0, "adamw")
    transform = train_transform(config, input_size=28, channels=1, source_size=(28, 28))
    image = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    assert all(torch.equal(transform(image), image) for _ in range(4))
    # The default simple recipe does move pixels: the comparison above can fail.
    cropping = train_transform(
        resolve_recipe("simple", image_size=28), input_size=28, channels=1, source_size=(28, 28)
    )
    assert any(not torch.equal(cropping(image), image) for _ in range(8))


def test_batch_size_must_be_at_least_2_and_even_only_when_mixing():
    with pytest.raises(ValueError, match="batch_size must be at least 2, got 1"):
        resolve_recipe("simple", image_size=28, overrides={"batch_size": 1})
    assert resolve_recipe("simple", image_size=28, overrides={"batch_size": 3}).batch_size == 3
    with pytest.raises(ValueError, match="batch_size must be even with Mixup or CutMix"):
        resolve_recipe("deit3", image_size=28, overrides={"batch_size": 3})


def test_rrc_scale_is_two_ordered_area_fractions():
    config = resolve_recipe("simple", image_size=28, overrides={"rrc_scale": [0.25, 1]})
    assert config.rrc_scale == (0.25, 1.0)
    with pytest.raises(ValueError, match="should be two area fractions"):
        resolve_recipe("simple", image_size=28, overrides={"rrc_scale": "0.1,1.0"})
    with pytest.raises(ValueError, match="rrc_scale needs 0 < low ≤ high ≤ 1"):
        resolve_recipe("simple", image_size=28, overrides={"rrc_scale": [0.9, 0.1]})


def test_a_negative_crop_padding_is_refused():
    with pytest.raises(ValueError, match="crop_padding is a number of pixels ≥ 0"):
        resolve_recipe("simple", image_size=28, overrides={"crop_padding": -1})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe-idx")
    manifest, _ = write_idx_dataset(root, train=32, test=8)
    return DatasetSpec(manifest, root, "train")


@pytest.mark.parametrize(
    ("recipe", "model", "overrides"),
    [
        ("simple", "cnn", {"batch_size": 16, "lr": 0.05, "lr_base_batch": 16}),
        ("deit3", "vit-small-28", {"batch_size": 16, "lr": 1e-2, "lr_base_batch": 16}),
        ("deit3", "cnn", {"batch_size": 16, "lr": 1e-2, "lr_base_batch": 16}),
    ],
)
def test_a_few_steps_of_each_recipe_lower_the_loss_on_a_fixed_batch(tiny, recipe, model, overrides):
    dataset = open_dataset(tiny)
    plan = make_plan(
        dataset=dataset,
        data=data_identity(tiny),
        model=model,
        recipe=recipe,
        epochs=1,
        seed=0,
        data_seed=0,
        overrides={**overrides, "warmup_epochs": 0.0},
        input_size=None,
        model_kwargs={"widths": [8, 16, 32]} if model == "cnn" else {"depth": 2},
    )
    run = TrainingRun(plan=plan, dataset=dataset, device=torch.device("cpu"), dist=SINGLE_PROCESS)
    images, labels = dataset.images(range(16)), dataset.labels[:16]

    def fixed_batch_loss() -> float:
        seed_everything(1)
        with torch.no_grad():
            return float(run.loss_fn(run.model(run.normalize(images)), labels))

    before = fixed_batch_loss()
    for step in range(8):
        augmented = torch.stack([run.transform(image) for image in images])
        run.train_step(augmented, labels, update=step)
    assert fixed_batch_loss() < before


def test_a_recipe_override_of_the_wrong_type_is_refused_with_the_setting_named():
    with pytest.raises(ValueError, match="lr='abc' should be of type float"):
        resolve_recipe("simple", image_size=28, overrides={"lr": "abc"})
    with pytest.raises(ValueError, match="three_augment='false' should be of type bool"):
        resolve_recipe("deit3", image_size=28, overrides={"three_augment": "false"})
    with pytest.raises(ValueError, match="crop_padding=2.5 should be of type int"):
        resolve_recipe("simple", image_size=28, overrides={"crop_padding": 2.5})
    tuned = resolve_recipe("simple", image_size=28, overrides={"lr": 1, "grad_clip": 1.0})
    assert (tuned.lr, tuned.grad_clip) == (1, 1.0)

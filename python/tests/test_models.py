"""Models: timm models by name with 1 and 3 channels, presets, checkpoints that never unpickle."""

from __future__ import annotations

import pickle

import pytest
import torch

from taggants_worker.checkpoint import (
    TRAIN_STATE_FILE,
    load_checkpoint,
    load_train_state,
    save_checkpoint,
)
from taggants_worker.models import PRESETS, build_model, model_spec_for

torch.set_num_threads(1)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    ("name", "size"),
    [("cnn", 28), ("vit-small-28", 28), ("resnet18", 32), ("vit_tiny_patch16_224", 32)],
)
def test_models_build_for_one_or_three_channels_and_the_dataset_classes(name, size, channels):
    spec = model_spec_for(name, num_classes=7, in_chans=channels, img_size=size)
    model = build_model(spec).eval()
    with torch.no_grad():
        logits = model(torch.zeros(2, channels, size, size))
    assert logits.shape == (2, 7)


def test_img_size_reaches_only_models_that_take_it():
    vit = model_spec_for("vit_tiny_patch16_224", num_classes=10, in_chans=1, img_size=28)
    resnet = model_spec_for("resnet18", num_classes=10, in_chans=1, img_size=28)
    assert vit.kwargs["img_size"] == 28
    assert "img_size" not in resnet.kwargs


def test_the_small_vit_preset_uses_seven_pixel_patches_on_28_pixel_images():
    spec = model_spec_for("vit-small-28", num_classes=10, in_chans=1, img_size=28)
    model = build_model(spec)
    assert model.patch_embed.patch_size == (7, 7)
    assert model.patch_embed.num_patches == 16
    assert model.global_pool == "avg"


def test_paper_scale_presets_name_timm_models():
    assert PRESETS["deit3-small"].timm_name == "deit3_small_patch16_224"
    assert PRESETS["resnet50"].timm_name == "resnet50"
    assert PRESETS["convnext-tiny"].timm_name == "convnext_tiny"


def test_an_unknown_model_name_lists_the_presets():
    with pytest.raises(ValueError, match="expected a preset \\(cnn, vit-small-28"):
        model_spec_for("no_such_net", num_classes=2, in_chans=1)


def test_a_checkpoint_rebuilds_the_same_model(tmp_path):
    spec = model_spec_for("cnn", num_classes=10, in_chans=1, img_size=28)
    torch.manual_seed(3)
    model = build_model(spec).eval()
    save_checkpoint(tmp_path / "ck", model=model, record={"model": spec.to_json(), "epoch": 1})
    loaded, record = load_checkpoint(tmp_path / "ck")
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert record["epoch"] == 1 and record["schema"] == "taggants.checkpoint/1"


class Boom:
    def __reduce__(self):
        return (print, ("unpickled!",))


# torch warns about the file's pickle protocol before refusing it: expected for a forged file.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_a_training_state_holding_a_pickled_object_is_refused(tmp_path):
    spec = model_spec_for("cnn", num_classes=2, in_chans=1)
    save_checkpoint(tmp_path / "ck", model=build_model(spec), record={"model": spec.to_json()})
    with open(tmp_path / "ck" / TRAIN_STATE_FILE, "wb") as file:
        pickle.dump({"optimizer": Boom()}, file)
    with pytest.raises(pickle.UnpicklingError):
        load_train_state(tmp_path / "ck")


def test_rewriting_a_checkpoint_replaces_it_whole(tmp_path):
    spec = model_spec_for("cnn", num_classes=2, in_chans=1)
    model = build_model(spec)
    save_checkpoint(tmp_path / "ck", model=model, record={"model": spec.to_json()}, train_state={})
    save_checkpoint(tmp_path / "ck", model=model, record={"model": spec.to_json(), "epoch": 2})
    assert not (tmp_path / "ck" / TRAIN_STATE_FILE).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temporary folders left

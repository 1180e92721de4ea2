"""Prediction (the suspect's black box): top-k labels under the model's eval preprocessing."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from taggants_worker.checkpoint import save_checkpoint
from taggants_worker.models import build_model, model_spec_for, normalization_for
from taggants_worker.predict import predict_top_k

torch.set_num_threads(1)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    spec = model_spec_for("cnn", num_classes=10, in_chans=1, img_size=28)
    torch.manual_seed(0)
    model = build_model(spec).eval()
    record = {
        "model": spec.to_json(),
        "classes": [f"c{i}" for i in range(10)],
        "channels": 1,
        "input_size": [28, 28],
        "normalization": normalization_for(1),
    }
    folder = tmp_path_factory.mktemp("predict") / "ck"
    save_checkpoint(folder, model=model, record=record)
    return folder, model


def reference_logits(model, images: torch.Tensor) -> torch.Tensor:
    """The model's logits computed by hand: luminance, nearest resize, normalisation."""
    x = images.float()
    if x.shape[1] == 3:
        x = (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1).round()
    x = functional.interpolate(x, size=(28, 28), mode="nearest-exact")
    mean, std = normalization_for(1)["mean"][0], normalization_for(1)["std"][0]
    with torch.no_grad():
        return model((x / 255 - mean) / std)


def test_top_k_has_one_row_of_k_classes_per_image_best_first(checkpoint):
    folder, model = checkpoint
    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    top = predict_top_k(folder, images, top_k=3, device=CPU)
    assert top.shape == (6, 3) and top.dtype == torch.int64
    expected = reference_logits(model, images).argsort(dim=1, descending=True)[:, :3]
    assert torch.equal(top, expected)


def test_small_images_are_resized_nearest_to_the_models_input(checkpoint):
    folder, model = checkpoint
    images = torch.randint(0, 256, (4, 1, 7, 7), dtype=torch.uint8)
    top = predict_top_k(folder, images, top_k=10, device=CPU)
    upsampled = images.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    assert torch.equal(top, predict_top_k(folder, upsampled, top_k=10, device=CPU))
    assert torch.equal(top, reference_logits(model, images).argsort(dim=1, descending=True))


def test_rgb_images_reach_a_gray_model_as_luminance(checkpoint):
    folder, model = checkpoint
    images = torch.randint(0, 256, (3, 3, 28, 28), dtype=torch.uint8)
    top = predict_top_k(folder, images, top_k=1, device=CPU)
    assert torch.equal(top[:, 0], reference_logits(model, images).argmax(dim=1))


def test_a_top_k_beyond_the_number_of_classes_is_refused(checkpoint):
    folder, _ = checkpoint
    with pytest.raises(ValueError, match="top_k must be in \\[1, 10\\]"):
        predict_top_k(folder, torch.zeros(1, 1, 28, 28, dtype=torch.uint8), top_k=11, device=CPU)
    with pytest.raises(ValueError, match="images must be uint8"):
        predict_top_k(folder, torch.zeros(1, 1, 28, 28), top_k=1, device=CPU)

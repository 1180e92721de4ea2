"""Tests of the `craft` wire command on a tiny trained checkpoint and a small idx dataset."""

from __future__ import annotations

import pytest
import torch
from manifest_builder import write_idx_dataset

import taggants_worker.commands  # noqa: F401  (registers the commands)
from taggants_worker.data import DatasetSpec
from taggants_worker.handles import HandleRegistry
from taggants_worker.registry import Context, invoke
from taggants_worker.train import train_model

KEY_LABELS = torch.tensor([1, 4])
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("craft-idx")
    manifest, data = write_idx_dataset(root, train=96, test=16, classes=10)
    spec = DatasetSpec(manifest, root, "train")
    checkpoint = train_model(
        data=spec,
        model="cnn",
        recipe="simple",
        epochs=1,
        out=root / "surrogate",
        model_kwargs={"widths": [4, 8, 8]},
        overrides={"batch_size": 32, "lr_base_batch": 32, "warmup_epochs": 0.0},
    )["checkpoint"]
    labels = torch.from_numpy(data["train"][1].astype("int64"))
    indices = torch.stack([torch.nonzero(labels == y).flatten()[:3] for y in KEY_LABELS])
    keys = torch.randint(0, 256, (2, 1, 7, 7), generator=torch.Generator().manual_seed(0))
    return {
        "surrogates": [checkpoint],
        "data": spec.to_wire(),
        "signing_indices": indices,
        "keys": keys.to(torch.uint8),
        "key_labels": KEY_LABELS,
        "images": torch.from_numpy(data["train"][0]),
    }


def _context(events=None):
    return Context(
        request_id=1,
        command="craft",
        handles=HandleRegistry(),
        device=torch.device("cpu"),
        emit_progress=(events if events is not None else []).append,
    )


def _call(job, events=None, **args):
    ctx = _context(events)
    wire = {k: v for k, v in job.items() if k != "images"}
    return invoke("craft", ctx, {**wire, "eps_255": 8, "steps": 3, **args})


def test_craft_replies_signed_images_in_signing_order_within_the_bound(job):
    events = []
    reply = _call(job, events)
    signed = reply["signed"]
    assert signed.dtype == torch.uint8 and signed.shape == (6, 1, 28, 28)
    original = job["images"][job["signing_indices"].reshape(-1)].unsqueeze(1)
    diff = signed.to(torch.int16) - original.to(torch.int16)
    assert int(diff.abs().max()) <= 8 and int(diff.abs().max()) > 0
    assert reply["cosine"].shape == (2,) and reply["cosine_quantised"].dtype == torch.float32
    assert reply["objective"] == pytest.approx(float(reply["objective_per_key"].sum()))
    assert [e["step"] for e in events] == [1, 2, 3]
    assert set(events[0]) >= {"restart", "step", "steps", "objective", "cosine_mean", "psnr"}


def test_craft_refuses_signing_images_whose_label_is_not_the_key_label(job):
    with pytest.raises(ValueError, match="signing image .* of key 0 has another label"):
        _call(job, signing_indices=job["signing_indices"].flip(0))


def test_craft_refuses_an_image_assigned_to_two_keys(job):
    indices = job["signing_indices"].clone()
    indices[1, 0] = indices[0, 0]
    with pytest.raises(ValueError, match="repeat an image"):
        _call(job, signing_indices=indices)


def test_craft_rejects_unknown_arguments(job):
    with pytest.raises(TypeError, match="unknown argument.*epsilon"):
        _call(job, epsilon=8)


def test_craft_cosine_measures_the_reply_as_craft_reported_it(job):
    reply = _call(job, steps=2)
    args = {k: job[k] for k in ("surrogates", "keys", "key_labels")}
    measured = invoke("craft.cosine", _context(), {**args, "images": reply["signed"]})
    torch.testing.assert_close(measured["cosine"], reply["cosine_quantised"])
    with pytest.raises(ValueError, match="K = 2 keys"):
        invoke("craft.cosine", _context(), {**args, "images": reply["signed"][:5]})

"""Tests of crafting taggants by gradient matching on a tiny CNN and real Fashion-MNIST images."""

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from torch import nn

from taggants_worker.augment import AugmentSpec, draw_augmentation
from taggants_worker.craft import (
    CraftSettings,
    Surrogate,
    craft_taggants,
    lr_at,
    quantise,
)
from taggants_worker.gradient_matching import (
    KeyBatch,
    MatchTarget,
    compute_key_grads,
    cosine,
    matching_objective_and_grad,
    select_parameters,
)

FASHION = Path("/usr/share/datasets/fashion-mnist")
torch.set_num_threads(1)  # small tensors: one thread is faster and steadier on a shared CPU
KEYS, PER_KEY = 2, 6


def _load_fashion_test_split():
    with gzip.open(FASHION / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    with gzip.open(FASHION / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


FASHION_IMAGES, FASHION_LABELS = _load_fashion_test_split()


def _fashion_sample(labels_wanted, per_label):
    """The first `per_label` test images of each wanted label: uint8 [K, n, 1, 28, 28]."""
    rows = [torch.nonzero(FASHION_LABELS == y).flatten()[:per_label] for y in labels_wanted]
    return torch.stack([FASHION_IMAGES[r] for r in rows])


def _trained_weights(seed):
    """A briefly trained TinyCnn's state: an untrained model's gradients all look alike."""
    model = TinyCnn(seed)
    images = FASHION_IMAGES[1000:2000].float() / 255
    labels = FASHION_LABELS[1000:2000]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(2):
        for batch in torch.randperm(len(images), generator=generator).split(50):
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.state_dict()


_WEIGHTS = {}


class TinyCnn(nn.Module):
    """Conv–BN–ReLU ×2 and a linear head: BatchNorm makes eval mode matter.

    smooth=True swaps ReLU and max-pooling for Softplus and average pooling: the parameter
    gradient of a ReLU network jumps where a unit switches, which breaks finite differences.
    """

    def __init__(self, seed=0, smooth=False):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self._build(nn.Softplus() if smooth else nn.ReLU(), 2 if smooth else None)

    def _build(self, activation, avg_pool):
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1),
            nn.BatchNorm2d(6),
            activation,
            nn.AvgPool2d(avg_pool) if avg_pool else nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            activation,
            nn.AdaptiveAvgPool2d(2),
        )
        self.head = nn.Linear(32, 10)
        with torch.no_grad():  # non-trivial running statistics, as in a trained model
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.1, 0.1)
                    module.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


@pytest.fixture(scope="module")
def sample():
    key_labels = torch.tensor([3, 7])
    images = _fashion_sample(key_labels.tolist(), PER_KEY)
    keys = torch.randint(0, 256, (KEYS, 1, 7, 7), generator=torch.Generator().manual_seed(5))
    keys = keys.to(torch.uint8)
    image_labels = key_labels[:, None].repeat(1, PER_KEY)
    return {"images": images, "image_labels": image_labels, "keys": keys, "key_labels": key_labels}


TEST_AUGMENT = AugmentSpec(pad=1, flip=True)


def _surrogate(seed=0, augment=TEST_AUGMENT):
    if seed not in _WEIGHTS:
        _WEIGHTS[seed] = _trained_weights(seed)
    model = TinyCnn(seed)
    model.load_state_dict(_WEIGHTS[seed])
    return Surrogate(model=model, input_size=(28, 28), augment=augment)


def _craft(sample, surrogates=None, on_progress=None, **settings):
    settings.setdefault("eps_255", 16)
    settings.setdefault("steps", 6)
    return craft_taggants(
        surrogates=surrogates or [_surrogate()],
        settings=CraftSettings(**settings),
        on_progress=on_progress,
        **sample,
    )


def test_the_objective_falls_over_30_steps(sample):
    events = []
    result = _craft(sample, steps=30, on_progress=events.append)
    objectives = [e["objective"] for e in events]
    assert len(events) == 30 and events[-1]["step"] == 30
    assert np.mean(objectives[-5:]) < 0.85 * np.mean(objectives[:3])
    # The starting point (random taggants, one negligible step) as the reference: crafting
    # raised every key's unaugmented cosine after quantisation.
    start = _craft(sample, steps=1, step_size=1e-9)
    gain = result.cosine_quantised - start.cosine_quantised
    assert (gain > 0).all() and gain.mean() > 0.05
    assert 0 < events[-1]["eps_used"] <= 1 and events[-1]["psnr"] > 20


def test_every_signed_pixel_stays_within_the_bound_after_quantisation(sample):
    result = _craft(sample, eps_255=8, steps=5, step_size=0.5)
    diff = result.signed.to(torch.int16) - sample["images"].to(torch.int16)
    assert result.signed.dtype == torch.uint8
    assert result.signed.shape == sample["images"].shape
    assert int(diff.abs().max()) == 8  # the bound is used and never exceeded


def test_quantisation_clamps_in_integer_space_even_when_rounding_would_overshoot():
    original = torch.tensor([0, 10, 250, 128, 128], dtype=torch.uint8)
    # In [0, 1] units: 4.49/255 rounds within a bound of 4; 4.6/255 would round to 5.
    taggants = torch.tensor([-0.4, 4.6, 4.9, -4.51, 4.49]) / 255
    signed = quantise(original, taggants, eps_255=4.7)
    assert signed.tolist() == [0, 14, 254, 124, 132]


def test_restarts_keep_the_best_objective_per_key(sample):
    result = _craft(sample, restarts=3, steps=3)
    per_restart = result.restart_objectives
    assert per_restart.shape == (3, KEYS) and not per_restart.isnan().any()
    assert torch.equal(result.objective_per_key, per_restart.min(dim=0).values)
    assert result.objective == pytest.approx(float(per_restart.min(dim=0).values.sum()))
    # The returned images are the ones that scored that objective, measured independently.
    model = _surrogate().model.eval()
    params = select_parameters(model, None)
    keys = nn.functional.interpolate(sample["keys"].float() / 255, size=(28, 28))
    key_grads = compute_key_grads(model, params, keys, sample["key_labels"])
    for k in range(KEYS):
        signed = result.signed[k].float() / 255
        loss = nn.functional.cross_entropy(
            model(signed), sample["image_labels"][k], reduction="sum"
        )
        grad = torch.autograd.grad(loss, params)
        measured = 1 - float(cosine(list(grad), key_grads[k]))
        assert measured == pytest.approx(float(result.objective_per_key[k]), abs=1e-5)


def test_a_killed_job_resumes_to_the_same_taggants_as_an_uninterrupted_one(sample, tmp_path):
    settings = {"steps": 6, "restarts": 2, "checkpoint_every": 2, "seed": 11}
    whole = _craft(sample, state_path=str(tmp_path / "a.state"), **settings)
    assert not (tmp_path / "a.state").exists()

    class KilledError(Exception):
        pass

    def kill_in_second_restart(event):
        if event["restart"] == 2 and event["step"] == 3:
            raise KilledError

    state = tmp_path / "b.state"
    with pytest.raises(KilledError):
        _craft(sample, state_path=str(state), on_progress=kill_in_second_restart, **settings)
    assert state.exists()
    events = []
    resumed = _craft(sample, state_path=str(state), on_progress=events.append, **settings)
    assert (events[0]["restart"], events[0]["step"]) == (2, 3)  # continued from step 2
    assert torch.equal(resumed.taggants, whole.taggants)
    assert torch.equal(resumed.signed, whole.signed)
    assert torch.equal(resumed.restart_objectives, whole.restart_objectives)


def test_a_state_file_of_another_job_is_refused(sample, tmp_path):
    state = tmp_path / "c.state"

    def stop(event):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _craft(sample, state_path=str(state), checkpoint_every=1, on_progress=stop)
    with pytest.raises(ValueError, match="different job"):
        _craft(sample, state_path=str(state), checkpoint_every=1, seed=99)


def test_crafting_is_deterministic_given_the_seed(sample):
    first = _craft(sample, steps=3, seed=4)
    second = _craft(sample, steps=3, seed=4)
    other = _craft(sample, steps=3, seed=5)
    assert torch.equal(first.taggants, second.taggants)
    assert not torch.equal(first.taggants, other.taggants)


def _objective_grad(sample, chunk_size):
    surrogate = _surrogate()
    model = surrogate.model.eval()
    params = select_parameters(model, None)
    keys = sample["keys"].float() / 255
    keys = nn.functional.interpolate(keys, size=(28, 28))
    target = MatchTarget(
        model, params, compute_key_grads(model, params, keys, sample["key_labels"])[0]
    )
    draw = draw_augmentation(surrogate.augment, 2 * PER_KEY, torch.Generator().manual_seed(0))
    clean = sample["images"][0].float() / 255
    labels = sample["image_labels"][0].repeat(2)
    batch = KeyBatch(clean, labels, draw, surrogate.augment)
    taggant = (torch.rand(clean.shape, generator=torch.Generator().manual_seed(1)) - 0.5) / 16
    return matching_objective_and_grad(target, batch, taggant, chunk_size=chunk_size)


def test_chunked_gradient_equals_the_unchunked_gradient(sample):
    whole_objective, whole_grad = _objective_grad(sample, chunk_size=1000)
    chunk_objective, chunk_grad = _objective_grad(sample, chunk_size=5)  # 12 images: 5, 5, 2
    assert float(chunk_objective) == pytest.approx(float(whole_objective), abs=1e-6)
    assert whole_grad.abs().max() > 0
    torch.testing.assert_close(chunk_grad, whole_grad, rtol=1e-4, atol=1e-7)


def test_gradient_matches_a_finite_difference_of_the_objective(sample):
    model = TinyCnn(smooth=True).double().eval()
    params = select_parameters(model, None)
    keys = nn.functional.interpolate(sample["keys"].double() / 255, size=(28, 28))
    key_grad = compute_key_grads(model, params, keys, sample["key_labels"])[0]
    target = MatchTarget(model, params, key_grad)
    clean = sample["images"][0].double() / 255
    spec = AugmentSpec(pad=1, flip=True)
    draw = draw_augmentation(spec, PER_KEY, torch.Generator().manual_seed(1))
    batch = KeyBatch(clean, sample["image_labels"][0], draw, spec)
    generator = torch.Generator().manual_seed(2)
    taggant = (torch.rand(clean.shape, generator=generator, dtype=torch.double) - 0.5) / 32
    direction = torch.randn(clean.shape, generator=generator, dtype=torch.double)
    _, grad = matching_objective_and_grad(target, batch, taggant, chunk_size=4)
    h = 1e-6
    plus, _ = matching_objective_and_grad(target, batch, taggant + h * direction, chunk_size=4)
    minus, _ = matching_objective_and_grad(target, batch, taggant - h * direction, chunk_size=4)
    numeric = (float(plus) - float(minus)) / (2 * h)
    assert float((grad * direction).sum()) == pytest.approx(numeric, rel=1e-5)


def test_crafting_keeps_the_surrogate_in_eval_mode(sample):
    surrogate = _surrogate()
    surrogate.model.train()
    before = {k: v.clone() for k, v in surrogate.model.state_dict().items()}
    _craft(sample, surrogates=[surrogate], steps=2)
    assert not surrogate.model.training
    for name, value in surrogate.model.state_dict().items():
        assert torch.equal(value, before[name]), f"{name} changed while crafting"


def test_an_ensemble_averages_the_surrogates_objectives(sample):
    def models():
        return [Surrogate(model=TinyCnn(seed), input_size=(28, 28)) for seed in (0, 1)]

    frozen = {"steps": 1, "step_size": 1e-9}  # the evaluation of the same initial taggants
    single = [_craft(sample, surrogates=[m], **frozen).objective_per_key for m in models()]
    both = _craft(sample, surrogates=models(), **frozen)
    torch.testing.assert_close(both.objective_per_key, (single[0] + single[1]) / 2)
    summed = _craft(sample, surrogates=models(), ensemble="sum", **frozen)
    torch.testing.assert_close(summed.objective_per_key, single[0] + single[1])


def test_matching_can_be_restricted_to_parameters_by_name_prefix(sample):
    result = _craft(sample, steps=2, param_prefixes=("head.",))
    assert result.cosine.shape == (KEYS,)
    with pytest.raises(ValueError, match="top-level names are \\['features', 'head'\\]"):
        _craft(sample, steps=1, param_prefixes=("blocks.",))


def test_the_ssim_penalty_keeps_taggants_closer_to_the_image(sample):
    free = _craft(sample, steps=4, step_size=0.5)
    penalised = _craft(sample, steps=4, step_size=0.5, perceptual="ssim", perceptual_weight=50.0)
    distance = lambda r: (r.signed.float() - sample["images"].float()).abs().mean()  # noqa: E731
    assert distance(penalised) < distance(free)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"eps_255": 0}, "eps_255 must be in \\(0, 255\\]"),
        ({"eps_255": 300}, "eps_255"),
        ({"steps": 0}, "steps must be a positive integer"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"ensemble": "max"}, "ensemble must be one of"),
        ({"perceptual": "vgg"}, "unknown perceptual penalty 'vgg'"),
        (
            {"perceptual": "lpips"},
            "unknown perceptual penalty 'lpips'; choose one of \\('none', 'ssim'\\)",
        ),
    ],
)
def test_invalid_settings_are_refused(sample, settings, message):
    with pytest.raises(ValueError, match=message):
        _craft(sample, **settings)


def test_signing_images_of_another_size_than_the_surrogate_input_are_refused(sample):
    surrogate = Surrogate(model=TinyCnn(), input_size=(32, 32))
    with pytest.raises(ValueError, match="expects \\(32, 32\\) images"):
        _craft(sample, surrogates=[surrogate])


def test_the_step_size_drops_tenfold_at_three_five_and_seven_eighths_of_the_steps():
    rates = [lr_at(step, 80, 1.0) for step in range(80)]
    assert rates[29] == 1.0 and rates[30] == pytest.approx(0.1)
    assert rates[49] == pytest.approx(0.1) and rates[50] == pytest.approx(0.01)
    assert rates[69] == pytest.approx(0.01) and rates[70] == pytest.approx(0.001)
    assert math.isclose(rates[79], 0.001)


def test_a_vision_transformer_surrogate_can_be_differentiated_twice(sample):
    # timm's attention uses fused kernels without a double backward unless crafting avoids them.
    vit = timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=28,
        patch_size=7,
        embed_dim=16,
        depth=1,
        num_heads=2,
        num_classes=10,
        in_chans=1,
    )
    result = _craft(sample, surrogates=[Surrogate(model=vit, input_size=(28, 28))], steps=2)
    assert torch.isfinite(result.cosine).all()
    assert torch.isfinite(result.objective_per_key).all()

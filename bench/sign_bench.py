"""Benchmark of crafting taggants (issue 5): the product's crafting loop against a plain-PyTorch
straightforward loop of the same objective, on the CPU preset (compact CNN, 28×28 gray images).

Modes (one JSON object on stdout each):
  throughput  alternate rounds of the product and the baseline in one process; median seconds
              per step of each, so load on a shared machine hits both alike
  memory      one run of `--impl product|baseline`; peak RSS growth over the set-up state
  profile     where the product's step time goes (top operators by self CPU time)

The baseline is how the objective is usually written: per key and per augmentation draw, an
augmented batch built image by image (as a per-sample transform would), a double-backward
gradient per draw, the draws' gradients summed, then 1 − cosine and `.backward()`. The
objective, augmentation family, optimiser and projection are the same as the product's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import time

import torch
from torch.nn import functional

from taggants_worker.augment import AugmentSpec
from taggants_worker.craft import CraftSettings, Surrogate, craft_taggants, lr_at
from taggants_worker.models import CompactCnn

CONFIG = {
    "model": "CompactCnn widths (32, 64, 128), 1×28×28, random init (seed 0)",
    "keys": 4,
    "images_per_key": 6,
    "aug_draws": 2,
    "augment": "crop with padding 2 + horizontal flip",
    "eps_255": 16,
    "steps": 5,
    "threads": 1,
}
SPEC = AugmentSpec(pad=2, flip=True)


def _inputs():
    generator = torch.Generator().manual_seed(0)
    k, n = CONFIG["keys"], CONFIG["images_per_key"]
    images = torch.randint(0, 256, (k, n, 1, 28, 28), generator=generator, dtype=torch.uint8)
    key_labels = torch.arange(k) % 10
    return {
        "images": images,
        "image_labels": key_labels[:, None].repeat(1, n),
        "keys": torch.randint(0, 256, (k, 1, 7, 7), generator=generator, dtype=torch.uint8),
        "key_labels": key_labels,
    }


def _model():
    torch.manual_seed(0)
    return CompactCnn(num_classes=10, in_chans=1, widths=(32, 64, 128)).eval()


def product_step_times(inputs) -> list[float]:
    """Seconds between consecutive progress events of the product's crafting loop."""
    stamps: list[float] = []
    settings = CraftSettings(
        eps_255=CONFIG["eps_255"], steps=CONFIG["steps"], aug_draws=CONFIG["aug_draws"]
    )
    surrogate = Surrogate(model=_model(), input_size=(28, 28), augment=SPEC)
    craft_taggants(
        surrogates=[surrogate],
        settings=settings,
        on_progress=lambda _: stamps.append(time.perf_counter()),
        **inputs,
    )
    return [b - a for a, b in itertools.pairwise(stamps)]


def _baseline_augment(image, generator):
    """Per-image crop with padding and flip, the way a per-sample transform does it."""
    pad = SPEC.pad
    padded = functional.pad(image, (pad, pad, pad, pad))
    dy, dx, flip = torch.randint(0, 2 * pad + 1, (3,), generator=generator).tolist()
    window = padded[:, dy : dy + 28, dx : dx + 28]
    return window.flip(-1) if flip % 2 else window


def baseline_step_times(inputs) -> list[float]:
    """The straightforward loop; returns the seconds of each step after the first."""
    model = _model()
    params = list(model.parameters())
    clean = inputs["images"].float() / 255
    keys = functional.interpolate(inputs["keys"].float() / 255, size=(28, 28), mode="nearest")
    key_grads = []
    for k in range(keys.shape[0]):
        loss = functional.cross_entropy(model(keys[k : k + 1]), inputs["key_labels"][k : k + 1])
        key_grads.append(torch.autograd.grad(loss, params))
    eps = CONFIG["eps_255"] / 255
    generator = torch.Generator().manual_seed(0)
    delta = ((torch.rand(clean.shape, generator=generator) * 2 - 1) * eps).requires_grad_(True)
    optimizer = torch.optim.Adam([delta], lr=0.1 * eps)
    times = []
    for step in range(CONFIG["steps"]):
        start = time.perf_counter()
        optimizer.zero_grad()
        for k in range(clean.shape[0]):
            summed = None
            for _ in range(CONFIG["aug_draws"]):
                batch = torch.stack([_baseline_augment(x, generator) for x in clean[k] + delta[k]])
                loss = functional.cross_entropy(
                    model(batch), inputs["image_labels"][k], reduction="sum"
                )
                grads = torch.autograd.grad(loss, params, create_graph=True)
                summed = (
                    grads if summed is None else [a + b for a, b in zip(summed, grads, strict=True)]
                )
            dot = sum((a * b).sum() for a, b in zip(summed, key_grads[k], strict=True))
            norms = torch.sqrt(sum((a * a).sum() for a in summed)) * torch.sqrt(
                sum((b * b).sum() for b in key_grads[k])
            )
            (1 - dot / norms).backward()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, CONFIG["steps"], 0.1 * eps)
        delta.grad.sign_()
        optimizer.step()
        with torch.no_grad():
            delta.clamp_(-eps, eps)
            delta.copy_((clean + delta).clamp(0, 1) - clean)
        times.append(time.perf_counter() - start)
    return times[1:]


def throughput(rounds: int) -> dict:
    inputs = _inputs()
    per_step = {"product": [], "baseline": []}
    for _ in range(rounds):
        per_step["product"] += product_step_times(inputs)
        per_step["baseline"] += baseline_step_times(inputs)
    images = CONFIG["keys"] * CONFIG["images_per_key"]
    rate = {name: images / statistics.median(times) for name, times in per_step.items()}
    return {
        "signing_images_steps_per_s": {name: round(v, 2) for name, v in rate.items()},
        "ratio": round(rate["product"] / rate["baseline"], 3),
        "steps_timed": {name: len(times) for name, times in per_step.items()},
    }


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def memory(impl: str) -> dict:
    inputs = _inputs()
    before = _rss_mb()
    (product_step_times if impl == "product" else baseline_step_times)(inputs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "impl": impl,
        "peak_rss_mb": round(peak, 1),
        "growth_mb": round(peak - before, 1),
    }


def profile() -> dict:
    inputs = _inputs()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        product_step_times(inputs)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    return {e.key: round(100 * e.self_cpu_time_total / total, 1) for e in top}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("throughput", "memory", "profile"))
    parser.add_argument("--impl", choices=("product", "baseline"), default="product")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(CONFIG["threads"])
    if args.mode == "throughput":
        result = {"config": CONFIG, **throughput(args.rounds)}
    elif args.mode == "memory":
        result = memory(args.impl)
    else:
        result = {"self_cpu_percent": profile()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()

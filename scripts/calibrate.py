"""How far do taggants move a suspect's keys? A twin-suspect study on Fashion-MNIST (issue 6).

Each suspect has a *twin*: the same model seed and data-order seed trained on the original data,
so the only difference between the two is what an arm adds to the training set. The effect of an
arm is the shift of each key's margin (logit of the key's label minus the largest other logit)
from twin to suspect, and the top-1 hits of both. Two kinds of arm:

  keys:M     the keys themselves, each M times with its label, appended to the training set: an
             upper bound on what any taggant can do, and a ruler for the arms below
  signed:N   N signing images per key (of the key's label), signed by the product's crafting
             (`craft_taggants`) on a surrogate trained like the demo's (or an ensemble)

Training is the product's own loop (`TrainingRun`, the `simple` recipe of the model preset) on
the first `--train` images; keys are uniform noise drawn at `--key-resolution` and upsampled,
with uniform labels, as `taggants keys` draws them (from a seed here, not from a key secret).

    npm run calibrate -- --arms keys:1 keys:5 signed:20 signed:100 --suspect-seeds 1 2

Prints a Markdown table; `--out` (default runs/calibrate) keeps `results.json` and the trained
models and signed images, named by a hash of what made them, so a rerun with more arms, seeds or
other settings trains only what is new.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from taggants_worker.augment import augment_spec_from_recipe
from taggants_worker.craft import CraftSettings, Surrogate, craft_taggants
from taggants_worker.data import TensorImageDataset, read_idx
from taggants_worker.distributed import SINGLE_PROCESS
from taggants_worker.models import normalization_for, resolve_model_name
from taggants_worker.recipes import resolve_recipe
from taggants_worker.train import TrainingRun, evaluate, make_plan

CLASSES = [str(c) for c in range(10)]
IDX_FILES = [
    f"{split}-{kind}-ubyte.gz"
    for split in ("train", "t10k")
    for kind in ("images-idx3", "labels-idx1")
]
CPU = torch.device("cpu")


def load_split(folder: Path, prefix: str, count: int | None) -> TensorImageDataset:
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")[:count]
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")[:count]
    return TensorImageDataset(
        torch.from_numpy(images.copy()).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        CLASSES,
    )


def draw_keys(count: int, resolution: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 keys [K, 1, 28, 28] (noise at `resolution`, nearest-upsampled) and labels [K]."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (count, 1, resolution, resolution), generator=generator)
    keys = functional.interpolate(noise.float(), size=28, mode="nearest").to(torch.uint8)
    return keys, torch.randint(0, len(CLASSES), (count,), generator=generator)


def signing_sets(
    labels: torch.Tensor,
    key_labels: torch.Tensor,
    per_key: int,
    seed: int,
    loss: torch.Tensor | None = None,
) -> torch.Tensor:
    """Disjoint indices [K, per_key]: key i's images all carry key i's label.

    Drawn at random, or, given each image's surrogate `loss`, the hardest of the label after
    skipping its hardest 5 % (where mislabelled and unreadable images gather).
    """
    generator = torch.Generator().manual_seed(seed)
    taken = torch.zeros(len(labels), dtype=torch.bool)
    rows = []
    for label in key_labels.tolist():
        free = torch.nonzero((labels == label) & ~taken)[:, 0]
        if loss is None:
            candidates = free[torch.randperm(len(free), generator=generator)]
        else:
            of_label = torch.nonzero(labels == label)[:, 0]
            skipped = of_label[loss[of_label].argsort(descending=True)[: len(of_label) // 20]]
            free = free[~torch.isin(free, skipped)]
            candidates = free[loss[free].argsort(descending=True)]
        if len(candidates) < per_key:
            raise ValueError(f"class {label} has {len(candidates)} images left, {per_key} asked")
        row = candidates[:per_key]
        taken[row] = True
        rows.append(row)
    return torch.stack(rows)


class Study:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: Path = args.out
        self.out.mkdir(parents=True, exist_ok=True)
        self.train_set = load_split(args.data, "train", args.train)
        self.test_set = load_split(args.data, "t10k", None)
        self.keys, self.key_labels = draw_keys(args.keys, args.key_resolution, args.key_seed)

    def train(self, name: str, dataset: TensorImageDataset, seed: int) -> tuple[TrainingRun, float]:
        """The model trained by the product's loop, cached in `out` under `name`."""
        plan = make_plan(
            dataset=dataset,
            data={"study": name},
            model=self.args.model,
            recipe="simple",
            epochs=self.args.epochs,
            seed=seed,
            data_seed=seed + 1000,
            overrides=self.args.set,
            input_size=None,
        )
        run = TrainingRun(plan=plan, dataset=dataset, device=CPU, dist=SINGLE_PROCESS)
        weights = self.out / f"{name}-{digest(dataset.tensor, dataset.labels, plan.to_json())}.pt"
        if weights.exists():
            run.bare_model.load_state_dict(torch.load(weights, weights_only=True))
        else:
            started = time.perf_counter()
            for epoch in range(plan.epochs):
                run.train_epoch(epoch, progress=None)
            save_atomically(weights, lambda path: torch.save(run.bare_model.state_dict(), path))
            log(f"trained {name} in {time.perf_counter() - started:.0f} s")
        top1 = evaluate(run.bare_model, self.test_set, plan=plan, device=CPU)["top1"]
        return run, top1

    @torch.no_grad()
    def margins(self, run: TrainingRun) -> torch.Tensor:
        """Each key's margin: its label's logit minus the largest other logit, [K]."""
        run.bare_model.eval()
        logits = run.bare_model(run.normalize(self.keys))
        own = logits.gather(1, self.key_labels[:, None])[:, 0]
        others = logits.scatter(1, self.key_labels[:, None], float("-inf")).amax(1)
        return own - others

    def arm_dataset(self, arm: str) -> TensorImageDataset:
        kind, _, amount = arm.partition(":")  # validated by `arm` below
        count = int(amount)
        base = self.train_set
        if kind == "keys":
            images = torch.cat([base.tensor, self.keys.repeat_interleave(count, 0)])
            labels = torch.cat([base.labels, self.key_labels.repeat_interleave(count)])
            return TensorImageDataset(images, labels, CLASSES)
        if kind == "signed":
            loss = self.surrogate_loss() if self.args.signing == "hard" else None
            rows = signing_sets(base.labels, self.key_labels, count, self.args.key_seed, loss)
            signed = self.craft(rows)
            images = base.tensor.clone()
            images[rows.reshape(-1)] = signed.reshape(-1, *images.shape[1:])
            return TensorImageDataset(images, base.labels, CLASSES)
        raise AssertionError(f"unvalidated arm {arm!r}")

    @functools.cached_property
    def surrogates(self) -> list[TrainingRun]:
        runs = []
        for seed in self.args.surrogate_seeds:
            run, top1 = self.train(f"surrogate-{seed}", self.train_set, seed=seed)
            log(f"surrogate (seed {seed}) top-1 {top1:.2f} %")
            runs.append(run)
        return runs

    def surrogate_loss(self) -> torch.Tensor:
        """Each training image's cross-entropy on the (first) surrogate, [N]."""
        run = self.surrogates[0]  # trained here if needed, so outside no_grad
        run.bare_model.eval()
        images, labels = self.train_set.tensor, self.train_set.labels
        with torch.no_grad():
            logits = [
                run.bare_model(run.normalize(images[i : i + 1000]))
                for i in range(0, len(labels), 1000)
            ]
        return functional.cross_entropy(torch.cat(logits), labels, reduction="none")

    def craft(self, rows: torch.Tensor) -> torch.Tensor:
        settings = CraftSettings(eps_255=16, steps=self.args.steps, aug_draws=2)
        args = self.args
        job = repr(
            (args.surrogate_seeds, args.set, args.epochs, args.model, settings, args.signing)
        )
        cached = self.out / f"signed-images-{rows.shape[1]}-{digest(rows, self.keys, job)}.pt"
        if cached.exists():
            return torch.load(cached, weights_only=True)
        started = time.perf_counter()
        result = craft_taggants(
            surrogates=[
                Surrogate(
                    model=run.bare_model,
                    input_size=(28, 28),
                    augment=augment_spec_from_recipe(run.plan.recipe),
                    normalization=normalization_for(1),
                )
                for run in self.surrogates
            ],
            images=self.train_set.tensor[rows],
            image_labels=self.train_set.labels[rows],
            keys=self.keys,
            key_labels=self.key_labels,
            settings=settings,
        )
        log(
            f"crafted {rows.numel()} images in {time.perf_counter() - started:.0f} s, "
            f"mean cosine {result.cosine_quantised.mean():.3f}"
        )
        save_atomically(cached, lambda path: torch.save(result.signed, path))
        return result.signed

    def run(self) -> list[dict]:
        results = []
        for arm in self.args.arms:
            dataset = self.arm_dataset(arm)
            for seed in self.args.suspect_seeds:
                twin, twin_top1 = self.train(f"twin-{seed}", self.train_set, seed)
                suspect, top1 = self.train(f"{arm.replace(':', '-')}-{seed}", dataset, seed)
                before, after = self.margins(twin), self.margins(suspect)
                shift = after - before
                results.append(
                    {
                        "arm": arm,
                        "seed": seed,
                        "top1": top1,
                        "twin_top1": twin_top1,
                        "hits": int((after > 0).sum()),
                        "twin_hits": int((before > 0).sum()),
                        "mean_shift": float(shift.mean()),
                        "keys_up": int((shift > 0).sum()),
                        "twin_median_margin": float(before.median()),
                    }
                )
                log(json.dumps(results[-1]))
        return results


def digest(*parts: object) -> str:
    """A short hash naming cached results by everything that made them."""
    hasher = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            hasher.update(part.contiguous().numpy().tobytes())
        else:
            hasher.update(json.dumps(part, sort_keys=True, default=str).encode())
    return hasher.hexdigest()[:12]


def save_atomically(path: Path, write: Callable[[Path], None]) -> None:
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(results: list[dict], keys: int) -> str:
    lines = [
        "| arm | suspect seed | val. top-1 (%) suspect / twin | top-1 hits suspect / twin "
        "| mean margin shift (nats) | keys moved up |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['arm']} | {r['seed']} | {r['top1']:.2f} / {r['twin_top1']:.2f} "
            f"| {r['hits']}/{keys} / {r['twin_hits']}/{keys} | {r['mean_shift']:+.2f} "
            f"| {r['keys_up']}/{keys} |"
        )
    return "\n".join(lines)


def recipe_setting(text: str) -> tuple[str, object]:
    """NAME=VALUE as `taggants train --set` reads it: VALUE is JSON, or else a bare word."""
    name, sep, value = text.partition("=")
    if not name or not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. hflip=0), got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def arm(text: str) -> str:
    kind, _, amount = text.partition(":")
    if kind not in ("keys", "signed") or not amount.isdigit() or int(amount) < 1:
        raise argparse.ArgumentTypeError(
            f"expected keys:M or signed:N with a positive whole number, got {text!r}"
        )
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--arms",
        nargs="+",
        type=arm,
        default=["keys:1", "keys:5", "signed:20"],
        help="keys:M puts each key M times into the training set; signed:N signs N images per key",
    )
    parser.add_argument("--suspect-seeds", nargs="+", type=int, default=[1])
    parser.add_argument(
        "--surrogate-seeds", nargs="+", type=int, default=[0], help="several: an ensemble"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("TAGGANTS_DATA", "/usr/share/datasets/fashion-mnist")),
        help="folder of the four Fashion-MNIST idx.gz files",
    )
    parser.add_argument("--train", type=int, default=20_000, help="first N training images")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument(
        "--set",
        nargs="+",
        type=recipe_setting,
        default=[],
        metavar="NAME=JSON",
        help="`simple` recipe settings for every model, e.g. --set hflip=0 crop_padding=0",
    )
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--key-resolution", type=int, default=7)
    parser.add_argument("--key-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=60, help="crafting steps")
    parser.add_argument(
        "--signing",
        choices=["random", "hard"],
        default="random",
        help="signing images drawn at random, or the surrogate's hardest of each label",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/calibrate"))
    args = parser.parse_args()
    args.set = dict(args.set)
    try:
        defaults = resolve_model_name(args.model)[2].get("simple")
        resolve_recipe("simple", image_size=28, preset_defaults=defaults, overrides=args.set)
    except ValueError as error:
        parser.error(str(error))
    missing = [name for name in IDX_FILES if not (args.data / name).is_file()]
    if missing:
        parser.error(
            f"{args.data} lacks {', '.join(missing)}; give --data the folder of the four "
            "Fashion-MNIST idx.gz files, or run `npm run bootstrap` to install them"
        )
    results = Study(args).run()
    text = json.dumps(results, indent=2) + "\n"
    save_atomically(args.out / "results.json", lambda path: path.write_text(text))
    print(table(results, args.keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())

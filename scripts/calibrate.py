"""How far do taggants move a suspect's keys? A twin-suspect study on Fashion-MNIST (issue 6).

Each suspect has a *twin*: the same model seed, data-order seed and number of images, trained on
the original data, so the only difference between the two is what an arm puts into the training
set. The effect of an arm is the shift of each key's margin (logit of the key's label minus the
largest other logit) from twin to suspect, and the top-1 hits of both. Two kinds of arm:

  keys:M     the keys themselves, each M times with its label, in place of K·M random training
             images: an upper bound on what any taggant can do, and a ruler for the arms below
  signed:N   N signing images per key (of the key's label), signed by the product's crafting
             (`craft_taggants`) on a surrogate trained like the demo's (or an ensemble)

Training is the product's own loop (`TrainingRun`, the `simple` recipe of the model preset) on
the first `--train` images; keys are uniform noise drawn at `--key-resolution` and resized as the
product resizes keys, with uniform labels (from a seed here, not from a key secret).

    npm run calibrate -- --arms keys:1 keys:5 signed:20 signed:100 --suspect-seeds 1 2

Prints a Markdown table and appends one JSON line per suspect, with the settings and versions,
to `results.jsonl` in `--out` (default runs/calibrate). Trained models and signed images are kept
there, named by a hash of what made them (data, settings and the worker's source), so a rerun
with more arms, seeds or other settings trains only what is new.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import timm
import torch
from torch.nn import functional

import taggants_worker
from taggants_worker.augment import augment_spec_from_recipe
from taggants_worker.craft import CraftSettings, Surrogate, craft_taggants
from taggants_worker.craft_state import fingerprint
from taggants_worker.data import TensorImageDataset, read_idx
from taggants_worker.distributed import SINGLE_PROCESS
from taggants_worker.models import normalization_for, resolve_model_name
from taggants_worker.recipes import resolve_recipe
from taggants_worker.train import TrainingRun, evaluate, make_plan
from taggants_worker.transforms import resize_nearest

CLASSES = [str(c) for c in range(10)]
IMAGE_SIDE = 28
IDX_FILES = [
    f"{split}-{kind}-ubyte.gz"
    for split in ("train", "t10k")
    for kind in ("images-idx3", "labels-idx1")
]
CPU = torch.device("cpu")


class StudyInputError(ValueError):
    """Settings the data cannot satisfy; main reports it as a usage error."""


@dataclass(frozen=True)
class StudySettings:
    data: Path
    train: int
    model: str
    epochs: int
    recipe_settings: dict
    keys: int
    key_resolution: int
    key_seed: int
    steps: int
    signing: str
    surrogate_seeds: list[int]
    suspect_seeds: list[int]
    arms: list[str]
    out: Path


def load_split(folder: Path, prefix: str, count: int | None) -> TensorImageDataset:
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")[:count]
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")[:count]
    return TensorImageDataset(
        torch.from_numpy(images.copy()).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        CLASSES,
    )


def draw_keys(count: int, resolution: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 keys [K, 1, 28, 28] (noise at `resolution`, resized like the product's) and labels."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (count, 1, resolution, resolution), generator=generator)
    keys = resize_nearest(noise.to(torch.uint8), input_size=IMAGE_SIDE)
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
    skipping its hardest 5 % (where mislabelled and unreadable images gather). Keys that share a
    label draw from one pool.
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
            raise StudyInputError(
                f"class {label} has {len(candidates)} images left for a key, {per_key} asked "
                "(keys sharing a label share its images); lower signed:N or raise --train"
            )
        row = candidates[:per_key]
        taken[row] = True
        rows.append(row)
    return torch.stack(rows)


class Study:
    def __init__(self, settings: StudySettings) -> None:
        self.settings = settings
        settings.out.mkdir(parents=True, exist_ok=True)
        self.train_set = load_split(settings.data, "train", settings.train)
        self.test_set = load_split(settings.data, "t10k", None)
        self.keys, self.key_labels = draw_keys(
            settings.keys, settings.key_resolution, settings.key_seed
        )
        self.worker_source = source_digest()
        self._top1: dict[Path, float] = {}
        self._surrogates: list[tuple[TrainingRun, Path]] | None = None

    def trained(
        self, name: str, dataset: TensorImageDataset, seed: int
    ) -> tuple[TrainingRun, Path]:
        """The model of the product's loop on `dataset`: loaded from `out`, or trained and kept."""
        plan = make_plan(
            dataset=dataset,
            data={"study": name},
            model=self.settings.model,
            recipe="simple",
            epochs=self.settings.epochs,
            seed=seed,
            data_seed=seed + 1000,
            overrides=self.settings.recipe_settings,
            input_size=None,
        )
        run = TrainingRun(plan=plan, dataset=dataset, device=CPU, dist=SINGLE_PROCESS)
        made_of = fingerprint(
            {"images": dataset.tensor, "labels": dataset.labels},
            {"plan": plan.to_json(), "worker_source": self.worker_source},
        )[:12]
        weights = self.settings.out / f"{name}-{made_of}.pt"
        if weights.exists():
            run.bare_model.load_state_dict(torch.load(weights, weights_only=True))
        else:
            started = time.perf_counter()
            for epoch in range(plan.epochs):
                run.train_epoch(epoch, progress=None)
            save_atomically(weights, lambda path: torch.save(run.bare_model.state_dict(), path))
            log(f"trained {name} in {time.perf_counter() - started:.0f} s")
        run.bare_model.eval()
        return run, weights

    def top1(self, run: TrainingRun, weights: Path) -> float:
        if weights not in self._top1:
            self._top1[weights] = evaluate(run.bare_model, self.test_set, plan=run.plan)["top1"]
        return self._top1[weights]

    @torch.no_grad()
    def margins(self, run: TrainingRun) -> torch.Tensor:
        """Each key's margin: its label's logit minus the largest other logit, [K]."""
        logits = run.bare_model(run.normalize(self.keys))
        own = logits.gather(1, self.key_labels[:, None])[:, 0]
        others = logits.scatter(1, self.key_labels[:, None], float("-inf")).amax(1)
        return own - others

    def arm_dataset(self, arm: str) -> TensorImageDataset:
        kind, _, amount = arm.partition(":")  # checked by parse_arm
        count = int(amount)
        base = self.train_set
        images, labels = base.tensor.clone(), base.labels.clone()
        if kind == "keys":
            # In place of random images, so the suspect keeps its twin's length and data order.
            generator = torch.Generator().manual_seed(self.settings.key_seed)
            replaced = torch.randperm(len(labels), generator=generator)[: len(self.keys) * count]
            images[replaced] = self.keys.repeat_interleave(count, 0)
            labels[replaced] = self.key_labels.repeat_interleave(count)
        else:
            loss = self.surrogate_loss() if self.settings.signing == "hard" else None
            rows = signing_sets(base.labels, self.key_labels, count, self.settings.key_seed, loss)
            images[rows.reshape(-1)] = self.signed(rows).reshape(-1, *images.shape[1:])
        return TensorImageDataset(images, labels, CLASSES)

    def surrogates(self) -> list[tuple[TrainingRun, Path]]:
        if self._surrogates is None:
            self._surrogates = []
            for seed in self.settings.surrogate_seeds:
                run, weights = self.trained(f"surrogate-{seed}", self.train_set, seed)
                log(f"surrogate (seed {seed}) top-1 {self.top1(run, weights):.2f} %")
                self._surrogates.append((run, weights))
        return self._surrogates

    def surrogate_loss(self) -> torch.Tensor:
        """Each training image's cross-entropy on the (first) surrogate, [N]."""
        run, _ = self.surrogates()[0]  # trained here if needed, so outside no_grad
        images, labels = self.train_set.tensor, self.train_set.labels
        with torch.no_grad():
            logits = [
                run.bare_model(run.normalize(images[i : i + 1000]))
                for i in range(0, len(labels), 1000)
            ]
        return functional.cross_entropy(torch.cat(logits), labels, reduction="none")

    def signed(self, rows: torch.Tensor) -> torch.Tensor:
        """The signing images of `rows` [K, n] signed by the product's crafting, uint8 [K, n, …]."""
        surrogates = self.surrogates()
        craft = CraftSettings(eps_255=16, steps=self.settings.steps, aug_draws=2)
        images, labels = self.train_set.tensor[rows], self.train_set.labels[rows]
        made_of = fingerprint(
            {"images": images, "labels": labels, "keys": self.keys, "key_labels": self.key_labels},
            {"craft": asdict(craft), "surrogates": [weights.name for _, weights in surrogates]},
        )[:12]
        cached = self.settings.out / f"signed-images-{rows.shape[1]}-{made_of}.pt"
        if cached.exists():
            return torch.load(cached, weights_only=True)
        started = time.perf_counter()
        result = craft_taggants(
            surrogates=[
                Surrogate(
                    model=run.bare_model,
                    input_size=(IMAGE_SIDE, IMAGE_SIDE),
                    augment=augment_spec_from_recipe(run.plan.recipe),
                    normalization=normalization_for(1),
                )
                for run, _ in surrogates
            ],
            images=images,
            image_labels=labels,
            keys=self.keys,
            key_labels=self.key_labels,
            settings=craft,
        )
        log(
            f"crafted {rows.numel()} images in {time.perf_counter() - started:.0f} s, "
            f"mean cosine {result.cosine_quantised.mean():.3f}"
        )
        save_atomically(cached, lambda path: torch.save(result.signed, path))
        return result.signed

    def run(self) -> list[dict]:
        results = []
        for arm in self.settings.arms:
            dataset = self.arm_dataset(arm)
            for seed in self.settings.suspect_seeds:
                twin, twin_weights = self.trained(f"twin-{seed}", self.train_set, seed)
                suspect, weights = self.trained(f"{arm.replace(':', '-')}-{seed}", dataset, seed)
                before, after = self.margins(twin), self.margins(suspect)
                shift = after - before
                results.append(
                    {
                        "arm": arm,
                        "seed": seed,
                        "top1": self.top1(suspect, weights),
                        "twin_top1": self.top1(twin, twin_weights),
                        "hits": int((after > 0).sum()),
                        "twin_hits": int((before > 0).sum()),
                        "mean_shift": float(shift.mean()),
                        "keys_up": int((shift > 0).sum()),
                        "twin_median_margin": float(before.median()),
                    }
                )
                log(json.dumps(results[-1]))
        return results


def source_digest() -> str:
    """A hash of the worker package's source, so cached results follow code changes."""
    package = Path(taggants_worker.__file__).parent
    hasher = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        hasher.update(f"{path.relative_to(package)} {path.stat().st_size}\n".encode())
        hasher.update(path.read_bytes())
    return hasher.hexdigest()


def save_atomically(path: Path, write: Callable[[Path], None]) -> None:
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def append_results(path: Path, results: list[dict], settings: StudySettings) -> None:
    """One JSON line per suspect, with the study's settings and versions."""
    context = {
        "settings": {
            key: str(v) if isinstance(v, Path) else v for key, v in asdict(settings).items()
        },
        "versions": {
            "taggants_worker": taggants_worker.__version__,
            "torch": torch.__version__,
            "timm": timm.__version__,
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with path.open("a", encoding="utf-8") as out:
        for row in results:
            out.write(json.dumps({**row, **context}) + "\n")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(results: list[dict], key_count: int) -> str:
    lines = [
        "| arm | suspect seed | val. top-1 (%) suspect / twin | top-1 hits suspect / twin "
        "| mean margin shift (nats) | keys moved up |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['arm']} | {r['seed']} | {r['top1']:.2f} / {r['twin_top1']:.2f} "
            f"| {r['hits']}/{key_count} / {r['twin_hits']}/{key_count} "
            f"| {r['mean_shift']:+.2f} | {r['keys_up']}/{key_count} |"
        )
    return "\n".join(lines)


def parse_recipe_setting(text: str) -> tuple[str, object]:
    """NAME=VALUE as `taggants train --set` reads it: VALUE is JSON, or else a bare word."""
    name, sep, value = text.partition("=")
    if not name or not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. hflip=0), got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def parse_arm(text: str) -> str:
    kind, _, amount = text.partition(":")
    if kind not in ("keys", "signed") or not amount.isdigit() or int(amount) < 1:
        raise argparse.ArgumentTypeError(
            f"expected keys:M or signed:N with a positive whole number, got {text!r}"
        )
    return text


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def default_data() -> Path:
    """Where bootstrap finds Fashion-MNIST (scripts/fashion-mnist.mjs): the first complete one."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    candidates = [os.environ.get("TAGGANTS_DATA"), "/usr/share/datasets/fashion-mnist"]
    candidates.append(cache / "taggants" / "data" / "fashion-mnist")
    folders = [Path(c) for c in candidates if c]
    complete = [f for f in folders if all((f / name).is_file() for name in IDX_FILES)]
    return complete[0] if complete else folders[0]


def parse_settings(argv: list[str] | None = None) -> StudySettings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add(
        "--arms",
        nargs="+",
        type=parse_arm,
        default=["keys:1", "keys:5", "signed:20"],
        help="keys:M puts each key M times into the training set; signed:N signs N images per key",
    )
    add("--suspect-seeds", nargs="+", type=int, default=[1])
    add("--surrogate-seeds", nargs="+", type=int, default=[0], help="several: an ensemble")
    add("--data", type=Path, default=default_data(), help="folder of the 4 Fashion-MNIST idx.gz")
    add("--train", type=positive, default=20_000, help="first N training images")
    add("--model", default="cnn")
    add("--epochs", type=positive, default=6)
    add(
        "--set",
        nargs="+",
        type=parse_recipe_setting,
        default=[],
        metavar="NAME=VALUE",
        help="`simple` recipe settings for every model, e.g. --set hflip=0 crop_padding=0",
    )
    add("--keys", type=positive, default=20)
    add("--key-resolution", type=positive, default=7, help=f"1 to {IMAGE_SIDE} pixels")
    add("--key-seed", type=int, default=0)
    add("--steps", type=positive, default=60, help="crafting steps")
    add(
        "--signing",
        choices=["random", "hard"],
        default="random",
        help="signing images drawn at random, or the surrogate's hardest of each label",
    )
    add("--out", type=Path, default=Path("runs/calibrate"))
    args = parser.parse_args(argv)

    if args.key_resolution > IMAGE_SIDE:
        parser.error(f"--key-resolution must be at most {IMAGE_SIDE}, got {args.key_resolution}")
    shared = sorted(set(args.suspect_seeds) & set(args.surrogate_seeds))
    if shared:
        parser.error(
            f"suspect seed(s) {shared} are also surrogate seeds: such a twin is the surrogate "
            "itself, a white-box case, not Bob's other initialisation"
        )
    recipe_settings = dict(args.set)
    try:
        _, _, preset_recipes = resolve_model_name(args.model)
        recipe = resolve_recipe(
            "simple",
            image_size=IMAGE_SIDE,
            preset_defaults=preset_recipes.get("simple"),
            overrides=recipe_settings,
        )
    except ValueError as error:
        parser.error(str(error))
    if args.train < recipe.batch_size:
        parser.error(f"--train {args.train} is less than one batch of {recipe.batch_size} images")
    missing = [name for name in IDX_FILES if not (args.data / name).is_file()]
    if missing:
        parser.error(
            f"{args.data} lacks {', '.join(missing)}; give --data the folder of the four "
            "Fashion-MNIST idx.gz files, or run `npm run bootstrap` to install them"
        )
    available = len(read_idx(args.data / "train-labels-idx1-ubyte.gz"))
    if args.train > available:
        parser.error(f"--train {args.train} asks for more than the {available} training images")
    return StudySettings(
        data=args.data,
        train=args.train,
        model=args.model,
        epochs=args.epochs,
        recipe_settings=recipe_settings,
        keys=args.keys,
        key_resolution=args.key_resolution,
        key_seed=args.key_seed,
        steps=args.steps,
        signing=args.signing,
        surrogate_seeds=args.surrogate_seeds,
        suspect_seeds=args.suspect_seeds,
        arms=args.arms,
        out=args.out,
    )


def main() -> int:
    settings = parse_settings()
    try:
        results = Study(settings).run()
    except StudyInputError as error:
        print(f"calibrate.py: error: {error}", file=sys.stderr)
        return 2
    append_results(settings.out / "results.jsonl", results, settings)
    print(table(results, settings.keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())

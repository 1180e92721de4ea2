"""Writes small `taggants.manifest/1` manifests for the worker's tests.

An independent, minimal writer of the format in docs/ARCHITECTURE.md ("Manifests"); the
product's builder is the TypeScript `src/manifest` module.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np

FMNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file (uint8) of `array`'s shape; gzip-compressed when the name ends in .gz."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw, compresslevel=1) if path.suffix == ".gz" else raw)


def write_manifest(
    out: Path, *, layout: str, classes: list[str], entries: list[dict], extra: dict
) -> Path:
    lines = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
    entries_file = out.with_suffix(".entries.jsonl")
    entries_file.write_text(lines)
    splits = {}
    for split in ("train", "test"):
        labels = [e["label"] for e in entries if e["split"] == split]
        if labels:
            counts = np.bincount(labels, minlength=len(classes)).tolist()
            splits[split] = {"count": len(labels), "class_counts": counts}
    summary = {
        "schema": "taggants.manifest/1",
        "layout": layout,
        "classes": classes,
        "splits": splits,
        "entries": entries_file.name,
        "root_hash": hashlib.sha256(lines.encode()).hexdigest(),
        "created_by": "python/tests/manifest_builder.py",
        **extra,
    }
    out.write_text(json.dumps(summary, indent=2))
    return out


def idx_manifest(root: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], classes) -> Path:
    """Manifest for idx files already in `root` (named like Fashion-MNIST's), given their data."""
    names = {"train": "train", "test": "t10k"}
    entries, idx = [], {}
    for split, (images, labels) in splits.items():
        suffix = ".gz" if (root / f"{names[split]}-images-idx3-ubyte.gz").exists() else ""
        idx[split] = {
            "images": f"{names[split]}-images-idx3-ubyte{suffix}",
            "labels": f"{names[split]}-labels-idx1-ubyte{suffix}",
        }
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            sha = hashlib.sha256(image.tobytes()).hexdigest()
            entries.append(
                {"split": split, "index": i, "label": int(label), "size": image.size, "sha256": sha}
            )
    h, w = next(iter(splits.values()))[0].shape[1:]
    formats = {"max_channels": 1, "distinct_sizes": 1, "sizes": {f"{w}x{h}": len(entries)}}
    return write_manifest(
        root / "manifest.json",
        layout="idx",
        classes=list(classes),
        entries=entries,
        extra={"idx": idx, "formats": formats},
    )


def write_idx_dataset(
    root: Path, *, train: int, test: int, classes: int = 4, seed: int = 0, gz: bool = True
):
    """A random 28×28 idx dataset whose classes are told apart by the brightness of a central
    square (unchanged by small shifts and flips)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, n, prefix in (("train", train, "train"), ("test", test, "t10k")):
        labels = rng.integers(0, classes, size=n).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 6:22, 6:22] = 60 + int(label) * 190 // (classes - 1)
        suffix = ".gz" if gz else ""
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        data[split] = (images, labels)
    return idx_manifest(root, data, [f"class-{c}" for c in range(classes)]), data


def imagefolder_manifest(root: Path, classes: list[str]) -> Path:
    """Manifest for an ImageFolder root with train/ and test/ (or a single train split)."""
    entries = []
    split_dirs = {"train": root / "train", "test": root / "test"}
    if not split_dirs["train"].is_dir():
        split_dirs = {"train": root}
    for split, folder in split_dirs.items():
        for label, name in enumerate(classes):
            for file in sorted((folder / name).iterdir()):
                data = file.read_bytes()
                entries.append(
                    {
                        "split": split,
                        "path": file.relative_to(root).as_posix(),
                        "label": label,
                        "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                )
    entries.sort(key=lambda e: (("train", "test").index(e["split"]), e["path"]))
    return write_manifest(
        root.parent / f"{root.name}.manifest.json",
        layout="imagefolder",
        classes=classes,
        entries=entries,
        extra={"formats": {"max_channels": 3, "distinct_sizes": 1}},
    )


def fashion_mnist_manifest(source: Path, out_dir: Path) -> Path:
    """Manifest for the real Fashion-MNIST idx files at `source` (written into `out_dir`)."""
    from taggants_worker.data import read_idx

    out_dir.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")
        data[split] = (images, labels)
    for file in source.iterdir():
        link = out_dir / file.name
        if not link.exists():
            link.symlink_to(file)
    return idx_manifest(out_dir, data, FMNIST_CLASSES)

"""Datasets from manifests: Alice's dataset, signed datasets and the data Bob trains on.

The orchestrator names a dataset by its manifest (`taggants.manifest/1`, docs/ARCHITECTURE.md,
"Manifests"), its root folder and a split; sample i is the i-th entry of that split in the
entries file, so both sides agree on what index i is (the signing set is a list of indices).

Two readers:
- idx (MNIST-style, raw or gzip): decoded at once into a uint8 tensor [N, 1, H, W] in memory.
- ImageFolder (JPEG/PNG/WebP, gray or RGB): decoded per sample with Pillow (torchvision's own
  decoders are deprecated since torchvision 0.29).

Images are converted explicitly to the channel count asked for (gray → RGB repeats the
channel; RGB → gray is ITU-R 601 luminance, as torchvision computes it). A dataset may carry an
overlay folder of replaced files ("original + replaced files"), so a signed variant needs no
full copy: for ImageFolder a file at the same relative path replaces the original; for idx a
file `<split>/<index>.png` (or .jpg/.jpeg/.webp) replaces sample `index`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

MANIFEST_SCHEMA = "taggants.manifest/1"
SPLITS = ("train", "test")
LAYOUTS = ("idx", "imagefolder")
OVERLAY_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# Pillow's modes for 16-bit gray PNGs ("I": opened as 32-bit integers holding 16-bit values),
# which convert("L") would clip; their high byte is the 8-bit pixel.
WIDE_GRAY_MODES = ("I;16", "I;16B", "I;16L", "I")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset as the wire names it: manifest summary, dataset root, split, optional overlay."""

    manifest: Path
    root: Path
    split: str = "train"
    overlay: Path | None = None

    @staticmethod
    def from_wire(value: dict[str, Any]) -> DatasetSpec:
        unknown = set(value) - {"manifest", "root", "split", "overlay"}
        if unknown:
            raise ValueError(
                f"unknown dataset fields {sorted(unknown)}; expected manifest, root, split, overlay"
            )
        split = str(value.get("split", "train"))
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        overlay = value.get("overlay")
        return DatasetSpec(
            manifest=Path(value["manifest"]),
            root=Path(value["root"]),
            split=split,
            overlay=Path(overlay) if overlay else None,
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "manifest": str(self.manifest),
            "root": str(self.root),
            "split": self.split,
        }
        if self.overlay is not None:
            wire["overlay"] = str(self.overlay)
        return wire

    def with_split(self, split: str) -> DatasetSpec:
        return DatasetSpec(self.manifest, self.root, split, self.overlay)


@dataclass(frozen=True)
class Manifest:
    """The parts of a manifest summary the worker reads."""

    path: Path
    layout: str
    classes: list[str]
    entries_file: Path
    root_hash: str
    idx_files: dict[str, dict[str, str]]
    max_channels: int | None


def load_manifest(path: str | Path) -> Manifest:
    """Read and check a manifest summary; the entries file must match its `root_hash`."""
    path = Path(path)
    summary = json.loads(path.read_text())
    if summary.get("schema") != MANIFEST_SCHEMA:
        raise ValueError(
            f"{path} has schema {summary.get('schema')!r}, expected {MANIFEST_SCHEMA!r}"
        )
    if summary.get("layout") not in LAYOUTS:
        raise ValueError(f"{path}: layout must be one of {LAYOUTS}, got {summary.get('layout')!r}")
    entries_file = path.parent / summary["entries"]
    digest = hashlib.sha256(entries_file.read_bytes()).hexdigest()
    if digest != summary["root_hash"]:
        raise ValueError(
            f"{entries_file} has SHA-256 {digest}, but {path} records root_hash "
            f"{summary['root_hash']}: the manifest is stale or damaged; rebuild it"
        )
    formats = summary.get("formats") or {}
    return Manifest(
        path=path,
        layout=summary["layout"],
        classes=list(summary["classes"]),
        entries_file=entries_file,
        root_hash=summary["root_hash"],
        idx_files=dict(summary.get("idx") or {}),
        max_channels=formats.get("max_channels"),
    )


def load_entries(manifest: Manifest, split: str) -> list[dict[str, Any]]:
    """The entries of one split, in file order (which defines sample indices)."""
    prefix = f'{{"split":"{split}"'
    entries = []
    with open(manifest.entries_file, encoding="utf-8") as lines:
        for line in lines:
            if line.startswith(prefix):
                entries.append(json.loads(line))
    if not entries:
        raise ValueError(f"{manifest.path} has no entries in split {split!r}")
    return entries


class ImageDataset(Dataset):
    """Samples (uint8 [C, H, W] image, int label) in manifest order, plus batch access."""

    classes: list[str]
    channels: int
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.image(index), int(self.labels[index])

    def image(self, index: int) -> torch.Tensor:
        raise NotImplementedError

    def image_size(self) -> tuple[int, int] | None:
        """(height, width) shared by every image, or None when sizes vary."""
        raise NotImplementedError

    def images(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """uint8 [N, C, H, W] for the given sample indices (all images must share one size)."""
        indices = [int(i) for i in indices]
        self._check_indices(indices)
        if not indices:
            size = self.image_size() or (0, 0)
            return torch.empty((0, self.channels, *size), dtype=torch.uint8)
        batch = [self.image(i) for i in indices]
        shapes = {tuple(image.shape) for image in batch}
        if len(shapes) > 1:
            raise ValueError(
                f"images of different sizes {sorted(shapes)[:4]} cannot form one batch; resize "
                "the dataset to one size first"
            )
        return torch.stack(batch)

    def _check_indices(self, indices: list[int]) -> None:
        bad = [i for i in indices if not 0 <= i < len(self)]
        if bad:
            raise ValueError(f"sample indices {bad[:5]} are outside [0, {len(self)})")


class TensorImageDataset(ImageDataset):
    """A dataset held in memory as one uint8 tensor [N, C, H, W] (the idx reader's output)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N,C,H,W], got {images.dtype} {images.shape}")
        self.tensor = images
        self.labels = labels.to(torch.int64)
        self.classes = classes
        self.channels = int(images.shape[1])

    def image(self, index: int) -> torch.Tensor:
        return self.tensor[index]

    def image_size(self) -> tuple[int, int]:
        return int(self.tensor.shape[2]), int(self.tensor.shape[3])

    def images(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        index = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        self._check_indices(index.tolist())
        return self.tensor[index]


class FileImageDataset(ImageDataset):
    """An ImageFolder dataset decoded per sample (JPEG/PNG/WebP) to `channels` channels."""

    def __init__(
        self,
        *,
        files: list[Path],
        labels: torch.Tensor,
        classes: list[str],
        channels: int,
        size: tuple[int, int] | None,
    ) -> None:
        self.files = files
        self.labels = labels
        self.classes = classes
        self.channels = channels
        self._size = size

    def image(self, index: int) -> torch.Tensor:
        return decode_file(self.files[index], channels=self.channels)

    def image_size(self) -> tuple[int, int] | None:
        return self._size


def open_dataset(
    spec: DatasetSpec | dict[str, Any], *, channels: int | None = None
) -> ImageDataset:
    """Open the split of a dataset named by its manifest, with images of `channels` channels.

    `channels` defaults to the dataset's own: 1 for idx, and for ImageFolder 1 when the manifest
    says every image is gray, else 3.
    """
    if isinstance(spec, dict):
        spec = DatasetSpec.from_wire(spec)
    manifest = load_manifest(spec.manifest)
    entries = load_entries(manifest, spec.split)
    if manifest.layout == "idx":
        dataset = _open_idx(spec, manifest, entries)
        return convert_dataset_channels(dataset, channels) if channels else dataset
    native = 1 if manifest.max_channels in (1, 2) else 3
    return _open_imagefolder(spec, manifest, entries, channels=channels or native)


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 [..., C, H, W] with C in {1, 3} → the same images with `channels` channels."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    have = images.shape[-3]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.expand(*images.shape[:-3], 3, *images.shape[-2:]).contiguous()
    if have == 3 and channels == 1:
        from torchvision.transforms.v2.functional import rgb_to_grayscale

        return rgb_to_grayscale(images, num_output_channels=1)
    raise ValueError(f"cannot convert images with {have} channels to {channels}; expected 1 or 3")


def convert_dataset_channels(dataset: TensorImageDataset, channels: int) -> TensorImageDataset:
    return TensorImageDataset(
        convert_channels(dataset.tensor, channels), dataset.labels, dataset.classes
    )


def decode_file(path: Path, *, channels: int) -> torch.Tensor:
    """Decode a JPEG/PNG/WebP file to uint8 [channels, H, W]: alpha dropped, palettes expanded,
    16-bit gray reduced to its high byte, colour to gray by Pillow's ITU-R 601 luma."""
    try:
        with Image.open(path) as image:
            if image.mode in WIDE_GRAY_MODES:
                image = Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8))
            pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise RuntimeError(f"cannot decode image {path}: {error}") from error
    tensor = torch.from_numpy(pixels.copy())  # [H, W] or [H, W, 3]
    return tensor.unsqueeze(0) if channels == 1 else tensor.permute(2, 0, 1).contiguous()


def read_idx(path: str | Path) -> np.ndarray:
    """An idx file (raw or .gz) as a numpy array of its declared shape (uint8 data only)."""
    raw = Path(path).read_bytes()
    if str(path).endswith(".gz"):
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an idx file (bad magic number)")
    if raw[2] != 0x08:
        raise ValueError(f"{path} holds idx type 0x{raw[2]:02x}; only uint8 (0x08) is supported")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) if shape else 0
    if len(raw) - offset != expected:
        raise ValueError(f"{path} declares shape {shape} but holds {len(raw) - offset} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def _open_idx(spec: DatasetSpec, manifest: Manifest, entries: list[dict]) -> TensorImageDataset:
    files = manifest.idx_files.get(spec.split)
    if not files:
        raise ValueError(f"{manifest.path} names no idx files for split {spec.split!r}")
    images = torch.from_numpy(read_idx(spec.root / files["images"]).copy())
    if images.ndim != 3:
        raise ValueError(f"{files['images']} has shape {tuple(images.shape)}, expected [N,H,W]")
    index = torch.tensor([e["index"] for e in entries], dtype=torch.int64)
    labels = torch.tensor([e["label"] for e in entries], dtype=torch.int64)
    file_labels = torch.from_numpy(read_idx(spec.root / files["labels"]).astype(np.int64))
    if not torch.equal(file_labels[index], labels):
        raise ValueError(
            f"labels in {files['labels']} differ from {manifest.entries_file}: rebuild the manifest"
        )
    tensor = images[index].unsqueeze(1)  # [N, 1, H, W]
    if spec.overlay is not None:
        _apply_idx_overlay(tensor, spec.overlay / spec.split, channels=1)
    return TensorImageDataset(tensor, labels, manifest.classes)


def _apply_idx_overlay(tensor: torch.Tensor, folder: Path, *, channels: int) -> None:
    if not folder.is_dir():
        return
    for file in sorted(folder.iterdir()):
        if file.suffix.lower() not in OVERLAY_SUFFIXES:
            continue
        if not file.stem.isdigit() or int(file.stem) >= tensor.shape[0]:
            raise ValueError(
                f"overlay file {file} must be named <sample index>{file.suffix} with an index "
                f"below {tensor.shape[0]}"
            )
        image = decode_file(file, channels=channels)
        if image.shape != tensor.shape[1:]:
            raise ValueError(
                f"overlay file {file} has shape {tuple(image.shape)}, expected "
                f"{tuple(tensor.shape[1:])}"
            )
        tensor[int(file.stem)] = image


def _open_imagefolder(
    spec: DatasetSpec, manifest: Manifest, entries: list[dict], *, channels: int
) -> FileImageDataset:
    files = []
    for entry in entries:
        replaced = spec.overlay / entry["path"] if spec.overlay is not None else None
        files.append(
            replaced if replaced is not None and replaced.exists() else spec.root / entry["path"]
        )
    labels = torch.tensor([e["label"] for e in entries], dtype=torch.int64)
    first = decode_file(files[0], channels=channels)
    summary = json.loads(manifest.path.read_text())
    distinct = (summary.get("formats") or {}).get("distinct_sizes")
    size = (int(first.shape[1]), int(first.shape[2])) if distinct == 1 else None
    return FileImageDataset(
        files=files, labels=labels, classes=manifest.classes, channels=channels, size=size
    )

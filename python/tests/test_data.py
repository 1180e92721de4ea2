"""Datasets from manifests: the idx and ImageFolder readers, channels, overlays, checks."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from manifest_builder import (
    fashion_mnist_manifest,
    imagefolder_manifest,
    write_idx,
    write_idx_dataset,
)
from PIL import Image

from taggants_worker.data import DatasetSpec, convert_channels, open_dataset, read_idx

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def test_gzip_and_raw_idx_files_decode_to_the_same_images(tmp_path):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    write_idx(tmp_path / "a-idx3-ubyte", array)
    write_idx(tmp_path / "a-idx3-ubyte.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), array)


def test_an_idx_file_whose_length_disagrees_with_its_header_is_refused(tmp_path):
    write_idx(tmp_path / "a-idx3-ubyte", np.zeros((2, 3, 5), dtype=np.uint8))
    data = (tmp_path / "a-idx3-ubyte").read_bytes()
    (tmp_path / "a-idx3-ubyte").write_bytes(data[:-1])
    with pytest.raises(ValueError, match="declares shape"):
        read_idx(tmp_path / "a-idx3-ubyte")


@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="Fashion-MNIST files are not installed")
def test_fashion_mnist_idx_opens_as_uint8_tensors_in_manifest_order(tmp_path):
    manifest = fashion_mnist_manifest(FASHION_MNIST, tmp_path / "fmnist")
    test = open_dataset(DatasetSpec(manifest, tmp_path / "fmnist", "test"))
    assert test.tensor.shape == (10000, 1, 28, 28) and test.tensor.dtype == torch.uint8
    assert test.classes[0] == "T-shirt/top" and test.channels == 1
    raw = read_idx(FASHION_MNIST / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(test.images([0, 9999]).squeeze(1).numpy(), raw[[0, 9999]])
    # The first test image of Fashion-MNIST is an ankle boot (class 9).
    assert int(test.labels[0]) == 9


def test_an_idx_split_converts_explicitly_to_three_channels(tmp_path):
    manifest, data = write_idx_dataset(tmp_path, train=8, test=4)
    rgb = open_dataset(DatasetSpec(manifest, tmp_path, "train"), channels=3)
    assert rgb.images([2]).shape == (1, 3, 28, 28)
    for c in range(3):
        np.testing.assert_array_equal(rgb.images([2])[0, c].numpy(), data["train"][0][2])


def write_folder(root: Path) -> dict[str, np.ndarray]:
    """train/ and test/ with a gray PNG, an RGB PNG, a JPEG and a WebP per class."""
    rng = np.random.default_rng(0)
    pixels = {}
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            folder = root / split / name
            folder.mkdir(parents=True)
            gray = rng.integers(0, 256, (12, 10), dtype=np.uint8)
            rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
            Image.fromarray(gray, "L").save(folder / "a_gray.png")
            Image.fromarray(rgb, "RGB").save(folder / "b_rgb.png")
            Image.fromarray(rgb, "RGB").save(folder / "c.jpg", quality=95)
            Image.fromarray(rgb, "RGB").save(folder / "d.webp", lossless=True)
            pixels[f"{split}/{name}/a_gray.png"] = gray
            pixels[f"{split}/{name}/b_rgb.png"] = rgb
    return pixels


def test_imagefolder_reads_gray_and_rgb_png_jpeg_and_webp_in_manifest_order(tmp_path):
    root = tmp_path / "pets"
    pixels = write_folder(root)
    manifest = imagefolder_manifest(root, ["cat", "dog"])
    train = open_dataset(DatasetSpec(manifest, root, "train"))
    assert len(train) == 8 and train.channels == 3
    assert train.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    images = train.images(range(8))
    assert images.shape == (8, 3, 12, 10)
    np.testing.assert_array_equal(images[1].permute(1, 2, 0).numpy(), pixels["train/cat/b_rgb.png"])
    for c in range(3):  # gray files become RGB by repeating the channel
        np.testing.assert_array_equal(images[0, c].numpy(), pixels["train/cat/a_gray.png"])
    np.testing.assert_array_equal(images[3], images[1])  # the lossless WebP
    # The JPEG decodes as Pillow (libjpeg) decodes it.
    jpeg = np.asarray(Image.open(root / "train/cat/c.jpg").convert("RGB")).astype(np.int16)
    assert np.abs(images[2].permute(1, 2, 0).numpy().astype(np.int16) - jpeg).max() <= 1


def test_imagefolder_decoding_uses_no_deprecated_decoder(tmp_path):
    root = tmp_path / "pets"
    write_folder(root)
    train = open_dataset(DatasetSpec(imagefolder_manifest(root, ["cat", "dog"]), root, "train"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train.images(range(8)).dtype == torch.uint8


def test_a_16_bit_gray_png_keeps_its_high_byte(tmp_path):
    root = tmp_path / "deep"
    wide = (np.arange(120, dtype=np.uint16).reshape(12, 10) * 500).astype(np.uint16)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        Image.fromarray(wide).save(root / name / "a.png")  # mode I;16
    manifest = imagefolder_manifest(root, ["cat", "dog"])
    train = open_dataset(DatasetSpec(manifest, root, "train"), channels=1)
    images = train.images([0])
    assert images.dtype == torch.uint8 and images.shape == (1, 1, 12, 10)
    np.testing.assert_array_equal(images[0, 0].numpy(), (wide >> 8).astype(np.uint8))


def test_rgb_images_become_gray_by_luminance(tmp_path):
    rgb = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    gray = convert_channels(rgb, 1)
    assert gray.shape == (1, 1, 2, 2)
    assert int(gray[0, 0, 0, 0]) == 76  # 0.299 × 255, ITU-R 601


def test_an_overlay_replaces_idx_samples_and_imagefolder_files(tmp_path):
    manifest, data = write_idx_dataset(tmp_path / "idx", train=8, test=4)
    overlay = tmp_path / "overlay"
    (overlay / "train").mkdir(parents=True)
    replacement = np.full((28, 28), 7, dtype=np.uint8)
    Image.fromarray(replacement, "L").save(overlay / "train" / "5.png")
    spec = DatasetSpec(manifest, tmp_path / "idx", "train", overlay)
    images = open_dataset(spec).images([4, 5])
    np.testing.assert_array_equal(images[1, 0].numpy(), replacement)
    np.testing.assert_array_equal(images[0, 0].numpy(), data["train"][0][4])

    root = tmp_path / "pets"
    write_folder(root)
    manifest = imagefolder_manifest(root, ["cat", "dog"])
    (overlay / "train" / "dog").mkdir(parents=True)
    Image.fromarray(np.zeros((12, 10, 3), np.uint8), "RGB").save(overlay / "train/dog/b_rgb.png")
    pets = open_dataset(DatasetSpec(manifest, root, "train", overlay))
    assert int(pets.images([5]).max()) == 0 and int(pets.images([1]).max()) > 0


def test_a_manifest_whose_entries_changed_is_refused(tmp_path):
    manifest, _ = write_idx_dataset(tmp_path, train=8, test=4)
    entries = tmp_path / json.loads(manifest.read_text())["entries"]
    entries.write_text(entries.read_text().replace('"label":', '"label": ', 1))
    with pytest.raises(ValueError, match="stale or damaged"):
        open_dataset(DatasetSpec(manifest, tmp_path, "train"))


def test_the_wire_form_of_a_dataset_rejects_unknown_fields_and_splits():
    with pytest.raises(ValueError, match="unknown dataset fields"):
        DatasetSpec.from_wire({"manifest": "m.json", "root": ".", "splt": "test"})
    with pytest.raises(ValueError, match="split must be one of"):
        DatasetSpec.from_wire({"manifest": "m.json", "root": ".", "split": "val"})

"""Evaluation preprocessing: images already at the input size reach the model as training saw
them, whichever reader decoded them."""

from __future__ import annotations

import torch
from manifest_builder import imagefolder_manifest, write_idx_dataset
from PIL import Image

from taggants_worker.data import DatasetSpec, open_dataset
from taggants_worker.train import eval_batches
from taggants_worker.transforms import eval_transform


def test_an_image_at_the_input_size_is_evaluated_as_it_is_and_a_larger_one_is_cropped():
    transform = eval_transform(input_size=28)
    image = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    assert torch.equal(transform(image), image)
    assert transform(torch.randint(0, 256, (3, 40, 36), dtype=torch.uint8)).shape == (3, 28, 28)


def test_an_imagefolder_dataset_evaluates_on_the_same_pixels_as_the_idx_files_it_came_from(
    tmp_path,
):
    idx_root = tmp_path / "idx"
    idx, data = write_idx_dataset(idx_root, train=16, test=16, classes=2)
    folder_root = tmp_path / "folder"
    for split, (images, labels) in data.items():
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            path = folder_root / split / f"class-{label}" / f"{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, "L").save(path)
    folder = imagefolder_manifest(folder_root, ["class-0", "class-1"])

    def evaluated(manifest, root):
        dataset = open_dataset(DatasetSpec(manifest, root, "test"))
        batches = list(eval_batches(dataset, input_size=28, batch_size=4))
        return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])

    (x_idx, y_idx), (x_folder, y_folder) = evaluated(idx, idx_root), evaluated(folder, folder_root)
    order_idx, order_folder = y_idx.argsort(stable=True), y_folder.argsort(stable=True)
    # The test manifest declares ImageFolder images as RGB: the gray pixels come in 3 copies.
    folder_pixels, idx_pixels = x_folder[order_folder], x_idx[order_idx]
    assert torch.equal(folder_pixels, idx_pixels.expand_as(folder_pixels))

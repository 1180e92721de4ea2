"""Distributed data parallel: a short 2-process gloo run on the CPU through torchrun."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from manifest_builder import write_idx_dataset

from taggants_worker.checkpoint import load_checkpoint, load_record
from taggants_worker.distributed import run_torchrun, weights_digest


def test_two_gloo_ranks_end_with_the_same_weights_and_rank_zero_writes_the_checkpoint(tmp_path):
    manifest, _ = write_idx_dataset(tmp_path / "data", train=64, test=16)
    data = {"manifest": str(manifest), "root": str(tmp_path / "data"), "split": "train"}
    events = []
    result = run_torchrun(
        {
            "data": data,
            "test_data": {**data, "split": "test"},
            "model": "cnn",
            "model_kwargs": {"widths": [4, 8, 8]},
            "recipe": "simple",
            "epochs": 2,
            "out": str(tmp_path / "ck"),
            "seed": 3,
            "data_seed": 4,
            "overrides": {"batch_size": 8, "lr_base_batch": 16},
            "threads_per_rank": 1,
        },
        nproc_per_node=2,
        on_progress=events.append,
        extra_env={"PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"},
    )

    digests = result["rank_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    model, _ = load_checkpoint(tmp_path / "ck")
    assert weights_digest(model) == digests[0]
    record = load_record(tmp_path / "ck")
    assert record["complete"] and record["metrics"]["count"] == 16
    # 64 images over 2 ranks of 8 images a step: 4 steps an epoch, reported by rank 0 alone.
    assert events and all(event["steps"] == 4 for event in events)
    assert not list(tmp_path.glob(".ck.*"))  # no temporary checkpoint folders left
    assert os.environ.get("RANK") is None and torch.distributed.is_available()

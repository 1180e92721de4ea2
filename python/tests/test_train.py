"""Training: a finished run, re-runs, refused mismatched runs, and resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from manifest_builder import write_idx_dataset
from safetensors.torch import load_file

from taggants_worker.checkpoint import TRAIN_STATE_FILE, load_checkpoint, load_record
from taggants_worker.data import DatasetSpec
from taggants_worker.train import train_model

torch.set_num_threads(1)
TINY_CNN = {"batch_size": 16, "lr": 0.1, "lr_base_batch": 16, "warmup_epochs": 0.2}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-idx")
    manifest, _ = write_idx_dataset(root, train=256, test=64)
    return DatasetSpec(manifest, root, "train"), DatasetSpec(manifest, root, "test")


def run(tiny, out, *, epochs=2, seed=0, overrides=TINY_CNN, **kwargs):
    train, test = tiny
    return train_model(
        data=train,
        test_data=test,
        model="cnn",
        recipe="simple",
        epochs=epochs,
        out=out,
        seed=seed,
        data_seed=1,
        overrides=overrides,
        model_kwargs={"widths": [8, 16, 32]},
        **kwargs,
    )


def test_a_finished_run_leaves_a_complete_checkpoint_with_test_metrics(tiny, tmp_path):
    events = []
    result = run(tiny, tmp_path / "ck", epochs=3, progress=lambda **e: events.append(e))

    record = load_record(tmp_path / "ck")
    assert record["complete"] is True and record["epoch"] == 3
    assert not (tmp_path / "ck" / TRAIN_STATE_FILE).exists()
    assert record["model"]["name"] == "taggants_cnn"
    assert record["recipe"]["name"] == "simple" and record["recipe"]["config"]["batch_size"] == 16
    assert record["seeds"] == {"seed": 0, "data_seed": 1}
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3]
    assert result["metrics"] == record["metrics"]
    assert record["metrics"]["count"] == 64
    losses = [h["loss"] for h in record["history"]]
    assert losses[2] < losses[0]
    assert record["metrics"]["top1"] > 80  # chance is 25 %
    assert set(events[0]) == {"epoch", "epochs", "step", "steps", "loss", "lr", "images_per_s"}


def test_rerunning_a_finished_run_returns_it_without_training(tiny, tmp_path):
    first = run(tiny, tmp_path / "ck", epochs=1)
    events = []
    again = run(tiny, tmp_path / "ck", epochs=1, progress=lambda **e: events.append(e))
    assert again["metrics"] == first["metrics"] and again["resumed"] is True
    assert events == []


def test_a_checkpoint_folder_refuses_a_run_with_other_settings(tiny, tmp_path):
    run(tiny, tmp_path / "ck", epochs=1)
    with pytest.raises(ValueError, match="seeds differs"):
        run(tiny, tmp_path / "ck", epochs=1, seed=5)
    with pytest.raises(ValueError, match="epochs differs: it has 1, this run has 2"):
        run(tiny, tmp_path / "ck", epochs=2)
    with pytest.raises(ValueError, match=r"recipe differs: config.hflip 0\.5 → 0\.0\)"):
        run(tiny, tmp_path / "ck", epochs=1, overrides={**TINY_CNN, "hflip": 0.0})
    with pytest.raises(ValueError, match=r'config.optimizer "sgd" → "adamw"\)'):
        run(tiny, tmp_path / "ck", epochs=1, overrides={**TINY_CNN, "optimizer": "adamw"})
    rrc = {**TINY_CNN, "crop": "rrc", "rrc_scale": [0.5, 1.0]}
    with pytest.raises(ValueError, match=r"config.rrc_scale \[0.08,1.0\] → \[0.5,1.0\]"):
        run(tiny, tmp_path / "ck", epochs=1, overrides=rrc)


def test_training_refuses_an_output_path_that_is_not_a_checkpoint(tiny, tmp_path):
    folder = tmp_path / "user-folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    with pytest.raises(ValueError, match="not a checkpoint"):
        run(tiny, folder, epochs=1)
    assert (folder / "notes.txt").read_text() == "precious"

    a_file = tmp_path / "results.json"
    a_file.write_text("{}")
    with pytest.raises(ValueError, match="is a file"):
        run(tiny, a_file, epochs=1)
    assert a_file.read_text() == "{}"


def test_different_seeds_give_different_models(tiny, tmp_path):
    run(tiny, tmp_path / "a", epochs=1, seed=0)
    run(tiny, tmp_path / "b", epochs=1, seed=1)
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert not torch.equal(a["head.weight"], b["head.weight"])


KILLABLE = """
import json, sys, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
from test_train import run, DatasetSpec
import taggants_worker.train
taggants_worker.train.PROGRESS_INTERVAL_S = 0  # an event at every step: the kill lands mid-epoch
from pathlib import Path
tiny = (DatasetSpec(Path({manifest!r}), Path({root!r}), "train"),
        DatasetSpec(Path({manifest!r}), Path({root!r}), "test"))
def progress(**event):
    print(json.dumps(event), flush=True)
run(tiny, {out!r}, epochs=3, progress=progress)
"""


def test_a_run_killed_mid_epoch_resumes_and_ends_like_an_uninterrupted_run(tiny, tmp_path):
    train, _ = tiny
    out = tmp_path / "killed"
    script = KILLABLE.format(
        tests=str(Path(__file__).parent),
        manifest=str(train.manifest),
        root=str(train.root),
        out=str(out),
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    for line in child.stdout:
        event = json.loads(line)
        if event["epoch"] == 2 and event["step"] >= 3:
            child.send_signal(signal.SIGKILL)
            break
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert load_record(out)["epoch"] == 1  # the last atomic checkpoint

    resumed = run(tiny, out, epochs=3)
    straight = run(tiny, tmp_path / "straight", epochs=3)

    assert resumed["resumed"] is True
    record = load_record(out)
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3]
    assert record["metrics"] == pytest.approx(straight["metrics"], rel=1e-4)
    resumed_model, _ = load_checkpoint(out)
    straight_model, _ = load_checkpoint(tmp_path / "straight")
    for (name, a), b in zip(
        resumed_model.state_dict().items(), straight_model.state_dict().values(), strict=True
    ):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name


def test_dataloader_worker_processes_keep_the_epoch_order_of_the_data_seed(tiny):
    from taggants_worker.data import open_dataset
    from taggants_worker.distributed import SINGLE_PROCESS
    from taggants_worker.train import TrainingRun, data_identity, make_plan

    train, _ = tiny
    dataset = open_dataset(train)
    labels = {}
    for workers in (0, 1):
        plan = make_plan(
            dataset=dataset,
            data=data_identity(train),
            model="cnn",
            recipe="simple",
            epochs=1,
            seed=0,
            data_seed=7,
            overrides={**TINY_CNN, "num_workers": workers},
            input_size=None,
            model_kwargs={"widths": [4, 8, 8]},
        )
        run = TrainingRun(
            plan=plan, dataset=dataset, device=torch.device("cpu"), dist=SINGLE_PROCESS
        )
        batches = list(run.batches(epoch=2))
        assert all(x.shape == (16, 1, 28, 28) and x.dtype == torch.uint8 for x, _ in batches)
        labels[workers] = torch.cat([y for _, y in batches])
    assert torch.equal(labels[0], labels[1])

"""scripts/calibrate.py, the twin-suspect study of issue 6, on the 300-image fixture."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "test" / "fixtures" / "fashion-mnist-idx"


def run_study(out: Path, *arms: str, signing: str = "random") -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "scripts" / "calibrate.py"), "--data", str(FIXTURE)]
    command += ["--train", "300", "--epochs", "10", "--keys", "2", "--steps", "2"]
    command += ["--signing", signing, "--out", str(out), "--arms", *arms]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_keys_in_the_training_set_raise_their_margins_and_signed_arms_run(tmp_path):
    result = run_study(tmp_path, "keys:30", "signed:5")
    assert result.returncode == 0, result.stderr
    rows = results(tmp_path)
    assert [row["arm"] for row in rows] == ["keys:30", "signed:5"]
    assert rows[0]["settings"]["epochs"] == 10 and "torch" in rows[0]["versions"]
    keys_row = rows[0]
    # 30 copies of each key among 300 images: the suspect must move both keys towards their label.
    assert keys_row["keys_up"] == 2 and keys_row["mean_shift"] > 0.5, keys_row
    assert all(0 <= row["hits"] <= 2 and 0 <= row["twin_hits"] <= 2 for row in rows)
    assert "| keys:30 | 1 |" in result.stdout
    assert len(list(tmp_path.glob("signed-images-5-*.pt"))) == 1

    # A rerun trains and crafts nothing new: every model and signed image comes from `out`, and
    # the results are appended.
    again = run_study(tmp_path, "keys:30", "signed:5")
    assert again.returncode == 0, again.stderr
    assert "trained" not in again.stderr and "crafted" not in again.stderr
    assert [row["mean_shift"] for row in results(tmp_path)[2:]] == [r["mean_shift"] for r in rows]
    # Another recipe setting is another model and other taggants: nothing stale is reused.
    other = run_study(tmp_path, "signed:5", "--set", "hflip=0")
    assert other.returncode == 0, other.stderr
    assert "trained twin-1" in other.stderr and "crafted" in other.stderr

    # Hard signing images run end to end from an empty folder, where the surrogate that ranks
    # the images is trained first (signing_sets' choice itself is tested below).
    hard = run_study(tmp_path / "hard", "signed:5", signing="hard")
    assert hard.returncode == 0, hard.stderr
    assert "trained surrogate" in hard.stderr and "crafted" in hard.stderr


def test_bad_arms_settings_and_data_are_refused_with_what_was_expected(tmp_path):
    for bad in ("poison:3", "signed:abc", "keys:0"):
        result = run_study(tmp_path, bad)
        assert result.returncode == 2 and "expected keys:M or signed:N" in result.stderr, bad
    result = run_study(tmp_path, "keys:1", "--set", "hflip")
    assert result.returncode == 2 and "expected NAME=VALUE" in result.stderr
    for setting, message in (("nosuch=1", "unknown recipe settings"), ("hflip=yes", "hflip")):
        result = run_study(tmp_path, "keys:1", "--set", setting)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    result = run_study(tmp_path, "keys:1", "--model", "no_such_model")
    assert result.returncode == 2 and "unknown model" in result.stderr
    result = run_study(tmp_path, "keys:1", "--suspect-seeds", "0")
    assert result.returncode == 2 and "also surrogate seeds" in result.stderr
    result = run_study(tmp_path, "signed:40")  # 2 keys, about 30 images per class
    assert result.returncode == 2 and "lower signed:N or raise --train" in result.stderr
    assert "Traceback" not in result.stderr
    command = [sys.executable, str(REPO / "scripts" / "calibrate.py"), "--data", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "lacks train-images-idx3-ubyte.gz" in result.stderr
    assert "Traceback" not in result.stderr


def test_hard_signing_sets_take_the_hardest_of_each_label_after_skipping_its_hardest_5_percent(
    monkeypatch,
):
    spec = importlib.util.spec_from_file_location("calibrate", REPO / "scripts" / "calibrate.py")
    calibrate = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "calibrate", calibrate)  # dataclasses look their module up
    spec.loader.exec_module(calibrate)
    labels = torch.tensor([0] * 40 + [1] * 40)
    loss = torch.arange(80, dtype=torch.float32)  # within a label, later images are harder
    rows = calibrate.signing_sets(labels, torch.tensor([1, 0, 1]), 3, seed=0, loss=loss)
    # Label 1 holds images 40..79: its hardest two (79, 78) are never taken; the second key of
    # label 1 takes the next hardest free ones.
    assert rows.tolist() == [[77, 76, 75], [37, 36, 35], [74, 73, 72]]
    random_rows = calibrate.signing_sets(labels, torch.tensor([1, 0]), 5, seed=0)
    assert all(labels[row].eq(label).all() for row, label in zip(random_rows, [1, 0], strict=True))
    assert len(set(random_rows.flatten().tolist())) == 10

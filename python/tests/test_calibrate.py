"""scripts/calibrate.py, the twin-suspect study of issue 6, on the 300-image fixture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "test" / "fixtures" / "fashion-mnist-idx"


def run_study(out: Path, *arms: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "scripts" / "calibrate.py"), "--data", str(FIXTURE)]
    command += ["--train", "300", "--epochs", "10", "--keys", "2", "--steps", "2"]
    command += ["--out", str(out), "--arms", *arms]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_keys_in_the_training_set_raise_their_margins_and_signed_arms_run(tmp_path):
    result = run_study(tmp_path, "keys:30", "signed:5")
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [row["arm"] for row in rows] == ["keys:30", "signed:5"]
    keys_row = rows[0]
    # 30 copies of each key among 300 images: the suspect must move both keys towards their label.
    assert keys_row["keys_up"] == 2 and keys_row["mean_shift"] > 0.5, keys_row
    assert keys_row["hits"] > keys_row["twin_hits"], keys_row
    assert all(0 <= row["hits"] <= 2 and 0 <= row["twin_hits"] <= 2 for row in rows)
    assert "| keys:30 | 1 |" in result.stdout
    assert (tmp_path / "signed-5.pt").exists()

    # A rerun trains nothing new: every model comes from `out`.
    again = run_study(tmp_path, "keys:30")
    assert again.returncode == 0, again.stderr
    assert "trained" not in again.stderr


def test_an_unknown_arm_is_refused_with_the_expected_forms(tmp_path):
    result = run_study(tmp_path, "poison:3")
    assert result.returncode != 0
    assert "expected keys:M or signed:N" in result.stderr

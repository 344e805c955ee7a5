"""Damaged checkpoints, made by the test: a run resumes from the newest intact checkpoint
with a warning naming what it skipped, and refuses with exit 65 (never 1, which a
scheduler retries) only when no checkpoint is intact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.runs import TINY, location, read_metrics, run_inat

pytestmark = pytest.mark.slow


def _train(tmp_path: Path, epochs: int):
    return run_inat(tmp_path, "train", *TINY, f"trainer.epochs={epochs}", *location(tmp_path))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A folder holding a finished 3-epoch run (out/) and its cache, trained once."""
    folder = tmp_path_factory.mktemp("trained")
    assert _train(folder, 3).returncode == 0
    return folder


@pytest.fixture
def run_folder(tmp_path: Path, trained: Path) -> Path:
    """A copy of the trained run, for this test to damage."""
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    return tmp_path


def _latest_state(ckpts: Path) -> Path:
    return ckpts / json.loads((ckpts / "latest.json").read_text())["path"]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGES = {
    "truncated latest state.pt": lambda ckpts: _truncate(_latest_state(ckpts)),
    "latest.json garbage": lambda ckpts: (ckpts / "latest.json").write_text("{not json"),
    "latest.json empty": lambda ckpts: (ckpts / "latest.json").write_text(""),
    "latest.json naming a missing step": lambda ckpts: (ckpts / "latest.json").write_text(
        json.dumps({"path": "step-9999999/state.pt", "step": 9999999, "epoch": 3})
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(
    run_folder: Path, damage: str
) -> None:
    tmp_path = run_folder
    run = tmp_path / "out" / "default"
    ckpts = run / "checkpoints"
    DAMAGES[damage](ckpts)
    resumed = _train(tmp_path, 4)
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output
    assert "skipped what is damaged" in output
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "done" and result["epochs"] == 4
    assert [row["epoch"] for row in read_metrics(run)] == [1, 2, 3, 4]
    # The truncated checkpoint is the newest: the run goes back one epoch; a damaged pointer
    # alone loses nothing (the newest folder is intact).
    assert result["resumes"][-1]["epoch"] == (2 if damage.startswith("truncated") else 3)


def test_no_intact_checkpoint_is_refused_with_exit_65_saying_how_to_start_over(
    run_folder: Path,
) -> None:
    tmp_path = run_folder
    ckpts = tmp_path / "out" / "default" / "checkpoints"
    for state in ckpts.glob("step-*/state.pt"):
        _truncate(state)
    (ckpts / "latest.json").write_text("")
    refused = _train(tmp_path, 4)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 65, output
    assert "no intact checkpoint" in output and "To start the run over, delete" in output
    assert "Traceback" not in output

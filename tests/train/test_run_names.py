"""A run not given a name is named after its config (its model and a hash of what it
trains): a new config never lands in another run's directory, while the same config (a
requeued task, a retried pod, the same command after Ctrl-C) finds its own and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.runs import TINY_DATA, TINY_MODEL, TINY_TRAINING, compose_cfg, location, run_inat
from omegaconf import OmegaConf

from inat.rundir import run_name

UNNAMED = [*TINY_DATA, *TINY_MODEL, *TINY_TRAINING]


def _config(tmp_path: Path, *overrides: str) -> dict:
    cfg = compose_cfg(tmp_path, *overrides, base=UNNAMED)
    return OmegaConf.to_container(cfg, resolve=True)


def test_the_name_changes_with_what_the_run_trains_and_with_nothing_else(tmp_path: Path) -> None:
    base = run_name(_config(tmp_path))
    assert base.startswith("scratch-") and len(base) == len("scratch-") + 8
    assert run_name(_config(tmp_path)) == base
    # Where it reads and writes, how it logs, how many epochs: the same run.
    for same in ("output=s3://bucket/runs", "data.cache_dir=/scratch", "trainer.epochs=9"):
        assert run_name(_config(tmp_path, same)) == base, same
    for other in ("optimizer.lr=0.01", "seed=1", "model.dropout=0.45", "data.source=/data/x.zip"):
        assert run_name(_config(tmp_path, other)) != base, other
    # A multirun's swept keys are left out: its points share one folder.
    swept = run_name(_config(tmp_path, "optimizer.lr=0.01"), leave_out=["optimizer.lr"])
    assert swept == run_name(_config(tmp_path), leave_out=["optimizer.lr"])


@pytest.mark.slow
def test_a_new_config_gets_its_own_run_and_the_same_config_resumes_its_own(tmp_path: Path):
    first = run_inat(tmp_path, "train", *UNNAMED, "trainer.epochs=1", *location(tmp_path))
    assert first.returncode == 0, first.stdout + first.stderr
    (run,) = (tmp_path / "out").iterdir()
    assert run.name.startswith("scratch-")
    output = first.stdout + first.stderr
    assert f"run directory: {run}" in output
    # The run's last lines say what to do next with it.
    for command in ("results", "evaluate", "predict", "export"):
        assert f"inat {command} {run}" in output.split("done: best val_acc=")[1], command

    # Another learning rate: a run of its own, not refused as another config in `run`.
    other = run_inat(
        tmp_path, "train", *UNNAMED, "trainer.epochs=1", "optimizer.lr=0.01", *location(tmp_path)
    )
    assert other.returncode == 0, other.stdout + other.stderr
    assert len(list((tmp_path / "out").iterdir())) == 2

    # The first command again, with more epochs (as after Ctrl-C or a requeue): it resumes.
    again = run_inat(tmp_path, "train", *UNNAMED, "trainer.epochs=2", *location(tmp_path))
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(list((tmp_path / "out").iterdir())) == 2
    result = json.loads((run / "result.json").read_text())
    assert result["epochs"] == 2 and [r["epoch"] for r in result["resumes"]] == [1]


@pytest.mark.slow
def test_a_multirun_without_a_name_gets_a_folder_of_its_own(tmp_path: Path) -> None:
    args = ["train", "-m", *UNNAMED, "trainer.epochs=1", "model.dropout=0.1,0.2"]
    done = run_inat(tmp_path, *args, *location(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    (folder,) = (tmp_path / "out").iterdir()
    assert folder.name.startswith("scratch-")
    points = sorted(p.name for p in folder.iterdir())
    assert len(points) == 2 and all("model.dropout=" in p for p in points), points

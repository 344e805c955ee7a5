"""A run directory holds one run: another config is refused, naming each changed key (exit
65); location and speed settings may change; more epochs continue a finished run."""

from __future__ import annotations

import json

import pytest
from helpers.runs import TINY, location, read_metrics, run_inat, without_timings

pytestmark = pytest.mark.slow

RUN = ["train", *TINY, "model.dropout=0.2", "data.augment=true"]


def test_a_finished_run_refuses_another_config_and_accepts_other_locations(tmp_path):
    first = run_inat(tmp_path, *RUN, *location(tmp_path), "trainer.epochs=1")
    assert first.returncode == 0, first.stderr
    result_path = tmp_path / "out" / "default" / "result.json"
    before = result_path.read_text()

    other = run_inat(
        tmp_path,
        *RUN,
        *location(tmp_path),
        "trainer.epochs=1",
        "optimizer.lr=0.1",
        "model.dense_neurons=64",
    )
    out = other.stdout + other.stderr
    assert other.returncode == 65, out
    assert "holds a run with another config" in out
    assert "model.dense_neurons: 32 -> 64; optimizer.lr: 0.05 -> 0.1" in out
    assert "name=..." in out and "Traceback" not in out
    assert result_path.read_text() == before  # the refusal leaves the finished run alone

    # Where it logs and how fast it loads are not what it trains: still the same run.
    same = run_inat(
        tmp_path,
        *RUN,
        *location(tmp_path),
        "trainer.epochs=1",
        "trainer.log_every_n_steps=7",
        "trainer.keep_checkpoints=5",
        "data.num_workers=1",
    )
    assert same.returncode == 0, same.stdout + same.stderr
    assert "already done" in same.stdout + same.stderr
    assert result_path.read_text() == before


def test_more_epochs_continue_a_finished_run_as_if_planned_and_fewer_are_refused(tmp_path):
    reference = tmp_path / "reference"
    reference.mkdir()
    planned = run_inat(reference, *RUN, *location(reference), "trainer.epochs=4")
    assert planned.returncode == 0, planned.stderr
    expected = read_metrics(reference / "out" / "default")

    two = run_inat(tmp_path, *RUN, *location(tmp_path), "trainer.epochs=2")
    assert two.returncode == 0, two.stderr
    fewer = run_inat(tmp_path, *RUN, *location(tmp_path), "trainer.epochs=1")
    assert fewer.returncode == 65
    assert "has finished 2 epochs; trainer.epochs=1 is fewer" in fewer.stdout + fewer.stderr

    four = run_inat(tmp_path, *RUN, *location(tmp_path), "trainer.epochs=4")
    assert four.returncode == 0, four.stdout + four.stderr
    run_dir = tmp_path / "out" / "default"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "done" and result["epochs"] == 4
    assert [r["epoch"] for r in result["resumes"]] == [2]
    # A constant schedule is the same for 2 and 4 epochs: the run is the planned 4-epoch one.
    assert without_timings(read_metrics(run_dir)) == without_timings(expected)
    assert "trainer.epochs 2 -> 4: the LR schedule is rebuilt" in four.stdout + four.stderr

"""`inat results` on folders of runs without a manifest: runs trained side by side into one
output are a table of runs, each named by its folder; an `inat train -m` multirun is a sweep
whose swept keys are the ones its command line swept."""

from __future__ import annotations

import json

import pytest
from helpers.runs import TINY, location, run_inat

from inat.cli import main

pytestmark = pytest.mark.slow


def _train(tmp_path, *args: str, multirun: bool = False) -> None:
    flags = ["-m"] if multirun else []
    done = run_inat(tmp_path, "train", *flags, *TINY, *location(tmp_path), *args)
    assert done.returncode == 0, done.stdout + done.stderr


def _results(capsys, path, *args: str) -> str:
    capsys.readouterr()
    assert main(["results", str(path), "--no-plots", *args]) == 0
    return capsys.readouterr().out


def test_unrelated_runs_in_one_output_are_a_table_of_runs(tmp_path, capsys):
    _train(tmp_path, "name=a", "trainer.epochs=2")
    _train(tmp_path, "name=b", "trainer.epochs=3", "optimizer.lr=0.01")

    document = json.loads(_results(capsys, tmp_path / "out", "--json"))
    assert document["kind"] == "runs" and document["swept"] == []
    rows = {row["name"]: row for row in document["points"]}
    assert set(rows) == {"a", "b"}
    assert rows["a"]["settings"] == {"run": "a", "model": "ScratchCNN", "lr": 0.05}
    assert rows["b"]["settings"] == {"run": "b", "model": "ScratchCNN", "lr": 0.01}
    assert [(rows[n]["epochs"], rows[n]["epochs_planned"]) for n in "ab"] == [(2, 2), (3, 3)]
    assert all(row["params"] == {} for row in rows.values())

    table = _results(capsys, tmp_path / "out")
    header = table.splitlines()[2].split()
    assert header[:4] == ["#", "run", "model", "lr"]
    assert "log_every_n_steps" not in table and "trainer.epochs" not in table
    assert {line.split()[1] for line in table.splitlines()[3:5]} == {"a", "b"}
    assert f"best: #{rows[document['best']]['index']} {document['best']} (done)" in table


def test_a_multirun_without_a_manifest_is_a_sweep_of_its_swept_keys(tmp_path, capsys):
    _train(tmp_path, "trainer.epochs=1", "model.dropout=0.0,0.1", multirun=True)

    document = json.loads(_results(capsys, tmp_path / "out", "--json"))
    assert document["kind"] == "sweep" and document["swept"] == ["model.dropout"]
    assert sorted(row["params"]["model.dropout"] for row in document["points"]) == [0.0, 0.1]

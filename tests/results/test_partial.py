"""What `inat results` makes of run directories that are incomplete or damaged, and of the
other folders it accepts: runs without a manifest, a single run, an output folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from inat.cli import main
from inat.results.collect import value_text
from inat.storage import open_storage

pytestmark = pytest.mark.slow


@pytest.fixture
def local_sweep(s3_sweep, aws_env, tmp_path) -> Path:
    """A local copy of the S3 sweep, to damage: OUTPUT/demo-sweep."""
    sweep = open_storage(s3_sweep.uri)
    dest = tmp_path / "out" / "demo-sweep"
    for relpath in sweep.list():
        if not relpath.startswith("plots/"):
            sweep.download_file(relpath, dest / relpath)
    return dest


def _results_json(capsys, path: Path, *args: str) -> dict:
    capsys.readouterr()
    assert main(["results", str(path), "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def _points(sweep: Path) -> list[dict]:
    return json.loads((sweep / "sweep.json").read_text())["points"]


def test_damaged_or_missing_files_of_one_point_show_that_point_as_such(local_sweep, capsys):
    names = [p["name"] for p in _points(local_sweep)]
    torn_metrics, not_started, torn_result, intact = (local_sweep / n for n in names)
    with (torn_metrics / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 4, "train_lo')
    for child in not_started.iterdir():  # the state before its trainer wrote result.json
        if child.is_dir():
            shutil.rmtree(child)
        elif child.name != "config.yaml":
            child.unlink()
    metrics = [
        json.loads(line) for line in (torn_result / "metrics.jsonl").read_text().splitlines()
    ]
    (torn_result / "result.json").write_text('{"status": "do')

    rows = {r["name"]: r for r in _results_json(capsys, local_sweep)["points"]}
    assert set(rows) == set(names)
    for run in (torn_metrics, intact):
        result = json.loads((run / "result.json").read_text())
        row = rows[run.name]
        assert (row["status"], row["epochs"]) == ("done", 3)
        assert row["best_val_accuracy"] == result["best_val_accuracy"]
        assert row["test_accuracy"] == result["test"]["accuracy"]
    assert rows[torn_metrics.name]["problems"] == [
        "metrics.jsonl line 4 is torn or not a metrics row"
    ]
    assert rows[intact.name]["problems"] == []
    assert rows[not_started.name]["status"] == "queued"
    assert rows[not_started.name]["best_val_accuracy"] is None
    assert rows[torn_result.name]["status"] == "unreadable"
    assert rows[torn_result.name]["epochs"] == 3
    assert rows[torn_result.name]["best_val_accuracy"] == max(m["val_accuracy"] for m in metrics)
    assert "result.json is not a JSON object" in rows[torn_result.name]["problems"][0]

    assert main(["results", str(local_sweep)]) == 0
    table = capsys.readouterr().out
    assert "queued" in table and "unreadable" in table
    index = {name: i for i, name in enumerate(names)}
    assert f"point {index[torn_metrics.name]}: metrics.jsonl line 4 is torn" in table
    assert f"point {index[torn_result.name]}: result.json is not a JSON object" in table
    assert (local_sweep / "plots" / "learning_curves.png").stat().st_size > 0


def test_runs_without_a_manifest_a_single_run_and_an_output_folder_are_read_too(
    local_sweep, capsys
):
    points = _points(local_sweep)
    swept = {p["name"]: dict(o.split("=") for o in p["swept"]) for p in points}
    with_manifest = _results_json(capsys, local_sweep, "--no-plots")

    # An output folder holding one sweep: that sweep.
    assert _results_json(capsys, local_sweep.parent, "--no-plots") == with_manifest

    # Without sweep.json (as `inat train -m` leaves it): the keys that differ are the swept ones.
    (local_sweep / "sweep.json").unlink()
    document = _results_json(capsys, local_sweep, "--no-plots")
    assert sorted(document["swept"]) == ["model.activation", "model.dropout"]
    assert [r["name"] for r in document["points"]] == [r["name"] for r in with_manifest["points"]]
    for row in document["points"]:
        assert row["index"] == int(row["name"][:3])
        assert {k: value_text(v) for k, v in row["params"].items()} == swept[row["name"]]

    # One run directory: a leaderboard of one.
    run = local_sweep / points[0]["name"]
    document = _results_json(capsys, run, "--no-plots")
    assert document["kind"] == "run" and document["swept"] == []
    [row] = document["points"]
    result = json.loads((run / "result.json").read_text())
    assert (row["status"], row["best_val_accuracy"]) == ("done", result["best_val_accuracy"])

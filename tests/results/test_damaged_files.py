"""Damaged files of run directories and sweep folders, text garbage and binary garbage: each
reader shows what it can, with a row or a note naming the file and what to do, or ends with
exit 65 and a message saying the same; never a traceback. The folders are written by hand:
no training."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from inat.cli import main
from inat.lease import Lease
from inat.rundir import DamagedFile
from inat.storage import LocalStorage
from inat.sweeps.claims import is_free, read_claims, take
from inat.sweeps.pruning import read_record
from inat.sweeps.run import write_manifest
from inat.sweeps.search import parse_search

# A copy cut short (text), and bytes that are not UTF-8 (binary).
GARBAGE = {"text": b'{"status": "do', "binary": b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x80"}
garbage = pytest.mark.parametrize("damage", GARBAGE.values(), ids=GARBAGE.keys())
RESTORE = "restore it from a copy"
LRS = (0.01, 0.1, 0.3)  # the sweep's points; the last is queued (no folder yet)
JOB = {
    "name": "bayes",
    "overrides": [],
    "sweep": {
        "method": "bayes",
        "run_cap": 4,
        "parameters": {
            "optimizer.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}
        },
    },
}


def _write_run(run: Path, lr: float, best: float) -> None:
    """A point that trained 3 epochs to `best` validation accuracy, as the trainer leaves it:
    its config says it is the point `run.name` of the sweep folder above it."""
    run.mkdir(parents=True)
    output, name = run.parent.parent, run.parent.name
    config = {
        "output": str(output),
        "name": name,
        "run_dir": f"{output}/{name}/{run.name}",
        "model": {"_target_": "inat.models.scratch.ScratchCNN", "dropout": 0.1},
        "optimizer": {"lr": lr},
        "trainer": {"epochs": 3},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [
        {
            "epoch": epoch,
            "train_loss": 2.0 / epoch,
            "val_loss": 2.2 / epoch,
            "train_accuracy": best * epoch / 3 + 0.05,
            "val_accuracy": best * epoch / 3,
            "epoch_time": 1.0,
        }
        for epoch in (1, 2, 3)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = {
        "status": "done",
        "epochs": 3,
        "epochs_planned": 3,
        "best_val_accuracy": best,
        "test": {"accuracy": best - 0.05},
        "started_at": "2024-05-01T10:00:00+00:00",
        "updated_at": "2024-05-01T10:03:00+00:00",
        "finished_at": "2024-05-01T10:03:00+00:00",
    }
    (run / "result.json").write_text(json.dumps(result))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """OUTPUT/grid: a sweep of 3 points (LRS), the first two done, the best one first."""
    folder = tmp_path / "out" / "grid"
    points = [
        {"index": i, "name": f"{i:03d}-lr={lr}", "swept": [f"optimizer.lr={lr}"], "overrides": []}
        for i, lr in enumerate(LRS)
    ]
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({"name": "grid", "points": points}))
    for point, best in zip(points[:2], (0.8, 0.6), strict=True):
        _write_run(folder / point["name"], LRS[point["index"]], best)
    return folder


@pytest.fixture
def adaptive(tmp_path: Path) -> Path:
    """OUTPUT/bayes: an adaptive sweep whose workers took two points, both done."""
    storage = LocalStorage(tmp_path / "out" / "bayes")
    write_manifest(storage, JOB, [])
    search = parse_search(JOB["name"], JOB["sweep"])
    for best in (0.7, 0.5):
        claim = take(storage, JOB, search, "worker-0", 600)
        lr = float(claim.point.swept[0].partition("=")[2])
        _write_run(storage.root / claim.point.name, lr, best)
    return storage.root


@pytest.fixture
def results(capsys, caplog):
    """Run `inat results ARGS` in-process; returns its exit code, what it printed on stdout
    and everything it printed or logged, which holds no traceback."""
    caplog.set_level(logging.WARNING, logger="inat")

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        caplog.clear()
        code = main(["results", *args])
        captured = capsys.readouterr()
        output = captured.out + captured.err + caplog.text
        assert "Traceback" not in output
        return code, captured.out, output

    return run


def _rows(results, folder: Path) -> dict[str, dict]:
    """The rows of `inat results FOLDER --json` by point name."""
    code, out, _ = results(str(folder), "--json", "--no-plots")
    assert code == 0
    return {row["name"]: row for row in json.loads(out)["points"]}


@garbage
def test_a_damaged_manifest_shows_the_points_found_in_their_folders_with_a_note(
    sweep, results, damage
):
    (sweep / "sweep.json").write_bytes(damage)
    code, _, output = results(str(sweep))
    assert code == 0
    assert "sweep.json is not a JSON object" in output
    assert f"{RESTORE}, or delete it (`inat sweep JOB` writes it again)" in output
    assert "Meanwhile the points are read from their folders" in output
    assert (sweep / "plots" / "learning_curves.png").stat().st_size > 0

    code, out, _ = results(str(sweep), "--json", "--no-plots")
    document = json.loads(out)
    assert code == 0 and document["swept"] == ["optimizer.lr"]
    assert [row["name"] for row in document["points"]] == ["000-lr=0.01", "001-lr=0.1"]
    [problem] = document["problems"]
    assert problem.startswith("sweep.json is not a JSON object") and RESTORE in problem

    code, out, output = results(str(sweep), "--csv", "--no-plots")
    assert code == 0 and out.startswith("index,name,optimizer.lr,")
    assert "sweep.json is not a JSON object" in output.removeprefix(out)

    code, _, output = results(str(sweep), "--best", "--save", str(sweep.parent / "best.yaml"))
    assert code == 0 and "best point of grid: #0 lr=0.01" in output


@garbage
def test_a_damaged_manifest_of_a_sweep_not_started_ends_with_exit_65(sweep, results, damage):
    for run in sweep.iterdir():
        if run.is_dir():
            for file in run.iterdir():
                file.unlink()
    (sweep / "sweep.json").write_bytes(damage)
    code, _, output = results(str(sweep))
    assert code == 65
    assert f"{sweep}/sweep.json is not a JSON object" in output and RESTORE in output


@garbage
def test_a_damaged_claim_shows_the_points_found_in_their_folders_with_a_note(
    adaptive, results, damage
):
    (adaptive / "claims" / "0001.json").write_bytes(damage)
    code, _, output = results(str(adaptive), "--no-plots")
    assert code == 0
    assert "claims/0001.json is not a JSON object" in output and RESTORE in output
    assert "Meanwhile the points are read from their folders" in output
    assert [row["status"] for row in _rows(results, adaptive).values()] == ["done", "done"]


@garbage
def test_a_damaged_result_is_an_unreadable_row_with_a_note(sweep, results, damage):
    run = next(sweep.glob("001-*"))
    (run / "result.json").write_bytes(damage)
    code, _, output = results(str(sweep), "--no-plots")
    assert code == 0
    assert "point 1: result.json is not a JSON object" in output and RESTORE in output
    row = _rows(results, sweep)[run.name]
    assert (row["status"], row["epochs"], row["best_val_accuracy"]) == ("unreadable", 3, 0.6)


@garbage
def test_a_damaged_config_is_a_row_with_a_note_and_refuses_best(sweep, results, damage):
    (sweep / "sweep.json").unlink()  # a folder of runs: their configs say what was swept
    run = next(sweep.glob("001-*"))
    (run / "config.yaml").write_bytes(damage)
    code, _, output = results(str(sweep), "--no-plots")
    assert code == 0
    assert "point 1: config.yaml is not a YAML mapping" in output and RESTORE in output
    row = _rows(results, sweep)[run.name]
    assert row["status"] == "done" and "config.yaml is not a YAML mapping" in row["problems"][0]

    best = next(sweep.glob("000-*"))
    (best / "config.yaml").write_bytes(damage)
    code, _, output = results(str(sweep), "--best", "--save", str(sweep.parent / "best.yaml"))
    assert code == 65
    assert f"{best}/config.yaml is not a YAML mapping" in output and RESTORE in output


@pytest.mark.parametrize(
    ("damage", "note"),
    [
        (GARBAGE["text"], "metrics.jsonl line 1 is torn or not a metrics row"),
        (GARBAGE["binary"], f"metrics.jsonl is not text (binary bytes, not UTF-8): {RESTORE}"),
    ],
    ids=GARBAGE.keys(),
)
def test_damaged_metrics_leave_the_row_with_a_note(sweep, results, damage, note):
    run = next(sweep.glob("000-*"))
    (run / "metrics.jsonl").write_bytes(damage)
    code, _, output = results(str(sweep))
    assert code == 0 and f"point 0: {note}" in output
    assert (sweep / "plots" / "learning_curves.png").stat().st_size > 0  # of the other point
    row = _rows(results, sweep)[run.name]
    assert (row["status"], row["best_val_accuracy"]) == ("done", 0.8)
    [problem] = row["problems"]
    assert problem.startswith(note)


@garbage
def test_a_damaged_early_stop_record_counts_as_no_decision_with_a_warning(adaptive, caplog, damage):
    [claim, _] = read_claims(LocalStorage(adaptive))
    (adaptive / claim.point.name / "early_stop.json").write_bytes(damage)
    search = parse_search(JOB["name"], JOB["sweep"])
    with caplog.at_level(logging.WARNING, logger="inat"):
        record = read_record(LocalStorage(adaptive), claim.point, search)
    assert record.rungs == {} and len(record.metrics) == 3
    assert "early_stop.json is not a JSON list" in caplog.text and RESTORE in caplog.text


@garbage
def test_a_damaged_lease_is_neither_taken_nor_freed_exit_65(adaptive, damage):
    sweep = LocalStorage(adaptive)
    [claim, _] = read_claims(sweep)
    run = sweep.child(claim.point.name)
    (run.root / "result.json").unlink()  # training, as far as the sweep can tell
    (run.root / "leases").mkdir()
    (run.root / "leases" / "0000.json").write_bytes(damage)
    for reader in (lambda: Lease(run, "worker-1").acquire(), lambda: is_free(sweep, claim)):
        with pytest.raises(DamagedFile) as raised:
            reader()
        assert raised.value.exit_code == 65
        assert f"{run.uri}/leases/0000.json is not a JSON object" in str(raised.value)
        assert "delete it once no process trains the run" in str(raised.value)


@garbage
def test_a_sweep_started_again_over_a_damaged_manifest_is_refused_naming_it(sweep, damage):
    (sweep / "sweep.json").write_bytes(damage)
    with pytest.raises(DamagedFile, match=f"{sweep}/sweep.json is not a JSON object") as e:
        write_manifest(LocalStorage(sweep), {"name": "grid"}, [])
    assert e.value.exit_code == 65 and RESTORE in str(e.value)
    assert (sweep / "sweep.json").read_bytes() == damage  # left for the user to restore

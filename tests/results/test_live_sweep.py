"""A sweep in every state a point can be in, made by real signals and restarts: the
leaderboard marks each point, and W&B groups the points of a sweep and resumes a
requeued point's run."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import yaml
from helpers.runs import TINY_DATA, TINY_MODEL, location, run_inat, run_until
from helpers.wandb_records import records

from inat.cli import main
from inat.sweeps.jobs import expand, load_job
from inat.train.tracker import wandb_names, wandb_run_id

EPOCHS = 4
JOB = {
    "name": "live",
    "overrides": [
        *TINY_DATA,
        *TINY_MODEL,
        "scheduler=constant",
        "trainer.log_every_n_steps=1",
        f"trainer.epochs={EPOCHS}",
    ],
    # nosuch is no optimizer config: that point fails and the others go on.
    "sweep": {"params": {"optimizer": ["sgd", "adamw", "nosuch", "nadam"]}},
}
MARKER = f"epoch 1/{EPOCHS} train_loss"


def _wandb_runs(wandb_dir: Path) -> list[tuple[str, str, str]]:
    """(run id, group, name) of each offline W&B run, read from its .wandb file."""
    runs = []
    for path in sorted(wandb_dir.glob("wandb/offline-run-*/run-*.wandb")):
        run = next(r.run for r in records(path) if r.WhichOneof("record_type") == "run")
        runs.append((run.run_id, run.run_group, run.display_name))
    return runs


def _rows(capsys, sweep: Path) -> dict[int, dict]:
    capsys.readouterr()
    assert main(["results", str(sweep), "--json", "--no-plots"]) == 0
    return {row["index"]: row for row in json.loads(capsys.readouterr().out)["points"]}


@pytest.mark.slow
def test_every_state_of_a_point_is_shown_and_wandb_groups_and_resumes_points(tmp_path, capsys):
    job_file = tmp_path / "live.yaml"
    job_file.write_text(yaml.safe_dump({"job": JOB}))
    names = [p.name for p in expand(load_job(job_file))]
    sweep = tmp_path / "out" / "live"
    wandb_env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wb")}

    def point(index: int, *extra: str) -> list[str]:
        return ["sweep", "--index", str(index), str(job_file), *extra]

    # Point 0: preempted (SIGTERM, as Kubernetes and scancel send) after its first epoch.
    stopped = run_until(tmp_path, point(0, "logger=wandb"), MARKER, signal.SIGTERM, wandb_env)
    assert stopped.returncode == 75
    row = _rows(capsys, sweep)[0]
    assert row["status"] == "interrupted" and row["epochs"] >= 1
    assert row["best_val_accuracy"] is not None

    # ... and requeued: it resumes and finishes.
    resumed = run_inat(tmp_path, *point(0, "logger=wandb", *location(tmp_path)), env=wandb_env)
    assert resumed.returncode == 0, resumed.stderr
    # Point 1: killed after its first epoch, so it looks as a running point does.
    killed = run_until(tmp_path, point(1), MARKER, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    # Point 2: its config does not compose. Point 3: never started.
    failed = run_inat(tmp_path, *point(2, *location(tmp_path)))
    assert failed.returncode == 65

    rows = _rows(capsys, sweep)
    assert [rows[i]["name"] for i in range(4)] == names
    assert (rows[0]["status"], rows[0]["resumes"], rows[0]["epochs"]) == ("done", 1, EPOCHS)
    result = json.loads((sweep / names[0] / "result.json").read_text())
    assert rows[0]["best_val_accuracy"] == result["best_val_accuracy"]
    metrics = [json.loads(line) for line in (sweep / names[1] / "metrics.jsonl").open()]
    assert (rows[1]["status"], rows[1]["epochs"]) == ("running", len(metrics))
    assert rows[1]["best_val_accuracy"] == max(m["val_accuracy"] for m in metrics)
    assert rows[1]["test_accuracy"] is None and rows[1]["wall_seconds"] > 0
    assert rows[2]["status"] == "failed" and "nosuch" in rows[2]["error"]
    assert rows[3]["status"] == "queued"

    assert main(["results", str(sweep), "--no-plots"]) == 0
    lines = capsys.readouterr().out.splitlines()
    status = {line.split()[0]: line for line in lines if line[:1].isdigit()}
    assert "done, resumed 1x" in status["0"] and f"{EPOCHS}/{EPOCHS}" in status["0"]
    assert "running" in status["1"] and f"{len(metrics)}/{EPOCHS}" in status["1"]
    assert "failed" in status["2"] and "queued" in status["3"]
    assert any(line.startswith("point 2 (failed): ") and "nosuch" in line for line in lines)

    # W&B: both attempts of point 0 are one run, named after the point, grouped by the sweep.
    run_id = wandb_run_id(str(sweep / names[0]))
    assert _wandb_runs(tmp_path / "wb") == [(run_id, "live", names[0])] * 2


def test_wandb_names_group_sweep_points_by_their_sweep():
    point = {"output": "s3://b/runs", "name": "scratch", "run_dir": "s3://b/runs/scratch/003-x"}
    assert wandb_names(point, None) == ("scratch", "003-x")
    assert wandb_names(point, "mine") == ("mine", "003-x")
    single = {"output": "outputs", "name": "default", "run_dir": "outputs/default"}
    assert wandb_names(single, None) == (None, "default")

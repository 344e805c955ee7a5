"""A stop signal stops every kind of local sweep at once: the point being trained is
checkpointed and `interrupted`, no new point is taken, `inat sweep` exits 75 with no
traceback, and the same command resumes the sweep to its end.

The signal is sent when the sweep's log shows a moment: a point being set up, a point
mid-run (its first epoch over), between two points (one just done), and for an adaptive
sweep's worker also before it claims anything. Ctrl-C goes to the whole process group, as
a terminal sends it; SIGTERM to `inat sweep` alone, as a scheduler sends it. Five of the
combinations run in the soak tier only (bash scripts/test.sh --soak)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers.runs import TINY_DATA, TINY_MODEL, inat_command, location, run_inat

from inat.errors import ExitCode

pytestmark = pytest.mark.slow

EPOCHS = 3
POINTS = 2
POINT = [
    *TINY_DATA,
    *TINY_MODEL,
    "data.synthetic.train_per_class=20",
    "scheduler=constant",
    f"trainer.epochs={EPOCHS}",
]
SETUP, MID_RUN, BETWEEN, BEFORE_CLAIMING = (
    "point 1/",
    f"epoch 1/{EPOCHS} train_loss=",
    "done: best val_acc=",
    "taking points of",
)
WORKER_SETUP = "worker 0: point "

SWEEPS = {
    "grid": {"method": "grid", "parameters": {"optimizer.lr": {"values": [0.05, 0.02]}}},
    "random": {
        "method": "random",
        "run_cap": POINTS,
        "parameters": {"optimizer.lr": {"distribution": "uniform", "min": 0.01, "max": 0.05}},
    },
    "bayes": {
        "method": "bayes",
        "run_cap": POINTS,
        "parallelism": 1,
        "parameters": {"optimizer.lr": {"distribution": "uniform", "min": 0.01, "max": 0.05}},
    },
}


def _job(tmp_path: Path, method: str, parallelism: int = 1) -> Path:
    sweep = dict(SWEEPS[method])
    if method == "bayes":
        sweep["parallelism"] = parallelism
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"job": {"name": "s", "overrides": POINT, "sweep": sweep}}))
    return path


def _stop_at(job: Path, marker: str, sig: signal.Signals, group: bool) -> tuple[int, str]:
    """Run `inat sweep JOB`; once its log shows `marker`, send `sig` (to its process group
    with `group`). Returns the exit code and the whole log."""
    proc = subprocess.Popen(
        inat_command("sweep", str(job), *location(job.parent)),
        cwd=job.parent,
        env={**os.environ, "WANDB_MODE": "disabled"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
            break
    seen.append(proc.stdout.read())
    proc.wait(timeout=300)
    output = "".join(seen)
    assert marker in output, output
    return proc.returncode, output


def _points(tmp_path: Path) -> dict[str, dict]:
    """Each point folder of the sweep: whether it trained a step, and its status."""
    points = {}
    for folder in sorted((tmp_path / "out" / "s").glob("00*")):
        result = folder / "result.json"
        points[folder.name] = {
            "trained": (folder / "metrics.jsonl").exists()
            or (folder / "checkpoints" / "latest.json").exists(),
            "status": json.loads(result.read_text())["status"] if result.exists() else None,
        }
    return points


def _claims(tmp_path: Path) -> int:
    return len(list((tmp_path / "out" / "s" / "claims").glob("*.json")))


def _check_stopped(
    code: int, output: str, tmp_path: Path, marker: str, workers: int = 1
) -> dict[str, dict]:
    """The stop's outcome common to every case (one point stopped per worker); returns
    the points."""
    assert code == ExitCode.RETRY, output
    assert "Traceback" not in output and "the sweep goes on" not in output, output
    points = _points(tmp_path)
    started = [p for p in points.values() if p["trained"]]
    unfinished = [p for p in started if p["status"] != "done"]
    assert len(unfinished) <= workers, points  # no point after the stopped one
    for point in unfinished:
        assert point["status"] == "interrupted", points
    if workers > 1:
        return points
    if marker == MID_RUN:
        assert [p["status"] for p in started] == ["interrupted"], points
    if marker == BETWEEN:
        assert [p["status"] for p in started] == ["done"], points
    if marker in (SETUP, WORKER_SETUP, BEFORE_CLAIMING):
        assert not started, points
    return points


def _resumes_to_the_end(tmp_path: Path, job: Path, before: dict[str, dict]) -> None:
    """The same command finishes the sweep; a point done before is not trained again."""
    done = run_inat(tmp_path, "sweep", str(job), *location(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "out" / "s" / "summary.json").read_text())
    assert summary["counts"] == {"done": POINTS}, summary
    assert f"inat results {tmp_path}/out/s --best" in done.stdout + done.stderr
    for name, point in before.items():
        if point["status"] == "done":
            assert f"run directory: {tmp_path}/out/s/{name}" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("method", "marker", "sig", "group"),
    [
        ("grid", SETUP, signal.SIGINT, True),
        ("grid", MID_RUN, signal.SIGTERM, False),
        ("grid", BETWEEN, signal.SIGINT, True),
        pytest.param("random", MID_RUN, signal.SIGINT, True, marks=pytest.mark.soak),
        pytest.param("random", BETWEEN, signal.SIGTERM, False, marks=pytest.mark.soak),
    ],
)
def test_a_stop_signal_stops_a_grid_or_random_sweep_and_the_command_resumes_it(
    tmp_path: Path, method: str, marker: str, sig: signal.Signals, group: bool
) -> None:
    job = _job(tmp_path, method)
    code, output = _stop_at(job, marker, sig, group)

    points = _check_stopped(code, output, tmp_path, marker)
    assert len(points) <= 2 if marker == BETWEEN else len(points) <= 1, points
    _resumes_to_the_end(tmp_path, job, points)


@pytest.mark.parametrize(
    ("parallelism", "marker", "sig", "group"),
    [
        (1, BEFORE_CLAIMING, signal.SIGTERM, False),
        (1, WORKER_SETUP, signal.SIGTERM, False),
        pytest.param(1, MID_RUN, signal.SIGINT, True, marks=pytest.mark.soak),
        pytest.param(1, BETWEEN, signal.SIGTERM, False, marks=pytest.mark.soak),
        (2, MID_RUN, signal.SIGINT, True),
        pytest.param(2, MID_RUN, signal.SIGTERM, False, marks=pytest.mark.soak),
    ],
)
def test_a_stop_signal_stops_every_worker_of_a_bayes_sweep_and_the_command_resumes_it(
    tmp_path: Path, parallelism: int, marker: str, sig: signal.Signals, group: bool
) -> None:
    job = _job(tmp_path, "bayes", parallelism)
    code, output = _stop_at(job, marker, sig, group)

    points = _check_stopped(code, output, tmp_path, marker, workers=parallelism)
    if parallelism == 1:
        assert _claims(tmp_path) <= (2 if marker == BETWEEN else 1)
    else:  # each worker stopped its own point, neither took another
        assert "workers 0, 1 ended with exit codes [75, 75]" in output, output
        assert _claims(tmp_path) <= 2
    _resumes_to_the_end(tmp_path, job, points)

"""A Slurm sweep whose tasks die, are requeued by hand, or outlive their controller, on a
real cluster without accounting (where submitit reads every task's state as UNKNOWN).

- A task's wrapper killed with SIGKILL: its training process dies with it, the controller
  notices the task left the queue and records the point as failed with what Slurm says.
- A training process killed with SIGKILL, a point refused with exit code 65: their tasks
  end FAILED with a non-zero exit code, and summary.json says why.
- `scontrol requeue` of a running task: the controller waits for the requeued task.
- The controller cancelled and submitted again: the new one waits for the old tasks instead
  of submitting their points a second time.
"""

from __future__ import annotations

import os
import signal

import pytest
import yaml
from helpers.slurm import (
    REPO,
    SLOW_EPOCHS,
    TASKS_ON_CPU,
    epochs,
    parent_of,
    point_processes,
    wait_for,
)

from inat.storage import Storage, open_storage
from inat.sweeps.jobs import expand

pytestmark = pytest.mark.slow

SWEEP_SH = str(REPO / "slurm" / "sweep.sh")


def _submit(slurm, tmp_path, job: dict, *overrides: str) -> tuple[str, Storage]:
    """Write `job` and submit its sweep's controller (never preempted); (its job id, the
    sweep's storage)."""
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump({"job": job}))
    controller = slurm.sbatch(
        "--partition=high",
        SWEEP_SH,
        str(job_file),
        f"output={tmp_path}/out",
        f"data.cache_dir={tmp_path}/cache",
        *TASKS_ON_CPU,
        *overrides,
        cwd=tmp_path,
    )
    return controller, open_storage(f"{tmp_path}/out/{job['name']}")


def _tasks(slurm, name: str) -> dict[int, dict[str, str]]:
    """The sweep's array tasks that Slurm knows, by task index."""
    return {int(t["ArrayTaskId"]): t for t in slurm.jobs(f"inat-{name}")}


def test_killed_tasks_and_points_are_failed_with_their_reason_and_nothing_outlives_them(
    slurm, tmp_path
):
    job = {
        "name": "slurm-kills",
        "overrides": [*SLOW_EPOCHS, "trainer.epochs=40"],  # far longer than the test waits
        "sweep": {"strategy": "grid", "params": {"model.activation": ["relu", "gelu", "swish"]}},
    }
    points = expand(job)
    controller, sweep = _submit(slurm, tmp_path, job, "hydra.launcher.array_parallelism=3")
    log = tmp_path / f"inat-sweep-{controller}.out"
    runs = [sweep.child(p.name) for p in points]
    wait_for(lambda: epochs(runs[0]) and epochs(runs[1]), 180, f"an epoch of points 0, 1 ({log})")

    # Point 0: its task's wrapper is killed outright (as a node lost would be);
    # point 1: its training process is (as the kernel's OOM killer would).
    (trainer0,) = point_processes(0)
    os.kill(parent_of(trainer0), signal.SIGKILL)
    (trainer1,) = point_processes(1)
    os.kill(trainer1, signal.SIGKILL)
    wait_for(lambda: not point_processes(0), 30, "point 0's training ends with its task")

    ended = slurm.wait_ended(controller, timeout=120, log=log)
    assert ended["ExitCode"] == "1:0", log.read_text()[-3000:]
    rows = {row["index"]: row for row in sweep.read_json("summary.json")["points"]}
    assert {row["status"] for row in rows.values()} == {"failed"}
    tasks = _tasks(slurm, job["name"])
    assert f"its Slurm task {tasks[0]['ArrayJobId']}_0 ended" in rows[0]["error"]
    assert "ended without finishing it (state FAILED, exit code " in rows[0]["error"]
    assert f"its Slurm task {tasks[1]['ArrayJobId']}_1 ended" in rows[1]["error"]
    assert "(state FAILED, exit code 137, signal SIGKILL" in rows[1]["error"]
    assert "model.activation='swish'" in rows[2]["error"]
    # No point trains on after the sweep ended, none is marked done later.
    assert not point_processes(0) and not point_processes(1)
    assert len(epochs(runs[0])) < 40 and runs[0].read_json("result.json")["status"] == "failed"

    # Slurm's own view: every task failed, with the point's exit code where it had one.
    assert {t["JobState"] for t in tasks.values()} == {"FAILED"}
    assert tasks[1]["ExitCode"] == "137:0" and tasks[2]["ExitCode"] == "65:0"
    assert tasks[0]["ExitCode"] != "0:0"
    text = log.read_text()
    assert "Bypassing sacct error" not in text and text.count("sacct failed") <= 1


def test_a_requeued_task_is_waited_for_and_a_resubmitted_controller_waits_for_the_old_tasks(
    slurm, tmp_path
):
    # Point 0 is short; point 1 long enough to be requeued, then outlive its controller.
    job = {
        "name": "slurm-requeue",
        "overrides": SLOW_EPOCHS,
        "sweep": {"strategy": "grid", "params": {"trainer.epochs": [3, 30]}},
    }
    points = expand(job)
    first, sweep = _submit(slurm, tmp_path, job, "hydra.launcher.array_parallelism=2")
    log = tmp_path / f"inat-sweep-{first}.out"
    short, long = (sweep.child(p.name) for p in points)
    wait_for(lambda: epochs(long), 180, f"an epoch of point 1 ({log})")

    array = _tasks(slurm, job["name"])[1]["ArrayJobId"]
    task = f"{array}_1"
    trainer = point_processes(1)
    slurm.run("scontrol", "requeue", task)

    def requeued_and_training() -> bool:  # a new attempt's process, not the one stopping
        again = _tasks(slurm, job["name"])[1]
        return int(again["Restarts"]) >= 1 and point_processes(1) not in ([], trainer)

    def short_done() -> bool:
        return short.exists("result.json") and short.read_json("result.json")["status"] == "done"

    wait_for(requeued_and_training, 120, f"task {task} requeued and training again")
    wait_for(short_done, 120, "point 0 done")
    # Every other task has ended, the requeued one wrote a result before its requeue: the
    # controller still waits for it.
    assert slurm.job(first)["JobState"] == "RUNNING", log.read_text()[-3000:]

    # The controller is cancelled, the sweep submitted again while point 1 still trains.
    slurm.run("scancel", first)
    slurm.wait_ended(first, timeout=60)
    assert point_processes(1), "point 1 stopped with its controller"
    second, _ = _submit(slurm, tmp_path, job, "hydra.launcher.array_parallelism=2")
    log = tmp_path / f"inat-sweep-{second}.out"
    wait_for(
        lambda: log.exists() and "still queued or running" in log.read_text(),
        60,
        f"the second controller waiting for task {task} ({log})",
    )
    ended = slurm.wait_ended(second, timeout=300, log=log)

    assert ended["ExitCode"] == "0:0", log.read_text()[-3000:]
    assert "2 point(s), 0 to run" in log.read_text()
    summary = sweep.read_json("summary.json")
    assert summary["counts"] == {"done": 2}
    # One array job in all, each point trained to its epochs exactly once.
    tasks = _tasks(slurm, job["name"])
    assert {t["ArrayJobId"] for t in tasks.values()} == {array}
    assert epochs(short) == [1, 2, 3]
    assert epochs(long) == list(range(1, 31))
    assert len(long.read_json("result.json")["resumes"]) >= 1


def test_a_killed_task_a_requeued_task_and_a_resubmitted_controller_end_with_each_point_once(
    slurm, tmp_path
):
    # Point 0 short; points 1 and 2 long enough to be hit while they train.
    job = {
        "name": "slurm-faults",
        "overrides": SLOW_EPOCHS,
        "sweep": {"strategy": "grid", "params": {"trainer.epochs": [3, 12, 13]}},
    }
    points = expand(job)
    first, sweep = _submit(slurm, tmp_path, job, "hydra.launcher.array_parallelism=3")
    log = tmp_path / f"inat-sweep-{first}.out"
    runs = [sweep.child(p.name) for p in points]
    wait_for(lambda: epochs(runs[1]) and epochs(runs[2]), 180, f"epochs of points 1, 2 ({log})")

    (trainer1,) = point_processes(1)
    os.kill(parent_of(trainer1), signal.SIGKILL)  # point 1's task dies (a node lost)
    array = _tasks(slurm, job["name"])[2]["ArrayJobId"]
    trainer2 = point_processes(2)
    slurm.run("scontrol", "requeue", f"{array}_2")  # point 2's task is requeued
    wait_for(
        lambda: point_processes(2) not in ([], trainer2), 120, "point 2 requeued, training again"
    )
    slurm.run("scancel", first)  # the controller is cancelled while point 2 trains
    slurm.wait_ended(first, timeout=60)

    second, _ = _submit(slurm, tmp_path, job, "hydra.launcher.array_parallelism=3")
    log = tmp_path / f"inat-sweep-{second}.out"
    ended = slurm.wait_ended(second, timeout=600, log=log)
    assert ended["ExitCode"] == "0:0", log.read_text()[-3000:]
    assert sweep.read_json("summary.json")["counts"] == {"done": 3}
    # Each point trained each of its epochs once: no two processes on a point at once.
    for run, point in zip(runs, points, strict=True):
        planned = int(point.swept[0].split("=")[1])
        assert epochs(run) == list(range(1, planned + 1)), point.name
    assert runs[1].read_json("result.json")["resumes"]  # from its checkpoint, by the second
    assert runs[2].read_json("result.json")["resumes"]  # after its requeue
    assert not point_processes(1) and not point_processes(2)

"""The controller of a Slurm sweep (`inat sweep JOB --launcher slurm`, run by slurm/sweep.sh).

1. Expand the job into its points, write the manifest. (An adaptive sweep has no points
   yet: its array job has a task per group of workers, see inat.sweeps.worker, and the
   steps below submit those tasks unless every point has ended.)
2. Wait while tasks of an earlier submission of the sweep (its controller was cancelled,
   they were not) are still queued or running: submitting their points again would train
   them twice at once. Then keep the points not done yet.
3. Compose the controller's config (configs/slurm_sweep.yaml and the hydra.* overrides) and
   freeze the job file into its log folder, so that a requeued task reads the job as it was.
4. Run a Hydra multirun over those points' indices with the Slurm launcher: one array job,
   waited for until every task has left Slurm's queue (a requeued task has not).
5. Record a point whose task died without a word as failed, with what Slurm says of the
   task, then write summary.json.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import yaml
from omegaconf import DictConfig

from inat.compose import compose
from inat.errors import ConfigError, ExitCode, TransientError
from inat.rundir import SUMMARY, RunDir, Status
from inat.storage import Storage
from inat.sweeps.jobs import Point, expand, load_job, override_value
from inat.sweeps.run import is_adaptive, mark_failed, sweep_storage, write_manifest
from inat.sweeps.search import parse_search
from inat.sweeps.slurm.queue import TASKS, live, tasks_named, wait_until_ended
from inat.sweeps.slurm.submit import Container
from inat.sweeps.slurm.task import run_task
from inat.sweeps.summary import write_summary, write_summary_if_ended
from inat.sweeps.worker import tasks

log = logging.getLogger(__name__)

CONFIG_NAME = "slurm_sweep"
FROZEN_JOB = "job.yaml"
_CONTROLLER_PREFIXES = ("hydra.", "hydra/")


def split_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the overrides of every point, the controller's own: those of hydra.* and hydra/*)."""
    controller = [o for o in overrides if o.lstrip("+~").startswith(_CONTROLLER_PREFIXES)]
    return [o for o in overrides if o not in controller], controller


@hydra.main(config_path="pkg://inat.configs", config_name=CONFIG_NAME, version_base="1.3")
def _hydra_multirun(cfg: DictConfig) -> dict[str, Any]:
    return run_task(cfg)


def controller_config(name: str, overrides: Sequence[str]) -> DictConfig:
    """The controller's composed config, hydra node included; bad hydra.* overrides fail here,
    before anything is submitted."""
    cfg = compose([f"name={name}", *overrides], CONFIG_NAME, hydra_node=True)
    Container.from_config(cfg.hydra.launcher.container)
    _check_time_limit(cfg.hydra.launcher.timeout_min, cfg.hydra.launcher.signal_delay_s)
    return cfg


# An attempt that gets Slurm's warning this soon after it starts hardly trains: it would
# spend its time starting, checkpointing and being requeued.
MIN_WORK_S = 300


def _check_time_limit(timeout_min: float, signal_delay_s: float) -> None:
    """Refuse a warning that comes before the time limit leaves any time to train (every
    attempt would be requeued at once); warn when it leaves under MIN_WORK_S."""
    limit_s = timeout_min * 60
    if signal_delay_s >= limit_s:
        raise ConfigError(
            f"hydra.launcher.signal_delay_s={signal_delay_s:g} is not below the time limit "
            f"(hydra.launcher.timeout_min={timeout_min:g}, {limit_s:g} s): every attempt would "
            "get the warning to checkpoint before it trains. Raise timeout_min or lower "
            "signal_delay_s (it needs only the time a checkpoint takes to write)."
        )
    if limit_s - signal_delay_s < MIN_WORK_S:
        log.warning(
            "hydra.launcher.timeout_min=%g with signal_delay_s=%g leaves %g s of each attempt "
            "to train: points will be requeued often",
            timeout_min,
            signal_delay_s,
            limit_s - signal_delay_s,
        )


def run_sweep(job_file: str | Path, overrides: Sequence[str]) -> ExitCode:
    """Run every point of the job not done yet as one Slurm array job; wait; summarize. An
    adaptive sweep's array job has a task per group of workers instead.

    Returns OK when every point is done (or pruned), FAILURE otherwise (summary.json says
    which and why).
    """
    job = load_job(job_file)
    point_overrides, controller_overrides = split_overrides(overrides)
    cfg = controller_config(job["name"], controller_overrides)
    log_dir = Path(cfg.hydra.sweep.dir).absolute()
    storage = sweep_storage(job, point_overrides)
    if is_adaptive(job):
        _check_workers(cfg)
        write_manifest(storage, job, [])
        wait_for_earlier_tasks(str(cfg.hydra.launcher.name))
        return _run_workers(job, storage, point_overrides, controller_overrides, log_dir)
    points = expand(job)
    if job.get("sweep"):
        write_manifest(storage, job, points)
        runs = {p.index: storage.child(p.name) for p in points}
    else:
        runs = {0: storage}
    wait_for_earlier_tasks(str(cfg.hydra.launcher.name))
    todo = [p for p in points if RunDir(runs[p.index]).status() != Status.DONE]
    log.info("%s: %d point(s), %d to run", job["name"], len(points), len(todo))
    if todo:
        indices = [p.index for p in todo]
        _multirun(job, indices, point_overrides, controller_overrides, log_dir)
        _record_silent_ends(todo, runs, log_dir)
    if job.get("sweep"):
        summary = write_summary(storage)
        log.info("%s/%s: %s", storage.uri, SUMMARY, summary["counts"])
    finished = all(RunDir(run).status() in _FINISHED for run in runs.values())
    return ExitCode.OK if finished else ExitCode.FAILURE


_FINISHED = (Status.DONE, Status.PRUNED)  # a pruned point is a result of its sweep too


def _check_workers(cfg: DictConfig) -> None:
    """An adaptive sweep's worker trains one point at a time in one process: refuse several
    GPUs per task, which would train each point with DDP over processes that take points."""
    gpus = cfg.hydra.launcher.gpus_per_node or 0
    if gpus > 1:
        raise ConfigError(
            f"hydra.launcher.gpus_per_node={gpus}: the workers of an adaptive sweep (method: "
            "bayes) train a point each on one GPU; give each task 1 GPU and set "
            "job.sweep.parallelism (workers_per_gpu for workers sharing it)"
        )


def _run_workers(
    job: dict[str, Any],
    storage: Storage,
    point_overrides: list[str],
    controller_overrides: list[str],
    log_dir: Path,
) -> ExitCode:
    """Submit the adaptive sweep's tasks of workers (unless every point has ended); wait for
    them; summarize. Points a dead task left unfinished resume when the sweep runs again."""
    search = parse_search(job["name"], job["sweep"])
    count = tasks(search)
    log.info(
        "%s: %d worker(s) in %d task(s), run_cap %d",
        job["name"],
        search.parallelism,
        count,
        search.run_cap,
    )
    if not write_summary_if_ended(storage):
        _multirun(job, list(range(count)), point_overrides, controller_overrides, log_dir)
    summary = write_summary(storage)
    log.info("%s/%s: %s", storage.uri, SUMMARY, summary["counts"])
    finished = sum(summary["counts"].get(s.value, 0) for s in _FINISHED)
    if finished < search.run_cap:
        log.error(
            "%d of %d points are done or pruned (%s): submit the sweep again to resume the "
            "unfinished ones",
            finished,
            search.run_cap,
            summary["counts"],
        )
        return ExitCode.FAILURE
    return ExitCode.OK


def wait_for_earlier_tasks(name: str) -> None:
    """Wait until no array task called `name` (this sweep's) is queued or running.

    They belong to an earlier submission of the sweep whose controller was cancelled: their
    points are not done yet, and submitting them again now would train them twice at once.
    """
    listed = tasks_named(name)
    if listed is None:
        raise TransientError(f"squeue cannot list the tasks of {name}: submit the sweep again")
    earlier = [t.job_id for t in live(listed)]
    if not earlier:
        return
    log.warning(
        "%d task(s) of an earlier submission of this sweep are still queued or running (%s): "
        "waiting for them to end, then submitting the points not done "
        "(scancel --name %s stops them instead)",
        len(earlier),
        " ".join(earlier),
        name,
    )
    wait_until_ended(name, earlier)


def _multirun(
    job: dict[str, Any],
    indices: list[int],
    point_overrides: list[str],
    controller_overrides: list[str],
    log_dir: Path,
) -> None:
    """Freeze the job into `log_dir`, then run the Hydra multirun of the points (an adaptive
    sweep's tasks) `indices`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    frozen = log_dir / FROZEN_JOB
    frozen.write_text(yaml.safe_dump({"job": job}, sort_keys=False))
    args = [
        "--multirun",
        f"name={job['name']}",
        f"job_file={override_value(str(frozen))}",
        f"overrides={override_value(point_overrides)}",
        f"point={','.join(str(i) for i in indices)}",
        *controller_overrides,
        f"hydra.sweep.dir={override_value(str(log_dir))}",
    ]
    argv = sys.argv
    sys.argv = ["inat sweep", *args]
    try:
        _hydra_multirun()
    except SystemExit as e:
        # Hydra exits when the array job could not be submitted (sbatch refused it).
        log.error("the multirun ended with exit code %s", e.code)
    finally:
        sys.argv = argv


def _record_silent_ends(todo: list[Point], runs: dict[int, Storage], log_dir: Path) -> None:
    """Mark failed the points whose task ended without a word in their run directory, with
    what Slurm said of the task (tasks.json, written by the launcher in submission order)."""
    tasks_file = log_dir / TASKS
    if not tasks_file.exists():  # the multirun ended before its tasks were submitted
        return
    tasks = json.loads(tasks_file.read_text())
    for point, task in zip(todo, tasks, strict=True):
        if RunDir(runs[point.index]).status() in (None, Status.RUNNING):
            mark_failed(
                runs[point.index],
                f"its Slurm task {task['job_id']} ended without finishing it ({task['end']}: "
                "its process or the task's killed? the node lost? out of memory?); its logs: "
                f"{log_dir / '.submitit' / task['job_id']}",
            )

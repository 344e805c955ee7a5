"""The workers of an adaptive sweep: each takes the next point, trains it, takes another.

A worker is one process with a name (`3`: worker 3 of the sweep's `parallelism`). It takes,
in this order: a point it claimed before and did not finish (it was requeued or retried),
a point whose holder died or was interrupted (its lease is released or stale), a new
point (inat.sweeps.claims.take). It stops when every one of `run_cap` points is claimed
and none waits for a worker, and exits 0; a stop signal (preemption, a time limit)
checkpoints the point it trains and exits 75, and its next start resumes that point.

Workers run in groups: `inat sweep JOB` runs all `parallelism` of them on this machine;
a Slurm array task or a Kubernetes pod (`inat sweep JOB --task G`) runs group G, the
`workers_per_gpu` workers that share its GPU.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from inat import stop_signals
from inat.errors import ConfigError, ExitCode, Interrupted, TransientError
from inat.lease import LeaseHeld
from inat.processes import die_with_parent
from inat.storage import Storage
from inat.sweeps.claims import Claim, is_free, read_claims, take
from inat.sweeps.run import (
    compose_probe,
    run_claimed,
    summarize_if_ended,
    sweep_storage,
    write_manifest,
)
from inat.sweeps.search import Search, parse_search

log = logging.getLogger(__name__)


def tasks(search: Search) -> int:
    """How many groups of `workers_per_gpu` workers make the sweep's `parallelism`."""
    return math.ceil(search.parallelism / search.workers_per_gpu)


def task_workers(search: Search, task: int) -> list[str]:
    """The names of the workers of group `task` (a Slurm array task, a pod)."""
    if not 0 <= task < tasks(search):
        raise ConfigError(
            f"--task {task} is out of range: the sweep has {tasks(search)} task(s) of "
            f"{search.workers_per_gpu} worker(s) (parallelism {search.parallelism})"
        )
    first = task * search.workers_per_gpu
    return [str(w) for w in range(first, min(first + search.workers_per_gpu, search.parallelism))]


def _next(
    sweep: Storage, job: Mapping[str, Any], search: Search, worker: str, timeout_s: float
) -> Claim | None:
    """The claim this worker trains next: its own unfinished one, an abandoned one, or a new
    one; None when nothing is left to take."""
    free = [c for c in read_claims(sweep) if is_free(sweep, c, worker)]
    mine = [c for c in free if c.worker == worker]
    if mine or free:
        return (mine or free)[0]
    return take(sweep, job, search, worker, timeout_s)


def run_worker(job: dict[str, Any], overrides: Sequence[str], worker: str) -> int:
    """Take and train points of the adaptive sweep `job` until none is left; returns how many
    this worker trained to an end. Interrupted (exit 75) when a signal stopped it."""
    search = parse_search(job["name"], job["sweep"])
    timeout_s = float(compose_probe(job, overrides).trainer.lease_timeout_s)
    sweep = sweep_storage(job, overrides)
    write_manifest(sweep, job, [])
    trained = 0
    # A stop signal between points (or while one is set up) is recorded: the worker takes no
    # other point, and a point being set up stops as its training starts.
    with stop_signals.recorded():
        log.info("worker %s: taking points of %s (run_cap %d)", worker, job["name"], search.run_cap)
        while not stop_signals.requested() and (
            claim := _next(sweep, job, search, worker, timeout_s)
        ):
            trained += _train(job, overrides, sweep, claim, worker)
    if signum := stop_signals.requested():
        raise Interrupted(f"worker {worker} stopped by {signum.name}; its next start resumes")
    log.info("worker %s: nothing left to take (trained %d point(s))", worker, trained)
    summarize_if_ended(sweep)
    return trained


def _train(
    job: dict[str, Any], overrides: Sequence[str], sweep: Storage, claim: Claim, worker: str
) -> int:
    """Train one claimed point; 1 if it ended here, 0 if another process holds it. A point
    that fails is recorded and the worker goes on; an interruption ends the worker."""
    log.info("worker %s: point %s %s", worker, claim.point.name, " ".join(claim.point.swept))
    try:
        run_claimed(job, claim.point, overrides, sweep)
    except LeaseHeld as e:
        log.info("worker %s: %s", worker, e)
        return 0
    except (Interrupted, TransientError):
        raise
    except Exception:
        log.exception("worker %s: point %s failed; taking the next", worker, claim.point.name)
    return 1


def gpu_env(position: int, search: Search) -> dict[str, str]:
    """The environment of the worker at `position` on this machine: its share of the GPUs
    named in CUDA_VISIBLE_DEVICES (`workers_per_gpu` workers to a GPU), if any are named."""
    visible = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    if len(visible) < 2:
        return dict(os.environ)
    gpu = visible[(position // search.workers_per_gpu) % len(visible)]
    return {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}


def run_workers(
    job_file: str | Path, job: dict[str, Any], overrides: Sequence[str], workers: Sequence[str]
) -> ExitCode:
    """Run `workers` here: one in this process, several as child processes (each
    `inat sweep JOB --worker NAME`) that die with this one and get its stop signals.

    Returns RETRY if any was interrupted, FAILURE if one failed otherwise, else OK.
    """
    if len(workers) == 1:
        run_worker(job, overrides, workers[0])
        return ExitCode.OK
    search = parse_search(job["name"], job["sweep"])
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "inat", "sweep", str(job_file), "--worker", name, *overrides],
            env=gpu_env(position, search),
            preexec_fn=lambda: die_with_parent(signal.SIGKILL),
        )
        for position, name in enumerate(workers)
    ]

    def forward(signum: int, _frame: object) -> None:
        log.warning("received %s: passed on to the workers", signal.Signals(signum).name)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    # This process waits for its workers' checkpoints: were it to stop, they would die with it.
    with stop_signals.handled(forward):
        codes = [child.wait() for child in children]
    log.info("workers %s ended with exit codes %s", ", ".join(workers), codes)
    if ExitCode.RETRY in codes:
        return ExitCode.RETRY
    return ExitCode.OK if all(code == ExitCode.OK for code in codes) else ExitCode.FAILURE

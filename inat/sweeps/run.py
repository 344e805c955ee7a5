"""Running the points of a job file: one point (a Kubernetes pod, a Slurm array task)
or all of them here, one after another, with the sweep's manifest and summary; an
adaptive sweep's points are run by its workers (inat.sweeps.worker).

    OUTPUT/NAME/sweep.json      the ordered points (an adaptive sweep: none), written once
    OUTPUT/NAME/claims/         an adaptive sweep's points, as workers took them
    OUTPUT/NAME/<point>/        one run directory per point
    OUTPUT/NAME/summary.json    every point's status and metrics, written when all ended
                                (by the last point to end, and by run_all)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from inat import stop_signals
from inat.compose import compose
from inat.errors import ConfigError, ExitCode, InatError, Interrupted, TransientError
from inat.rundir import MANIFEST, SUMMARY, RunDir, Status, read_manifest
from inat.storage import Storage, open_storage, storage_settings
from inat.sweeps.jobs import Point, expand, make_point
from inat.sweeps.search import parse_search
from inat.sweeps.space import distributions
from inat.sweeps.study import draw
from inat.sweeps.summary import write_summary, write_summary_if_ended

if TYPE_CHECKING:
    from inat.train.callbacks import Callback

log = logging.getLogger(__name__)


def compose_point(job: dict[str, Any], point: Point, overrides: Sequence[str]) -> DictConfig:
    """The train config of one point: the job's and the point's overrides, then `overrides`.

    `overrides` (from the command line or the chart) come last, so they say where to
    read and write (output=..., data.source=...) for every point alike.
    """
    cfg = compose([*point.overrides, f"name={job['name']}", *overrides])
    sweep_dir = f"{cfg.output}/{job['name']}"
    cfg.run_dir = f"{sweep_dir}/{point.name}" if job.get("sweep") else sweep_dir
    return cfg


def compose_all(job: dict[str, Any], overrides: Sequence[str]) -> list[DictConfig]:
    """Every point's config, composed and validated before any point trains.

    Raises one ConfigError with a line per point that does not compose. An adaptive sweep's
    points are chosen as workers take them: its probe points are composed instead, so that
    a misspelt key or a value not allowed fails before any worker starts.
    """
    points = probe_points(job) if is_adaptive(job) else expand(job)
    configs, bad = [], []
    for point in points:
        try:
            configs.append(compose_point(job, point, overrides))
        except ConfigError as e:
            bad.append(f"point {point.index} ({point.name}): {e}")
    if bad:
        raise ConfigError(
            f"{len(bad)} of {len(points)} point(s) of {job['name']} have a bad config; "
            "nothing was trained:\n" + "\n".join(bad)
        )
    return configs


def is_adaptive(job: Mapping[str, Any]) -> bool:
    """Whether the job is a sweep whose points workers choose as they take them (bayes)."""
    return bool(job.get("sweep")) and parse_search(job["name"], job["sweep"]).adaptive


def probe_points(job: dict[str, Any]) -> list[Point]:
    """Points that stand for an adaptive sweep's space before any is chosen: one drawn at
    random, then each key at each of its values (a range: its ends), the others as drawn."""
    search = parse_search(job["name"], job["sweep"])
    drawn = draw(replace(search, method="random", sampler="random", run_cap=1))[0]
    probes = [drawn]
    for key, distribution in distributions(search.space).items():
        ends = getattr(distribution, "choices", None) or (distribution.low, distribution.high)
        probes += [{**drawn, key: end} for end in ends]
    return [
        make_point(job, 0, {k: search.space[k].value_of(v) for k, v in probe.items()})
        for probe in probes
    ]


def compose_probe(job: dict[str, Any], overrides: Sequence[str]) -> DictConfig:
    """The config of an adaptive sweep's point drawn at random: what every point shares
    (where it is written, its lease timeout)."""
    return compose_point(job, probe_points(job)[0], overrides)


def sweep_storage(job: dict[str, Any], overrides: Sequence[str]) -> Storage:
    """The folder holding the sweep's points, manifest and summary."""
    # Without the swept values: a point whose values do not compose must fail alone.
    base = Point(0, "", (), tuple(str(o) for o in job.get("overrides") or ()))
    cfg = compose_point(job, base, overrides)
    return open_storage(f"{cfg.output}/{job['name']}", storage_settings(cfg.storage))


def write_manifest(storage: Storage, job: dict[str, Any], points: list[Point]) -> None:
    """Write sweep.json once; a different sweep already in the folder is refused.

    An adaptive sweep's manifest lists no points (its claims do) and holds its job as the
    identity of the sweep.
    """
    manifest = {
        "name": job["name"],
        "adaptive": is_adaptive(job),
        "job": job,
        "points": [
            {
                "index": p.index,
                "name": p.name,
                "swept": list(p.swept),
                "overrides": list(p.overrides),
            }
            for p in points
        ],
    }
    if storage.exists(MANIFEST):
        held = read_manifest(storage)
        same = held["job"] == job if manifest["adaptive"] else held["points"] == manifest["points"]
        if not same:
            raise ConfigError(
                f"{storage.uri}/{MANIFEST} holds a different sweep; give this job another "
                "job.name or output, or delete the old sweep"
            )
        return
    storage.write_json(MANIFEST, manifest)


def mark_failed(run: Storage, error: str) -> None:
    """Record the run in `run` as failed with `error`, unless its result.json already says it
    ended (done, pruned, or failed: the trainer's own error is the more precise one)."""
    run_dir = RunDir(run)
    status = run_dir.status()
    if status is None or not status.ended:
        run_dir.mark(Status.FAILED, error=error)


def run_point(job: dict[str, Any], index: int, overrides: Sequence[str]) -> dict[str, Any]:
    """Train point `index` of the job (resuming it if it has a checkpoint).

    A point that fails before training (its overrides do not compose, a value is not
    allowed) is recorded as failed in its run directory. The last point of a sweep to end
    writes the sweep's summary.json.
    """
    from inat.train import train

    points = expand(job)
    if not 0 <= index < len(points):
        raise ConfigError(f"point index {index} is out of range: the job has {len(points)} points")
    point = points[index]
    if not job.get("sweep"):
        return train(compose_point(job, point, overrides))
    storage = sweep_storage(job, overrides)
    write_manifest(storage, job, points)
    try:
        return _run_sweep_point(job, lambda: points, point, overrides, storage)
    finally:
        if os.environ.get("RANK", "0") == "0":  # one process of `inat launch` (torchrun's rank)
            summarize_if_ended(storage)


def run_claimed(
    job: dict[str, Any], point: Point, overrides: Sequence[str], storage: Storage
) -> dict[str, Any]:
    """Train `point`, claimed by a worker of the adaptive sweep in `storage`."""
    from inat.sweeps.claims import read_claims

    return _run_sweep_point(
        job, lambda: [c.point for c in read_claims(storage)], point, overrides, storage
    )


def summarize_if_ended(storage: Storage) -> None:
    """Write the sweep's summary.json if this was its last point to end; never raise."""
    try:
        if write_summary_if_ended(storage):
            log.info("every point has ended: summary in %s/%s", storage.uri, SUMMARY)
    except (InatError, OSError) as e:
        log.warning("could not write the summary of %s: %s", storage.uri, e)


def _run_sweep_point(
    job: dict[str, Any],
    points: Callable[[], Sequence[Point]],
    point: Point,
    overrides: Sequence[str],
    storage: Storage,
) -> dict[str, Any]:
    """Train `point` (one of the sweep's `points()` at the moment) in `storage`, recording a
    failure in its run directory."""
    from inat.train import train

    try:
        cfg = compose_point(job, point, overrides)
    except ConfigError as e:
        error = f"point {point.name}: {e}"
        mark_failed(storage.child(point.name), error)
        raise ConfigError(error) from e
    try:
        return train(cfg, callbacks=_callbacks(job, points, point, storage, cfg))
    except (Interrupted, TransientError):
        raise  # the run recorded itself as interrupted: a retry resumes it
    except Exception as e:
        try:
            mark_failed(storage.child(point.name), f"{type(e).__name__}: {e}")
        except (InatError, OSError) as unrecorded:
            log.warning("could not record the failure of %s: %s", point.name, unrecorded)
        raise


def _callbacks(
    job: dict[str, Any],
    points: Callable[[], Sequence[Point]],
    point: Point,
    storage: Storage,
    cfg: DictConfig,
) -> list[Callback]:
    """The sweep's epoch-end rules for `point`: its early_terminate block, if any."""
    from inat.sweeps.pruning import Pruning

    search = parse_search(job["name"], job["sweep"])
    if search.early_terminate is None:
        return []
    return [Pruning(search, storage, points, point, cfg.trainer.epochs)]


def run_all(
    job_file: str | Path, job: dict[str, Any], overrides: Sequence[str]
) -> dict[str, Any] | None:
    """Train every point here, one after another; a failed point does not stop the others,
    a stop signal stops the sweep (Interrupted). An adaptive sweep runs its `parallelism`
    workers here, side by side.

    Every point is composed first: a bad config in any of them fails the sweep (ConfigError,
    one line per bad point) before anything trains. Returns the sweep's summary (None for a
    single run).
    """
    compose_all(job, overrides)
    if not job.get("sweep"):
        run_point(job, 0, overrides)
        return None
    if is_adaptive(job):
        return _run_workers_here(job_file, job, overrides)
    points = expand(job)
    # A stop signal between points (or while one is set up) is recorded: no other point
    # starts, and a point being set up stops as its training starts.
    with stop_signals.recorded():
        for point in points:
            if signum := stop_signals.requested():
                raise Interrupted(
                    f"{job['name']}: stopped by {signum.name} before point {point.name}; "
                    "run the sweep again to resume"
                )
            log.info("point %d/%d: %s", point.index + 1, len(points), point.name)
            try:
                run_point(job, point.index, overrides)
            except (Interrupted, TransientError):
                raise  # the point recorded itself as interrupted: the next start resumes it
            except Exception:
                log.exception("point %s failed; the sweep goes on", point.name)
    return write_summary(sweep_storage(job, overrides))


def _run_workers_here(
    job_file: str | Path, job: dict[str, Any], overrides: Sequence[str]
) -> dict[str, Any]:
    """Run every worker of the adaptive sweep `job` on this machine; then its summary."""
    from inat.sweeps.worker import run_workers

    search = parse_search(job["name"], job["sweep"])
    storage = sweep_storage(job, overrides)
    write_manifest(storage, job, [])
    code = run_workers(job_file, job, overrides, [str(w) for w in range(search.parallelism)])
    if code == ExitCode.RETRY:
        raise Interrupted(f"{job['name']}: a worker was stopped; run the sweep again to resume")
    return write_summary(storage)

"""Early termination of a sweep's weak points: an epoch-end callback of the point's run.

At each epoch's end the point reads what the other points recorded (their metrics and
early-stop decisions, from their run directories: local or S3, on any backend), asks
Optuna's pruner through the rebuilt study (inat.sweeps.study.judge), writes the decision
in its own run directory (early_stop.json: epoch, rung, value, threshold, how many points
it was compared with) and stops as `pruned` if the pruner says so. Nothing waits for a
bracket to fill: a point is judged against whatever the others recorded so far.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from inat.results.status import read_point
from inat.rundir import DamagedFile, RunDir, Status
from inat.storage import Storage
from inat.sweeps.jobs import Point
from inat.sweeps.search import Search
from inat.sweeps.study import Decision, PointRecord, judge
from inat.train.callbacks import StopRun
from inat.train.state import TrainState

log = logging.getLogger(__name__)


def metric_values(history: Sequence[dict[str, Any]], metric: str) -> list[float]:
    """The metric of each epoch of a metrics history (NaN where an epoch lacks it)."""
    return [float(row.get(metric, math.nan)) for row in history]


def read_record(sweep: Storage, point: Point, search: Search) -> PointRecord:
    """What point `point` of the sweep in `sweep` recorded so far; a damaged early_stop.json
    counts as no decision (with a warning), so that it does not end the point judged."""
    run = RunDir(sweep.child(point.name))
    files = read_point(run.storage)
    try:
        decisions = run.decisions()
    except DamagedFile as e:
        log.warning("%s; meanwhile the point counts as having no early-stop decision", e)
        decisions = []
    rungs = {int(k): v for d in decisions for k, v in d.get("rungs", {}).items()}
    return PointRecord(
        index=point.index,
        params={},
        status=run.status(),
        metrics=metric_values(files.history, search.metric),
        rungs=rungs,
    )


class Pruning:
    """The sweep's `early_terminate` rule for one point, as an epoch-end callback."""

    def __init__(
        self,
        search: Search,
        sweep: Storage,
        points: Callable[[], Sequence[Point]],
        point: Point,
        epochs: int,
    ) -> None:
        self.search = search
        self.sweep = sweep
        self.points = points  # the sweep's points now (an adaptive sweep's grow as it runs)
        self.point = point
        self.run = RunDir(sweep.child(point.name))
        self.epochs = epochs

    def on_epoch_end(self, row: dict[str, Any], state: TrainState) -> StopRun | None:
        """Judge this epoch against the other points; record the decision; stop if pruned."""
        metrics = metric_values(state.history, self.search.metric)
        if not math.isfinite(metrics[-1]):
            return None  # no value to judge (the metric is missing from this epoch)
        earlier = [d for d in self.run.decisions() if d["epoch"] < row["epoch"]]
        rungs = {int(k): v for d in earlier for k, v in d.get("rungs", {}).items()}
        mine = PointRecord(self.point.index, {}, Status.RUNNING, metrics, rungs)
        others = [p for p in self.points() if p.index != self.point.index]
        records = [read_record(self.sweep, p, self.search) for p in others]
        decision = judge(self.search, mine, records, self.epochs)
        if row["epoch"] >= self.epochs:  # trained to its end: done, its rungs still count
            decision = replace(decision, prune=False)
        self.run.write_decisions([*earlier, decision.as_dict()])
        if not decision.prune:
            return None
        return StopRun(Status.PRUNED, self._reason(decision))

    def _reason(self, decision: Decision) -> str:
        where = (
            f"at epoch {decision.epoch}"
            if self.search.early_terminate.type == "median"
            else f"at rung {decision.rung} (epoch {decision.epoch})"
        )
        return (
            f"pruned {where}: {self.search.metric}={decision.value:.4g} did not reach "
            f"{decision.threshold:.4g}, compared with {decision.compared} other point(s) "
            f"({self.search.early_terminate.type})"
        )

"""The claims of an adaptive sweep: which worker took which point, with which values.

    OUTPUT/NAME/claims/0000.json   point 0: {index, name, params, swept, overrides, worker,
                                             claimed_at, timeout_s}, written once
    OUTPUT/NAME/<point>/           its run directory (holding its lease while it trains)

A worker takes a point by creating the claim of the next free index (`Storage.create`:
link(2) on a file system, `If-None-Match: *` on S3): of workers racing for one index,
one wins and the others try the next. The claim holds what the sampler suggested for that
index from the sweep folder's content at that moment (inat.sweeps.study.suggest), so a
point keeps its values through every requeue, retry and takeover. Each claim has one
writer, the worker that created it; nothing in the folder is rewritten by two processes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from inat.lease import Lease
from inat.rundir import CLAIMS, RunDir, sweep_points
from inat.storage import Storage
from inat.sweeps.jobs import Point, make_point
from inat.sweeps.pruning import read_record
from inat.sweeps.search import Search
from inat.sweeps.study import PointRecord, suggest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A point of an adaptive sweep, as its claim records it."""

    point: Point
    params: Mapping[str, Any]  # Optuna's values (the study's), before Parameter.value_of
    worker: str  # the worker that took it
    claimed_at: str  # ISO time
    timeout_s: float  # a claim this old whose point never took its lease is free again

    def as_dict(self) -> dict[str, Any]:
        """The claim as its JSON file holds it (the manifest's point keys, and more)."""
        return {
            "index": self.point.index,
            "name": self.point.name,
            "swept": list(self.point.swept),
            "overrides": list(self.point.overrides),
            "params": dict(self.params),
            "worker": self.worker,
            "claimed_at": self.claimed_at,
            "timeout_s": self.timeout_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Claim:
        """The claim of a claims/NNNN.json file."""
        point = Point(data["index"], data["name"], tuple(data["swept"]), tuple(data["overrides"]))
        return cls(point, data["params"], data["worker"], data["claimed_at"], data["timeout_s"])


def claim_file(index: int) -> str:
    """The claim's path in the sweep folder."""
    return f"{CLAIMS}/{index:04d}.json"


def read_claims(sweep: Storage) -> list[Claim]:
    """Every claim of the adaptive sweep in `sweep`, by index."""
    return [Claim.from_dict(entry) for entry in sweep_points(sweep)]


def records(sweep: Storage, search: Search, claims: list[Claim]) -> list[PointRecord]:
    """What each claimed point recorded so far, with the values it was claimed with."""
    return [
        replace(read_record(sweep, claim.point, search), params=claim.params) for claim in claims
    ]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def is_free(sweep: Storage, claim: Claim, worker: str | None = None) -> bool:
    """Whether the claimed point waits for a worker (`worker`, if given): it has not ended,
    and no live process holds its lease (it was interrupted, its holder died, or its
    claimant died before taking the lease: a claim older than its timeout with no lease, or
    at once for its own claimant, stopped while it set the point up)."""
    run = RunDir(sweep.child(claim.point.name))
    status = run.status()
    if status is not None and status.ended:
        return False
    lease = Lease(run.storage, claim.worker).newest()
    if lease is not None:
        return not Lease.is_live(lease[1])
    if claim.worker == worker:
        return True
    claimed = datetime.fromisoformat(claim.claimed_at)
    return _now() - claimed > timedelta(seconds=claim.timeout_s)


def take(
    sweep: Storage, job: Mapping[str, Any], search: Search, worker: str, timeout_s: float
) -> Claim | None:
    """Claim the next point of the sweep for `worker`, or None when `run_cap` are claimed.

    The values are suggested from the sweep's records when the index is free; a lost race
    (another worker created that claim first) moves on to the next index.
    """
    while True:
        claims = read_claims(sweep)
        index = len(claims)  # claims are created in index order, each once
        if index >= search.run_cap:
            return None
        params = suggest(search, index, records(sweep, search, claims))
        values = {k: search.space[k].value_of(v) for k, v in params.items()}
        claim = Claim(make_point(job, index, values), params, worker, _now().isoformat(), timeout_s)
        if sweep.create_json(claim_file(index), claim.as_dict()):
            log.info("worker %s took point %s", worker, claim.point.name)
            return claim
        log.info("point %d was taken by another worker; trying the next", index)

"""A sweep's summary.json: every point's status and metrics, written when all points ended,
by the runner or controller that waited for them, or by the last point to end (Kubernetes).
"""

from __future__ import annotations

from typing import Any

from inat.results.status import best_row, point_status
from inat.rundir import SUMMARY, RunDir, Status, read_manifest, sweep_points
from inat.storage import Storage
from inat.sweeps.search import parse_search


def write_summary(storage: Storage) -> dict[str, Any]:
    """Write summary.json from the manifest and every point's run directory (an adaptive
    sweep's: its claims; with its method and budget)."""
    manifest = read_manifest(storage)
    rows = [point_status(storage, p) for p in sweep_points(storage)]
    summary = {
        "name": manifest["name"],
        **_budget(manifest),
        "points": rows,
        "counts": {s: sum(r["status"] == s for r in rows) for s in {r["status"] for r in rows}},
        "best": best_row([r for r in rows if r["status"] == Status.DONE]),
    }
    storage.write_json(SUMMARY, summary)
    return summary


def _budget(manifest: dict[str, Any]) -> dict[str, Any]:
    """An adaptive sweep's method and run_cap (nothing for a sweep of fixed points)."""
    if not manifest.get("adaptive"):
        return {}
    search = parse_search(manifest["name"], manifest["job"]["sweep"])
    return {"method": search.method, "run_cap": search.run_cap}


def _has_ended(run: Storage) -> bool:
    """Whether the run's result.json says it ended (a missing or unreadable one: no)."""
    status = RunDir(run).status()
    return status is not None and status.ended


def write_summary_if_ended(storage: Storage) -> bool:
    """Write summary.json if every point has ended (done, pruned or failed); returns whether
    it did.

    Where no controller waits for all points (a Kubernetes Indexed Job), each point calls
    this as it ends. Of several points ending at once, the one that reads last sees them all,
    as each wrote its result.json before reading and S3 reads see every completed write.
    """
    points = sweep_points(storage)
    if len(points) < _budget(read_manifest(storage)).get("run_cap", 0):
        return False  # an adaptive sweep's workers have not taken every point yet
    # Reads stop at the first point that has not ended: most calls read a few result.json.
    if not all(_has_ended(storage.child(point["name"])) for point in points):
        return False
    write_summary(storage)
    return True

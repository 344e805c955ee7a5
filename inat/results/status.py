"""The state of a point, read from its run directory: one row of the leaderboard and of
summary.json. Files that cannot be read (yet) are reported, never fatal.

    OUTPUT/NAME/sweep.json      the ordered points, written once by the launcher
    OUTPUT/NAME/<point>/        one run directory per point (see inat.rundir)
    OUTPUT/NAME/summary.json    every point's row, written when all points ended: by the
                                controller, or by the last point to end (Kubernetes)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from inat import rundir
from inat.storage import Storage

MANIFEST = "sweep.json"
SUMMARY = "summary.json"


@dataclass
class PointFiles:
    """What a point's run directory holds so far."""

    result: dict[str, Any] | None  # result.json; None when missing or unreadable
    history: list[dict[str, Any]]  # the readable rows of metrics.jsonl
    problems: list[str] = field(default_factory=list)  # files or lines that could not be read
    result_unreadable: bool = False


def read_point(run: Storage) -> PointFiles:
    """result.json and metrics.jsonl of a run directory, whatever state they are in."""
    files = PointFiles(result=None, history=[])
    try:
        result = run.read_json(rundir.RESULT)
        readable = isinstance(result, dict)
    except FileNotFoundError:
        result, readable = None, True
    except ValueError:  # not JSON, or not UTF-8
        result, readable = None, False
    if readable:
        files.result = result
    else:
        files.result_unreadable = True
        files.problems.append(
            f"{rundir.RESULT} is not a JSON object (a partial copy or a foreign write?): "
            "restore or delete it"
        )
    try:
        text = run.read_text(rundir.METRICS)
    except FileNotFoundError:
        text = ""
    except UnicodeDecodeError:
        text = ""
        files.problems.append(f"{rundir.METRICS} is not text: restore or delete it")
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict) and "epoch" in row:
            files.history.append(row)
        elif line.strip():
            files.problems.append(f"{rundir.METRICS} line {number} is torn or not a metrics row")
    return files


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start:
        return None
    stop = datetime.fromisoformat(end) if end else datetime.now(timezone.utc)
    return (stop - datetime.fromisoformat(start)).total_seconds()


def point_row(point: Mapping[str, Any], files: PointFiles) -> dict[str, Any]:
    """The leaderboard row of a point: its status and figures so far.

    status: queued (no result.json yet), running, done, failed, interrupted (stopped by a
    signal after a checkpoint: the requeued job resumes it) or unreadable; `resumes`
    counts the attempts that resumed from a checkpoint. A running point's figures come
    from its metrics.jsonl; wall_seconds is the wall time of the latest attempt.
    """
    result = files.result or {}
    history = files.history
    status = result.get("status", "unreadable" if files.result_unreadable else "queued")
    val = [row["val_accuracy"] for row in history if "val_accuracy" in row]
    wall = result.get("wall_seconds_last_attempt")
    if wall is None and status != "queued":
        end = None if status == "running" else result.get("updated_at")
        wall = _seconds_between(result.get("started_at"), end)
    return {
        "index": point["index"],
        "name": point["name"],
        "swept": list(point["swept"]),
        "status": status,
        "resumes": len(result.get("resumes") or []),
        "epochs": result.get("epochs", len(history)),
        "epochs_planned": result.get("epochs_planned"),
        "best_val_accuracy": result.get("best_val_accuracy", max(val, default=None)),
        "test_accuracy": (result.get("test") or {}).get("accuracy"),
        "wall_seconds": wall,
        "train_seconds": result.get(
            "train_seconds", sum(row.get("epoch_time", 0.0) for row in history)
        ),
        "error": result.get("error"),
        "problems": files.problems,
    }


def point_status(storage: Storage, point: Mapping[str, Any]) -> dict[str, Any]:
    """The row of `point` (an entry of sweep.json's points) of the sweep in `storage`."""
    return point_row(point, read_point(storage.child(point["name"])))


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The winning row: the highest validation accuracy among done points (else among all
    points that have one, while none is done); the lower index wins a tie."""
    scored = [r for r in rows if r["best_val_accuracy"] is not None]
    done = [r for r in scored if r["status"] == "done"]
    return min(done or scored, key=lambda r: (-r["best_val_accuracy"], r["index"]), default=None)


def write_summary(storage: Storage) -> dict[str, Any]:
    """Write summary.json from the manifest and every point's run directory."""
    manifest = storage.read_json(MANIFEST)
    rows = [point_status(storage, p) for p in manifest["points"]]
    summary = {
        "name": manifest["name"],
        "points": rows,
        "counts": {s: sum(r["status"] == s for r in rows) for s in {r["status"] for r in rows}},
        "best": best_row([r for r in rows if r["status"] == "done"]),
    }
    storage.write_json(SUMMARY, summary)
    return summary


def _has_ended(run: Storage) -> bool:
    """Whether the run's result.json says done or failed (a missing or unreadable one: no)."""
    try:
        result = run.read_json(rundir.RESULT)
    except (FileNotFoundError, ValueError):
        return False
    return isinstance(result, dict) and result.get("status") in ("done", "failed")


def write_summary_if_ended(storage: Storage) -> bool:
    """Write summary.json if every point has ended (done or failed); returns whether it did.

    Where no controller waits for all points (a Kubernetes Indexed Job), each point calls
    this as it ends. Of several points ending at once, the one that reads last sees them all,
    as each wrote its result.json before reading and S3 reads see every completed write.
    """
    points = storage.read_json(MANIFEST)["points"]
    # Reads stop at the first point that has not ended: most calls read a few result.json.
    if not all(_has_ended(storage.child(point["name"])) for point in points):
        return False
    write_summary(storage)
    return True

"""The state of a point, read from its run directory: one row of the leaderboard and of
summary.json (see inat.sweeps.summary). Files that cannot be read (yet) are reported,
never fatal. The layout of run directories and sweep folders is inat.rundir's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from inat import rundir
from inat.rundir import DamagedFile, RunDir, Status
from inat.storage import Storage

# The row state of a point whose result.json cannot be read: shown, never recorded.
UNREADABLE = "unreadable"


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
    run_dir = RunDir(run)
    try:
        files.result = run_dir.result()
    except FileNotFoundError:  # deleted after it was seen: as if not written yet
        pass
    except DamagedFile as e:
        files.result_unreadable = True
        files.problems.append(e.note)
    try:
        text = run_dir.metrics_text()
    except DamagedFile as e:
        text = ""
        files.problems.append(e.note)
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

    status: a Status value (queued: no result.json yet; pruned: stopped early by the sweep;
    interrupted: stopped by a signal after a checkpoint, the requeued job resumes it) or
    UNREADABLE; `resumes`
    counts the attempts that resumed from a checkpoint. A running point's figures come
    from its metrics.jsonl; wall_seconds is the wall time of the latest attempt.
    """
    result = files.result or {}
    history = files.history
    status = result.get("status", UNREADABLE if files.result_unreadable else Status.QUEUED.value)
    val = [row["val_accuracy"] for row in history if "val_accuracy" in row]
    wall = result.get("wall_seconds_last_attempt")
    if wall is None and status != Status.QUEUED:
        end = None if status == Status.RUNNING else result.get("updated_at")
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
        "test_top5_accuracy": (result.get("test") or {}).get("top5_accuracy"),
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
    done = [r for r in scored if r["status"] == Status.DONE]
    return min(done or scored, key=lambda r: (-r["best_val_accuracy"], r["index"]), default=None)

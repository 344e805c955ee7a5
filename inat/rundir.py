"""The run directory: one layout on local disk and on S3, and the one module that reads and
writes it. Everything else (the trainer, the sweep runners, results) goes through `RunDir`.

<run>/config.yaml        resolved config, secrets redacted
<run>/metrics.jsonl      one JSON object per finished epoch
<run>/result.json        status (see Status), metrics, timings, versions
<run>/train.log          the run's own log lines, appended across attempts
<run>/checkpoints/       step-NNNNNNN/state.pt folders + latest.json and best.json pointers

A sweep folder holds its points' run directories and two files of its own:

<sweep>/sweep.json       the ordered points, written once
<sweep>/summary.json     every point's status and metrics, written when all points ended
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from inat.storage import Storage

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
RESULT = "result.json"
LOG = "train.log"
CHECKPOINTS = "checkpoints"
MANIFEST = "sweep.json"
SUMMARY = "summary.json"


class Status(str, Enum):
    """The status of a run (a sweep's point) as result.json records it."""

    QUEUED = "queued"  # no result.json yet: not started
    RUNNING = "running"
    DONE = "done"
    PRUNED = "pruned"  # stopped early by a sweep's early-termination rule; a result
    FAILED = "failed"  # bad config, bad data or a bug: a retry fails again
    INTERRUPTED = "interrupted"  # stopped after a checkpoint (signal, storage outage): resumes

    @property
    def ended(self) -> bool:
        """Whether the run will not train again unless asked to (done, pruned or failed)."""
        return self in (Status.DONE, Status.PRUNED, Status.FAILED)

    def __str__(self) -> str:
        return self.value


def now() -> str:
    """The current time as an ISO 8601 string in UTC."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunDir:
    """One run directory (local or s3://): its files, read and written in one place."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @property
    def uri(self) -> str:
        """Where the run directory is, for messages."""
        return self.storage.uri

    @property
    def checkpoints(self) -> Storage:
        """The folder of the run's checkpoints (see inat.train.checkpoint)."""
        return self.storage.child(CHECKPOINTS)

    # -- result.json
    def result(self) -> dict[str, Any] | None:
        """result.json, or None when there is none yet. Raises ValueError when it is not a
        JSON object (a torn copy, a foreign write)."""
        if not self.storage.exists(RESULT):
            return None
        result = self.storage.read_json(RESULT)
        if not isinstance(result, dict):
            raise ValueError(f"{self.uri}/{RESULT} is not a JSON object")
        return result

    def status(self) -> Status | None:
        """The recorded status, or None when the run has not started (or is unreadable)."""
        try:
            result = self.result()
        except (ValueError, FileNotFoundError):
            return None
        if result is None:
            return None
        try:
            return Status(result.get("status"))
        except ValueError:
            return None

    def start(self, fields: dict[str, Any]) -> None:
        """Write a fresh result.json for this attempt: status running, then `fields`."""
        self.storage.write_json(
            RESULT, {"status": Status.RUNNING.value, "updated_at": now(), **fields}
        )

    def mark(self, status: Status, **fields: Any) -> None:
        """Set result.json's status (and `fields`), keeping what this attempt recorded."""
        result = self.result() or {}
        self.storage.write_json(
            RESULT, {**result, "status": status.value, "updated_at": now(), **fields}
        )

    # -- config.yaml and metrics.jsonl
    def config(self) -> dict[str, Any] | None:
        """The recorded config (redacted), or None when the run has not started."""
        import yaml

        if not self.storage.exists(CONFIG):
            return None
        return yaml.safe_load(self.storage.read_text(CONFIG))

    def write_config(self, config: dict[str, Any]) -> None:
        """Record the run's resolved (and already redacted) config as config.yaml."""
        import yaml

        self.storage.write_text(CONFIG, yaml.safe_dump(config, sort_keys=False))

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl from the whole history (object stores cannot append)."""
        self.storage.write_text(METRICS, "".join(json.dumps(row) + "\n" for row in history))

    def __repr__(self) -> str:
        return f"RunDir({self.uri!r})"

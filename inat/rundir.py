"""The run directory: one layout on local disk and on S3, and the one module that reads and
writes it. Everything else (the trainer, the sweep runners, results) goes through `RunDir`.

<run>/config.yaml        resolved config, secrets redacted
<run>/metrics.jsonl      one JSON object per finished epoch
<run>/result.json        status (see Status), metrics, timings, versions
<run>/train.log          the run's own log lines, appended across attempts
<run>/checkpoints/       step-NNNNNNN/state.pt folders + latest.json and best.json pointers
<run>/early_stop.json    a sweep point's early-stop decisions, one per epoch judged
<run>/leases/            who trains the run now (see inat.lease)

A sweep folder holds its points' run directories and two files of its own:

<sweep>/sweep.json       the ordered points, written once (an adaptive sweep: its job only)
<sweep>/claims/          an adaptive sweep's points, NNNN.json each, as workers took them
<sweep>/summary.json     every point's status and metrics, written when all points ended
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from inat.errors import ConfigError, ExitCode, InatError
from inat.stop_signals import PassStops
from inat.storage import Storage
from inat.storage.local import LocalStorage

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
# The columns of metrics.jsonl, one row per epoch (val_top5_accuracy: with over 5 classes);
# what a sweep's metric may name.
EPOCH_METRICS = (
    "epoch",
    "step",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_top5_accuracy",
    "lr",
    "epoch_time",
    "images_per_sec",
    "skipped_steps",
    "nonfinite_steps",
)
RESULT = "result.json"
LOG = "train.log"
CHECKPOINTS = "checkpoints"
EARLY_STOP = "early_stop.json"
MANIFEST = "sweep.json"
SUMMARY = "summary.json"
CLAIMS = "claims"
_CLAIM = re.compile(rf"{CLAIMS}/\d{{4,}}\.json")

# Keys a run directory may continue with other values of: where the run reads and writes,
# where it logs, how fast it loads and computes, when it gives up; not what it trains.
# Every other key of config.yaml must be the same to continue a run (RunDir.check_config);
# a key here covers the keys below it. trainer.epochs is compared by the trainer instead:
# more epochs continue the run, fewer than it finished are refused.
UNCOMPARED_KEYS = (
    "output",
    "name",
    "run_dir",
    "data.source",  # the same data moved (a local copy of an s3:// zip)
    "data.cache_dir",
    "data.num_workers",
    "storage",
    "logger",
    "trainer.log_every_n_steps",
    "trainer.keep_checkpoints",
    "trainer.compile",  # the same weights, computed faster
    "trainer.channels_last",
    "trainer.cache_features",  # the same result (inat.train.features)
    "trainer.max_nonfinite_steps",  # a guard: when a diverging run is stopped, not how it trains
    "trainer.lease_timeout_s",  # who may train the run, not how
    "trainer.epochs",
)
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's console format


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


class DamagedFile(InatError):
    """A file of a run directory or sweep folder that does not hold what inat writes there
    (a copy cut short, a foreign write, a disk error). `note` names the file (relative to
    its folder), what is wrong with it and what to do; the message adds where it is."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(
        self, storage: Storage, relpath: str, expected: str, why: str, advice: str
    ) -> None:
        self.note = f"{relpath} is not {expected} ({why}): {advice}"
        super().__init__(f"{storage.uri}/{self.note}")


_HOLDS = {dict: "a mapping", list: "a list", str: "a string"}


def read_file(storage: Storage, relpath: str, advice: str, shape: type | None = None) -> Any:
    """The file `relpath` of a run directory or sweep folder: its text, or with `shape`
    (dict or list) its value as JSON (as YAML for a .yaml file), which must be a `shape`.

    The readers of run directories and sweep folders read their files through this: a file
    that is not UTF-8 text, not JSON or YAML, or not a `shape` raises DamagedFile naming it
    and `advice` (what to do), never a decode error. FileNotFoundError when there is none.
    """
    try:
        text = storage.read_bytes(relpath).decode("utf-8")
    except UnicodeDecodeError as e:
        expected = "text" if shape is None else _expected(relpath, shape)
        raise DamagedFile(storage, relpath, expected, "binary bytes, not UTF-8", advice) from e
    if shape is None:
        return text
    expected = _expected(relpath, shape)
    if relpath.endswith(".yaml"):
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise DamagedFile(storage, relpath, expected, "not valid YAML", advice) from e
    else:
        try:
            value = json.loads(text)
        except ValueError as e:
            raise DamagedFile(storage, relpath, expected, "torn, or not JSON", advice) from e
    if not isinstance(value, shape):
        held = "it is empty" if value is None else f"it holds {_HOLDS.get(type(value), 'a value')}"
        raise DamagedFile(storage, relpath, expected, held, advice)
    return value


def _expected(relpath: str, shape: type) -> str:
    """What a file of `shape` must hold, in words: "a JSON object", "a YAML mapping"."""
    if relpath.endswith(".yaml"):
        return "a YAML mapping"
    return "a JSON object" if shape is dict else "a JSON list"


def now() -> str:
    """The current time as an ISO 8601 string in UTC."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values (lists and empty mappings are leaves), in document order."""
    leaves: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            leaves.update(flatten(value, f"{dotted}."))
        else:
            leaves[dotted] = value
    return leaves


def under(key: str, prefixes: Iterable[str]) -> bool:
    """Whether the dotted `key` is one of `prefixes` or below one (storage.region: storage)."""
    return any(key == k or key.startswith(f"{k}.") for k in prefixes)


def run_name(config: Mapping[str, Any], leave_out: Iterable[str] = ()) -> str:
    """The name of a run not given one (`name` null): its model and a hash of what it trains,
    e.g. `scratch-3f9a1c2e`, `resnet50-0b7d4e11`.

    The hash covers every key that `config_changes` compares, and `data.source`, except
    those under `leave_out` (a multirun's swept keys: its points share one folder). A new
    config gets a new run directory; the same config (a requeued task, a retried pod, the
    same command after Ctrl-C) the same one, and resumes it.
    """
    flat = flatten(config)
    trained = {
        key: value
        for key, value in flat.items()
        if (key == "data.source" or not under(key, UNCOMPARED_KEYS)) and not under(key, leave_out)
    }
    text = json.dumps(trained, sort_keys=True, default=str)
    model = re.sub(r"[^\w.-]+", "-", str(flat.get("model.backbone") or "scratch"))
    return f"{model}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """`key: old -> new` for each compared key (not under UNCOMPARED_KEYS) that differs."""
    before, after = flatten(old), flatten(new)
    unset = "(unset)"
    return [
        f"{key}: {before.get(key, unset)} -> {after.get(key, unset)}"
        for key in sorted(before.keys() | after.keys())
        if not under(key, UNCOMPARED_KEYS) and before.get(key, unset) != after.get(key, unset)
    ]


class RunLog(PassStops, logging.Handler):
    """train.log: the log records of this attempt after those of the earlier attempts.

    A local file is appended line by line. An object store cannot append: the earlier
    attempts' text is read once, and `flush()` rewrites the whole object with it and
    this attempt's lines (the trainer flushes at each epoch end; closing flushes).
    """

    def __init__(self, storage: Storage) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self.storage = storage
        self._file = None
        self._earlier, self._lines = "", []
        if isinstance(storage, LocalStorage):
            self._file = (storage.root / LOG).open("a", encoding="utf-8")
        elif storage.exists(LOG):
            self._earlier = storage.read_text(LOG)

    def emit(self, record: logging.LogRecord) -> None:
        """Append one formatted record."""
        try:
            line = self.format(record) + "\n"
            if self._file is not None:
                self._file.write(line)
                self._file.flush()
            else:
                self._lines.append(line)
        except Exception:
            self.handleError(record)

    def note(self, level: int, message: str) -> None:
        """Write a line to train.log only (the console already shows it in other words)."""
        self.handle(
            logging.makeLogRecord(
                {
                    "name": "inat",
                    "levelno": level,
                    "levelname": logging.getLevelName(level),
                    "msg": message,
                }
            )
        )

    def flush(self) -> None:
        """Publish the lines so far (a no-op for a local file, which is always current)."""
        if self._file is not None:
            return
        with self.lock:
            text = self._earlier + "".join(self._lines)
        try:
            self.storage.write_text(LOG, text)
        except (InatError, OSError) as e:
            logging.getLogger(__name__).warning(
                "could not write %s/%s: %s", self.storage.uri, LOG, e
            )

    def close(self) -> None:
        """Flush, then release the file."""
        self.flush()
        if self._file is not None:
            self._file.close()
        super().close()


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
        """result.json, or None when there is none yet. DamagedFile when it is not a JSON
        object (a partial copy, a foreign write)."""
        if not self.storage.exists(RESULT):
            return None
        return read_file(
            self.storage,
            RESULT,
            "restore it from a copy, or delete it (training the run again resumes it from "
            "its checkpoints)",
            dict,
        )

    def status(self) -> Status | None:
        """The recorded status, or None when the run has not started (or is unreadable)."""
        try:
            result = self.result()
        except (DamagedFile, FileNotFoundError):
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
        """The recorded config (redacted), or None when the run has not started. DamagedFile
        when it is not a YAML mapping."""
        if not self.storage.exists(CONFIG):
            return None
        return read_file(
            self.storage,
            CONFIG,
            "restore it from a copy, or delete it (training the run again writes it anew)",
            dict,
        )

    def write_config(self, config: dict[str, Any]) -> None:
        """Record the run's resolved (and already redacted) config as config.yaml."""
        import yaml

        self.storage.write_text(CONFIG, yaml.safe_dump(config, sort_keys=False))

    def check_config(self, config: Mapping[str, Any], recorded: Mapping[str, Any] | None) -> None:
        """Raise ConfigError naming each compared key whose value differs between
        `recorded` (config.yaml's, see `config()`, or a checkpoint's) and `config`, the new
        run's resolved, redacted config. UNCOMPARED_KEYS are left out; None passes."""
        changes = config_changes(recorded, config) if recorded is not None else []
        if changes:
            raise ConfigError(
                f"{self.uri} holds a run with another config ({'; '.join(changes)}). Train it "
                "with the config it was started with, or into another run directory "
                "(name=... or output=...)."
            )

    # -- train.log
    @contextmanager
    def train_log(self, logger: str = "inat") -> Iterator[RunLog]:
        """Copy the records of `logger` (and its children) into train.log while inside."""
        handler = RunLog(self.storage)
        logging.getLogger(logger).addHandler(handler)
        try:
            yield handler
        finally:
            logging.getLogger(logger).removeHandler(handler)
            handler.close()

    def decisions(self) -> list[dict[str, Any]]:
        """The early-stop decisions recorded so far (see inat.sweeps.pruning); [] if none.
        DamagedFile when it is not a JSON list."""
        if not self.storage.exists(EARLY_STOP):
            return []
        return read_file(
            self.storage,
            EARLY_STOP,
            "restore it from a copy, or delete it (the point's earlier early-stop decisions "
            "are then forgotten)",
            list,
        )

    def write_decisions(self, decisions: list[dict[str, Any]]) -> None:
        """Record every early-stop decision of the run (rewritten whole, as metrics are)."""
        self.storage.write_json(EARLY_STOP, decisions)

    def metrics_text(self) -> str:
        """metrics.jsonl, one JSON object a line ("" when there is none yet). DamagedFile
        when it is not text; its lines are the reader's to judge."""
        try:
            return read_file(
                self.storage,
                METRICS,
                "restore it from a copy, or delete it (training the run again writes it "
                "anew from its checkpoints)",
            )
        except FileNotFoundError:
            return ""

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl from the whole history (object stores cannot append)."""
        self.storage.write_text(METRICS, "".join(json.dumps(row) + "\n" for row in history))

    def __repr__(self) -> str:
        return f"RunDir({self.uri!r})"


def read_manifest(sweep: Storage) -> dict[str, Any]:
    """sweep.json of the sweep folder `sweep`. DamagedFile when it is not a JSON object;
    FileNotFoundError when there is none."""
    return read_file(
        sweep,
        MANIFEST,
        "restore it from a copy, or delete it (`inat sweep JOB` writes it again)",
        dict,
    )


def sweep_points(sweep: Storage) -> list[dict[str, Any]]:
    """The points of the sweep in `sweep` so far, by index: the manifest's, or an adaptive
    sweep's claims (each with index, name, swept and overrides, as in the manifest).
    DamagedFile when the manifest or a claim is."""
    manifest = read_manifest(sweep)
    if not manifest.get("adaptive"):
        return manifest["points"]
    names = sorted(n for n in sweep.list(f"{CLAIMS}/") if _CLAIM.fullmatch(n))
    advice = (
        "restore it from a copy (it records which point a worker took; the sweep's "
        "workers need every claim to go on)"
    )
    return [read_file(sweep, name, advice, dict) for name in names]

"""Checkpoints in a run directory, published so that a reader never sees a torn one.

Each checkpoint is written under a new folder (`step-0000120/state.pt`), verified,
and only then named by the small pointer object `latest.json` (and `best.json`
when it is the best so far). Older folders are deleted after the pointers moved,
keeping the `keep` most recent and the best.

A checkpoint holds tensors and plain data only (dicts, lists, tuples, numbers, strings,
None), so it is read with `torch.load(weights_only=True)`: a file from a shared bucket
that holds any other object is refused before anything in it runs.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import pickle
import random
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inat.errors import ExitCode, InatError, TransientError
from inat.storage import Storage

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"
LATEST = "latest.json"
BEST = "best.json"
DIGEST = "digest.json"  # in each checkpoint folder: the state file's size and sha256
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # a full disk, a quota, a file limit
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")  # how torch's weights-only unpickler names a refused one


class DamagedCheckpoint(InatError):
    """A checkpoint file is missing, truncated or changed since it was saved."""

    exit_code = ExitCode.BAD_INPUT


class CheckpointsDamaged(InatError):
    """A run directory holds checkpoints, but none of them is intact."""

    exit_code = ExitCode.BAD_INPUT


class UnsafeCheckpoint(InatError):
    """A checkpoint holds objects other than tensors and plain data: loading it could run
    code, so it was refused unread."""

    exit_code = ExitCode.BAD_INPUT


def rng_state() -> dict[str, Any]:
    """The state of every random number generator the training loop draws from, as tensors
    and plain data (numpy's key as an int64 tensor), so that a weights-only load reads it."""
    numpy = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(numpy["state"]["key"].astype(np.int64)),
            "pos": int(numpy["state"]["pos"]),
            "has_gauss": int(numpy["has_gauss"]),
            "gauss": float(numpy["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by `rng_state`."""
    random.setstate(state["python"])
    numpy = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": numpy["key"].numpy().astype(np.uint32), "pos": numpy["pos"]},
            "has_gauss": numpy["has_gauss"],
            "gauss": numpy["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointManager:
    """Saves, publishes, prunes and loads the checkpoints of one run."""

    def __init__(self, storage: Storage, keep: int = 2) -> None:
        self.storage = storage
        self.keep = max(1, keep)

    def save(self, state: dict[str, Any], step: int, is_best: bool) -> str:
        """Write `state` as checkpoint `step`, then point `latest` (and `best`) at it."""
        folder = f"step-{step:07d}"
        relpath = f"{folder}/{STATE_FILE}"
        log.info("saving checkpoint %s/%s (epoch %d)", self.storage.uri, folder, state["epoch"])
        # Serialised in memory first: a full disk then shows as an OSError naming the cause.
        buffer = io.BytesIO()
        torch.save(state, buffer)
        try:
            with tempfile.TemporaryDirectory(prefix="inat-ckpt-") as tmp:
                local = Path(tmp) / STATE_FILE
                local.write_bytes(buffer.getbuffer())
                self.storage.upload_file(local, relpath)
        except OSError as e:
            if e.errno not in _NO_SPACE:
                raise
            self.storage.delete(relpath)
            raise TransientError(
                f"no space to write checkpoint {self.storage.uri}/{relpath} ({e.strerror}); "
                "the previous checkpoint is kept. Free space in the output and in TMPDIR, "
                "or point output= and TMPDIR elsewhere, then run again to resume."
            ) from e
        if self.storage.size(relpath) != buffer.getbuffer().nbytes:
            raise OSError(f"checkpoint {self.storage.uri}/{relpath} is incomplete after upload")
        pointer = {
            "path": relpath,
            "step": step,
            "epoch": state["epoch"],
            "bytes": buffer.getbuffer().nbytes,
            "sha256": hashlib.sha256(buffer.getbuffer()).hexdigest(),
        }
        # The folder's own record of its content: what a fallback past a damaged pointer checks.
        self.storage.write_json(f"{folder}/{DIGEST}", pointer)
        if is_best:
            self.storage.write_json(BEST, pointer)
        self.storage.write_json(LATEST, pointer)
        self._prune()
        return relpath

    def latest(self) -> dict[str, Any] | None:
        """The pointer to the newest complete checkpoint, or None."""
        return self._pointer(LATEST)

    def best(self) -> dict[str, Any] | None:
        """The pointer to the best checkpoint, or None."""
        return self._pointer(BEST)

    def load(self, pointer: dict[str, Any]) -> dict[str, Any]:
        """The state a pointer names, loaded on the CPU with `weights_only=True`.

        A pointer with a content hash (what `save` records) is verified first: DamagedCheckpoint
        if the file is missing, truncated or changed. Raises UnsafeCheckpoint (nothing in the
        file is run) when it holds other objects.
        """
        try:
            data = self.storage.read_bytes(pointer["path"])
        except FileNotFoundError:
            raise DamagedCheckpoint(f"{pointer['path']} is missing") from None
        if "sha256" in pointer and hashlib.sha256(data).hexdigest() != pointer["sha256"]:
            raise DamagedCheckpoint(
                f"{pointer['path']} holds {len(data)} bytes that are not the "
                f"{pointer.get('bytes', '?')} saved (truncated or changed)"
            )
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            unsafe = _unsafe_globals(data, str(e))
            if not unsafe:
                raise  # not a checkpoint at all: a torn or foreign file
            raise UnsafeCheckpoint(
                f"refused to load the checkpoint {self.storage.uri}/{pointer['path']}: it holds "
                f"objects other than tensors and plain data ({', '.join(unsafe)}), which could "
                "run code when loaded, so it may be unsafe; nothing in it was run. Use a "
                "checkpoint written by this version of inat (older ones kept numpy's random "
                "state as a numpy array), or, only if you trust where the file came from, "
                "load it yourself and save it again with tensors and plain data only."
            ) from None

    def latest_intact(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The newest checkpoint that is intact, as (pointer, state); None when there is none.

        latest.json first, then every checkpoint folder, newest first, each verified against
        the content hash recorded when it was saved; what was skipped is logged as a warning.
        Raises CheckpointsDamaged (exit 65) when checkpoints exist but none is intact.
        """
        skipped: list[str] = []
        for candidate in self._candidates():
            if isinstance(candidate, str):
                skipped.append(candidate)
                continue
            try:
                state = self.load(candidate)
            except DamagedCheckpoint as e:
                skipped.append(str(e))
                continue
            if skipped:
                log.warning(
                    "%s: skipped what is damaged (%s); resuming from %s",
                    self.storage.uri,
                    "; ".join(skipped),
                    candidate["path"],
                )
            return candidate, state
        if skipped:
            raise CheckpointsDamaged(
                f"no intact checkpoint in {self.storage.uri}: {'; '.join(skipped)}. To start "
                f"the run over, delete {self.storage.uri} (or train into another run "
                "directory with name=...); to keep it, restore a checkpoint from a copy."
            )
        return None

    def best_intact(self) -> dict[str, Any]:
        """The best checkpoint's state; the newest intact one if best.json or its file is
        damaged (with a warning)."""
        try:
            pointer = self.best()
            if pointer is not None:
                return self.load(pointer)
        except (DamagedCheckpoint, ValueError, KeyError, TypeError) as e:
            log.warning("%s: the best checkpoint is damaged (%s)", self.storage.uri, e)
        found = self.latest_intact()
        if found is None:
            raise CheckpointsDamaged(f"no checkpoint to test in {self.storage.uri}")
        log.warning("testing the newest intact checkpoint, %s, instead", found[0]["path"])
        return found[1]

    def _candidates(self) -> Iterator[dict[str, Any] | str]:
        """latest.json's pointer, then each folder's digest, newest first; a string says
        why a candidate cannot be one."""
        try:
            latest = self.latest()
        except (ValueError, UnicodeDecodeError):
            latest = {}
        if latest is not None and not (isinstance(latest, dict) and "path" in latest):
            yield f"{LATEST} is not a pointer (empty or garbage)"
        elif latest is not None:
            yield latest
        folders = sorted({p.split("/")[0] for p in self.storage.list() if "/" in p}, reverse=True)
        for folder in folders:
            try:
                digest = self.storage.read_json(f"{folder}/{DIGEST}")
            except FileNotFoundError:
                yield f"{folder} has no {DIGEST} (an unfinished save)"
                continue
            except (ValueError, UnicodeDecodeError):
                yield f"{folder}/{DIGEST} is damaged"
                continue
            if latest is None or digest.get("path") != latest.get("path"):
                yield digest

    def _pointer(self, name: str) -> dict[str, Any] | None:
        if not self.storage.exists(name):
            return None
        return self.storage.read_json(name)

    def _prune(self) -> None:
        protected = {p["path"].split("/")[0] for p in (self.latest(), self.best()) if p}
        folders = sorted({path.split("/")[0] for path in self.storage.list() if "/" in path})
        for folder in folders[: -self.keep]:
            if folder not in protected:
                log.debug("deleting old checkpoint %s", folder)
                self.storage.delete_prefix(folder)


def _unsafe_globals(data: bytes, error: str) -> list[str]:
    """The classes and functions a checkpoint refers to beyond weights-only's allowed ones,
    read without running anything: from the zip checkpoint itself, else from torch's error
    (an old, non-zip checkpoint)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(data)))
    except Exception:  # not a zip checkpoint, or a torn one
        return _GLOBAL.findall(error)

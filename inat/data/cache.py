"""The local data cache: one folder per source, built once per node, safe for concurrent jobs.

<cache_dir>/<key>/                a finished entry (holds MARKER, written before it is renamed
                                  in place)
<cache_dir>/<key>.lock            the lock that serializes building <key>
<cache_dir>/.<key>.tmp-<random>   an entry being built (removed if its builder died)
<cache_dir>/downloads/            archives being downloaded (kept across crashes so downloads
                                  resume)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import platformdirs
from filelock import FileLock, Timeout

from inat.errors import DataError
from inat.storage import atomic_folder

log = logging.getLogger(__name__)

MARKER = ".inat-complete"


def default_cache_dir() -> Path:
    """$SLURM_TMPDIR/inat or $TMPDIR/inat (node-local scratch) when set, else the user cache dir."""
    for var in ("SLURM_TMPDIR", "TMPDIR"):
        if value := os.environ.get(var):
            return Path(value) / "inat"
    return Path(platformdirs.user_cache_dir("inat"))


def cache_folder(setting: str | Path | None) -> Path:
    """The cache folder that data.cache_dir names: default_cache_dir() when it is null."""
    return Path(setting).expanduser() if setting else default_cache_dir()


def cache_key(kind: str, name: str, identity: str) -> str:
    """A folder name for a source: readable `kind` and `name`, plus a hash of its `identity`."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "data"
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    return f"{kind}-{readable}-{digest}"


def cached_entry(cache_dir: Path, key: str, build: Callable[[Path], None], source: str) -> Path:
    """The folder `cache_dir/key`, built first by `build(tmp_dir)` unless a finished one exists.

    Processes sharing `cache_dir` take turns through a file lock, and an entry
    only appears (by an atomic rename) once `build` returned, so no process ever
    sees a half-built tree. A failed or killed build leaves nothing that counts.
    """
    target = cache_dir / key
    if (target / MARKER).is_file():
        log.info("using cached %s in %s", source, target)
        mark_used(target)
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with _locked(cache_dir / f"{key}.lock", target):
            if (target / MARKER).is_file():
                log.info("using %s, prepared by another process, in %s", source, target)
                mark_used(target)
                return target
            _remove_leftovers(cache_dir, key)

            def build_and_mark(tmp: Path) -> None:
                build(tmp)
                marker = {"source": source, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
                (tmp / MARKER).write_text(json.dumps(marker) + "\n")

            atomic_folder(target, build_and_mark)
    except OSError as e:
        raise DataError(
            f"cannot prepare {source} in the cache folder {cache_dir}: {e}. "
            "Check its free space and permissions, or choose another folder with "
            "data.cache_dir=PATH (inat data download: --cache-dir PATH)."
        ) from e
    log.info("prepared %s in %s", source, target)
    return target


def mark_used(entry: Path) -> None:
    """Record that `entry` is used now: its marker's modification time is its last use
    (what `inat data list` shows and `inat data clean --older-than` goes by)."""
    with suppress(OSError):  # a read-only cache is still usable
        os.utime(entry / MARKER)


@contextmanager
def _locked(path: Path, target: Path) -> Iterator[None]:
    """Hold the lock at `path`, saying so when another process has it."""
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process to finish preparing %s", target)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _remove_leftovers(cache_dir: Path, key: str) -> None:
    """Remove what a builder that died left behind (only called while holding the lock)."""
    for stale in [*cache_dir.glob(f".{key}.tmp-*"), cache_dir / key]:
        if stale.is_dir():
            log.warning("removing %s, left unfinished by an earlier process", stale)
            shutil.rmtree(stale)

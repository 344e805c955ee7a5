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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import platformdirs
from filelock import FileLock, Timeout

from inat.errors import ConfigError, DataError
from inat.progress import byte_size
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


# -- what the cache holds: `inat data list` and `inat data clean`

DOWNLOADS = "downloads"
_TMP = ".tmp-"  # .<key>.tmp-<random>: a folder being built, or being removed


@dataclass
class Entry:
    """Something in the cache that takes space, and the key whose lock guards it."""

    path: Path
    key: str
    kind: str  # the key's kind (zip, url, s3, synthetic, prepared), "download" or "unfinished"
    source: str  # what it holds, as its marker says
    size: int  # bytes on disk
    last_used: float  # seconds since the epoch: the marker's (or the file's) modification time

    def lock(self, cache_dir: Path) -> FileLock:
        """The lock that builders of this entry's key hold."""
        return FileLock(cache_dir / f"{self.key}.lock")

    def record(self, cache_dir: Path) -> dict[str, Any]:
        """The entry as plain data (for --json), with whether another process holds its lock."""
        used = datetime.fromtimestamp(self.last_used).astimezone().isoformat(timespec="seconds")
        return {
            "key": self.key,
            "kind": self.kind,
            "source": self.source,
            "bytes": self.size,
            "last_used": used,
            "path": str(self.path),
            "locked": _held(self.lock(cache_dir)),
        }


def _disk_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


def _complete(folder: Path) -> Entry:
    marker = folder / MARKER
    try:
        source = json.loads(marker.read_text()).get("source", "?")
    except (OSError, ValueError):
        source = "?"
    kind = folder.name.split("-", 1)[0]
    return Entry(folder, folder.name, kind, source, _disk_size(folder), marker.stat().st_mtime)


def _leftover(path: Path, key: str, kind: str, what: str) -> Entry:
    return Entry(path, key, kind, f"{what} of {key}", _disk_size(path), path.stat().st_mtime)


def entries(cache_dir: Path) -> list[Entry]:
    """What `cache_dir` holds: finished entries, unfinished builds and downloads, most
    recently used first."""
    found = []
    folders = sorted(cache_dir.iterdir()) if cache_dir.is_dir() else []
    for path in folders:
        if (path / MARKER).is_file():
            found.append(_complete(path))
        elif path.is_dir() and path.name.startswith(".") and _TMP in path.name:
            key = path.name[1:].split(_TMP, 1)[0]
            found.append(_leftover(path, key, "unfinished", "an unfinished build"))
    downloads = cache_dir / DOWNLOADS
    for path in sorted(downloads.iterdir()) if downloads.is_dir() else []:
        key = path.name.removesuffix(".part").removesuffix(".zip")
        found.append(_leftover(path, key, "download", "a download"))
    return sorted(found, key=lambda e: -e.last_used)


def _held(lock: FileLock) -> bool:
    """Whether another process holds `lock` now."""
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


@dataclass
class Cleaned:
    """What `clean` did: the entries it removed and those it left because of their locks."""

    removed: list[Entry]
    held: list[Entry]

    @property
    def freed(self) -> int:
        """Bytes freed."""
        return sum(e.size for e in self.removed)


def clean(cache_dir: Path, older_than_days: float | None) -> Cleaned:
    """Remove what `cache_dir` holds that was last used more than `older_than_days` ago
    (None: everything), except entries whose lock another process holds (it builds them).

    A finished entry is first renamed out of the way, so that it is gone at once, then
    deleted; a build that finds the renamed folder (after a crash) removes it.
    """
    if older_than_days is not None and older_than_days < 0:
        raise ConfigError(f"--older-than {older_than_days:g} is not allowed: use a number >= 0")
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    cleaned = Cleaned([], [])
    for entry in entries(cache_dir):
        if cutoff is not None and entry.last_used >= cutoff:
            continue
        lock = entry.lock(cache_dir)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            cleaned.held.append(entry)
            continue
        try:
            _remove(entry.path, cache_dir)
        finally:
            lock.release()
        cleaned.removed.append(entry)
    return cleaned


def _remove(path: Path, cache_dir: Path) -> None:
    if path.is_file():
        path.unlink()
        return
    if not path.name.startswith("."):
        doomed = cache_dir / f".{path.name}{_TMP}removing-{os.getpid()}"
        os.rename(path, doomed)
        path = doomed
    shutil.rmtree(path)


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _when(entry: Entry) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))


def list_report(cache_dir: Path, found: list[Entry]) -> str:
    """`inat data list`: a line per entry (key, kind, size, last use, source) under a total."""
    total = sum(e.size for e in found)
    header = f"{cache_dir}: {_entries(len(found))}, {byte_size(total)}"
    if not found:
        return header
    rows = [("entry", "kind", "size", "last used", "source")]
    rows += [(e.key, e.kind, byte_size(e.size), _when(e), e.source) for e in found]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[4]
        for row in rows
    ]
    return "\n".join([header, "", *lines])


def clean_report(cache_dir: Path, cleaned: Cleaned) -> str:
    """`inat data clean`: a line per entry removed or kept for its lock, then what was freed."""
    lines = [
        f"removed {e.path} ({byte_size(e.size)}, last used {_when(e)})" for e in cleaned.removed
    ]
    lines += [
        f"kept {e.path}: another process holds {cache_dir / (e.key + '.lock')} (it is building it)"
        for e in cleaned.held
    ]
    lines.append(
        f"freed {byte_size(cleaned.freed)} in {cache_dir} ({_entries(len(cleaned.removed))})"
    )
    return "\n".join(lines)

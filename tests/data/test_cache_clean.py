"""`inat data list` and `inat data clean`: what the cache holds, and removing it, never an
entry whose lock another process holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inat.cli import main
from inat.data.cache import MARKER, cached_entry
from inat.progress import byte_size

DAY = 86400


def _entry(cache: Path, key: str, nbytes: int, days_ago: float = 0) -> Path:
    """A finished entry holding `nbytes` bytes, last used `days_ago` days ago."""

    def build(tmp: Path) -> None:
        (tmp / "train").mkdir()
        (tmp / "train" / "x.bin").write_bytes(b"x" * nbytes)

    entry = cached_entry(cache, key, build, f"source of {key}")
    used = time.time() - days_ago * DAY
    os.utime(entry / MARKER, (used, used))
    return entry


def _listed(cache: Path, capsys) -> dict[str, dict]:
    assert main(["data", "list", "--cache-dir", str(cache), "--json"]) == 0
    return {record["key"]: record for record in json.loads(capsys.readouterr().out)}


def test_list_shows_each_entry_with_its_source_size_and_last_use(tmp_path, capsys):
    _entry(tmp_path, "zip-old-1", 3000, days_ago=10)
    _entry(tmp_path, "synthetic-new-2", 1000)
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "url-nature_12K-3.zip.part").write_bytes(b"y" * 500)

    listed = _listed(tmp_path, capsys)

    assert list(listed) == ["url-nature_12K-3", "synthetic-new-2", "zip-old-1"]  # newest first
    old = listed["zip-old-1"]
    assert (old["kind"], old["source"], old["locked"]) == ("zip", "source of zip-old-1", False)
    assert old["bytes"] >= 3000 and listed["synthetic-new-2"]["bytes"] < 3000
    assert listed["url-nature_12K-3"]["kind"] == "download"
    assert listed["url-nature_12K-3"]["bytes"] == 500
    assert main(["data", "list", "--cache-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{tmp_path}: 3 entries, ")
    assert "zip-old-1" in text and "source of zip-old-1" in text


def test_a_cache_hit_counts_as_a_use(tmp_path):
    entry = _entry(tmp_path, "zip-a-1", 10, days_ago=10)
    cached_entry(tmp_path, "zip-a-1", lambda tmp: None, "again")
    assert time.time() - (entry / MARKER).stat().st_mtime < DAY


def test_clean_older_than_removes_only_entries_unused_for_that_long(tmp_path, capsys):
    old = _entry(tmp_path, "zip-old-1", 3000, days_ago=10)
    _entry(tmp_path, "zip-new-2", 1000, days_ago=1)
    size = _listed(tmp_path, capsys)["zip-old-1"]["bytes"]

    assert main(["data", "clean", "--older-than", "5", "--cache-dir", str(tmp_path)]) == 0

    out = capsys.readouterr().out
    assert f"removed {old} ({byte_size(size)}, last used " in out
    assert f"freed {byte_size(size)} in {tmp_path} (1 entry)" in out
    assert not old.exists()
    assert list(_listed(tmp_path, capsys)) == ["zip-new-2"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # nothing half-removed


def test_clean_all_keeps_an_entry_another_process_holds_the_lock_of(tmp_path, capsys):
    kept = _entry(tmp_path, "zip-busy-1", 1000)
    freed = _entry(tmp_path, "zip-idle-2", 2_000_000)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from filelock import FileLock\n"
            f"lock = FileLock({str(tmp_path / 'zip-busy-1.lock')!r}); lock.acquire()\n"
            "print('holding', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert _listed(tmp_path, capsys)["zip-busy-1"]["locked"] is True

        assert main(["data", "clean", "--all", "--cache-dir", str(tmp_path)]) == 0
        out = capsys.readouterr().out
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)

    assert f"kept {kept}: another process holds {tmp_path / 'zip-busy-1.lock'}" in out
    assert f"removed {freed} (2.0 MB" in out
    assert f"freed 2.0 MB in {tmp_path} (1 entry)" in out
    assert (kept / "train" / "x.bin").stat().st_size == 1000 and not freed.exists()
    # Once the holder is gone, the entry can go too.
    assert main(["data", "clean", "--all", "--cache-dir", str(tmp_path)]) == 0
    assert f"removed {kept} " in capsys.readouterr().out
    assert not kept.exists()
    assert _listed(tmp_path, capsys) == {}


def test_a_negative_age_is_refused(tmp_path, caplog):
    assert main(["data", "clean", "--older-than", "-1", "--cache-dir", str(tmp_path)]) == 65
    assert "--older-than -1 is not allowed: use a number >= 0" in caplog.text


def test_clean_says_what_to_remove(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["data", "clean", "--cache-dir", str(tmp_path)])
    assert "one of the arguments --older-than --all is required" in capsys.readouterr().err

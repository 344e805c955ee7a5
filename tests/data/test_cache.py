"""The local cache: default location, build once, no half-built entries, concurrent processes."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import platformdirs
import pytest

from inat.data.cache import MARKER, cache_key, cached_entry, default_cache_dir
from inat.errors import DataError


def test_default_cache_dir_prefers_node_local_scratch(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SLURM_TMPDIR", str(tmp_path / "slurm"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    assert default_cache_dir() == tmp_path / "slurm" / "inat"
    monkeypatch.delenv("SLURM_TMPDIR")
    assert default_cache_dir() == tmp_path / "tmp" / "inat"
    monkeypatch.delenv("TMPDIR")
    assert default_cache_dir() == Path(platformdirs.user_cache_dir("inat"))


def test_cache_keys_are_readable_and_differ_by_identity() -> None:
    a = cache_key("url", "nature 12K", "https://a/nature_12K.zip")
    assert a.startswith("url-nature_12K-")
    assert a != cache_key("url", "nature 12K", "https://b/nature_12K.zip")


def _build_counting(calls: list[Path]):
    def build(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "train").mkdir()
        (tmp / "train" / "x.txt").write_text("x")

    return build


def test_an_entry_is_built_once_then_reused(tmp_path: Path) -> None:
    calls: list[Path] = []
    first = cached_entry(tmp_path, "k", _build_counting(calls), "src")
    second = cached_entry(tmp_path, "k", _build_counting(calls), "src")
    assert first == second == tmp_path / "k"
    assert len(calls) == 1
    assert (first / "train" / "x.txt").read_text() == "x"
    assert (first / MARKER).is_file()
    assert calls[0] != first  # built elsewhere, then moved in place


def test_a_failed_build_leaves_nothing_and_the_next_call_builds_again(tmp_path: Path) -> None:
    def fail(tmp: Path) -> None:
        (tmp / "train").mkdir()
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        cached_entry(tmp_path, "k", fail, "src")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.lock"]
    calls: list[Path] = []
    assert (cached_entry(tmp_path, "k", _build_counting(calls), "src") / MARKER).is_file()
    assert len(calls) == 1


def test_leftovers_of_a_killed_build_are_replaced(tmp_path: Path) -> None:
    (tmp_path / "k" / "train").mkdir(parents=True)  # no marker: never finished
    (tmp_path / "k" / "train" / "half.jpg").write_text("")
    (tmp_path / ".k.tmp-dead").mkdir()
    calls: list[Path] = []
    entry = cached_entry(tmp_path, "k", _build_counting(calls), "src")
    assert len(calls) == 1
    assert sorted(p.name for p in (entry / "train").iterdir()) == ["x.txt"]
    assert not (tmp_path / ".k.tmp-dead").exists()


def test_an_unwritable_cache_dir_is_a_data_error_naming_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DataError, match=r"data\.cache_dir=PATH"):
        cached_entry(blocker / "cache", "k", _build_counting([]), "src")


def _race(cache: str, log: str, barrier, results) -> None:
    def build(tmp: Path) -> None:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        for i in range(200):  # long enough for the others to pile up at the lock
            (tmp / f"{i}.txt").write_text(str(i))

    barrier.wait()
    try:
        entry = cached_entry(Path(cache), "k", build, "src")
        results.put((str(entry), len(list(entry.glob("*.txt"))), (entry / MARKER).is_file()))
    except Exception as e:
        results.put(repr(e))


def test_concurrent_processes_build_once_and_all_see_the_whole_entry(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    n = 4
    barrier = context.Barrier(n)
    results = context.Queue()
    log = tmp_path / "builds.log"
    workers = [
        context.Process(target=_race, args=(str(tmp_path / "cache"), str(log), barrier, results))
        for _ in range(n)
    ]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=60) for _ in range(n)]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert len(log.read_text().split()) == 1
    assert outcomes == [(str(tmp_path / "cache" / "k"), 200, True)] * n

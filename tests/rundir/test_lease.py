"""Leases on run directories, on local disk and a real S3 server: one holder at a time, a
stale holder taken over, a taken-over holder stopped, racing takers with one winner."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from inat.errors import ExitCode
from inat.lease import Lease, LeaseHeld, LeaseLost
from inat.storage import LocalStorage, Storage
from inat.storage.s3 import S3Storage

TEXT = {"capture_output": True, "text": True, "check": True}


@pytest.fixture(params=["local", "s3"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """An empty run directory: a local folder, or a prefix in a fresh bucket."""
    if request.param == "local":
        return LocalStorage(tmp_path / "run")
    return S3Storage(f"s3://{request.getfixturevalue('s3_bucket')}/runs/point")


def _until(condition, timeout: float = 10.0) -> None:
    """Wait for `condition()` to hold, checking often; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_live_lease_is_refused_to_another_holder_with_exit_75(run: Storage) -> None:
    first = Lease(run, "worker-0")
    first.acquire()
    with pytest.raises(LeaseHeld, match="being trained by worker-0") as refused:
        Lease(run, "worker-1").acquire()
    assert refused.value.exit_code == ExitCode.RETRY
    assert run.list("leases") == ["leases/0000.json"]


def test_a_released_lease_is_taken_at_once(run: Storage) -> None:
    first = Lease(run, "worker-0")
    first.acquire()
    first.release()
    second = Lease(run, "worker-1")
    second.acquire()
    assert second.generation == 1
    assert run.read_json("leases/0000.json")["released"] is True


def test_a_stale_lease_is_taken_over_and_its_holder_stops(run: Storage, caplog) -> None:
    dead = Lease(run, "worker-0", timeout_s=0.2)
    dead.acquire()
    _until(lambda: not Lease.is_live(run.read_json("leases/0000.json")))
    taker = Lease(run, "worker-1")
    taker.acquire()
    assert taker.generation == 1
    assert "taking over" in caplog.text and "worker-0" in caplog.text
    with pytest.raises(LeaseLost, match="taken over"):
        dead.check()
    with pytest.raises(LeaseLost):
        dead.renew()
    dead.release()  # leaves the new holder's lease alone
    assert Lease.is_live(run.read_json("leases/0001.json"))


def test_a_held_lease_is_renewed_in_the_background_and_released(run: Storage) -> None:
    lease = Lease(run, "worker-0", timeout_s=0.3)
    with lease.held():
        first = run.read_json("leases/0000.json")["heartbeat_at"]
        _until(lambda: run.read_json("leases/0000.json")["heartbeat_at"] != first)
        with pytest.raises(LeaseHeld):
            Lease(run, "worker-1").acquire()  # still live: renewed within its timeout
    assert run.read_json("leases/0000.json")["released"] is True


def test_exactly_one_of_racing_takers_gets_the_lease(tmp_path: Path) -> None:
    run = LocalStorage(tmp_path / "run")
    start = threading.Barrier(8)

    def take(worker: int) -> bool:
        start.wait()
        try:
            Lease(run, f"worker-{worker}").acquire()
        except LeaseHeld:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(take, range(8))) == 1
    assert run.list("leases") == ["leases/0000.json"]


def test_a_lease_whose_holder_died_on_this_machine_is_taken_at_once(tmp_path: Path) -> None:
    run = LocalStorage(tmp_path / "run")
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **TEXT)
    dead = Lease(run, "worker-0", timeout_s=3600)
    dead.acquire()
    record = run.read_json("leases/0000.json")
    assert Lease.is_live(record)
    run.write_json("leases/0000.json", {**record, "pid": int(child.stdout)})  # as if killed
    taker = Lease(run, "worker-1")
    taker.acquire()
    assert taker.generation == 1

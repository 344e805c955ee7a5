"""Claims of an adaptive sweep without training: racing workers take each index once, with
values the sampler suggests; which claimed points wait for a worker."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers.runs import run_inat

from inat.lease import Lease
from inat.rundir import RunDir, Status
from inat.storage.local import LocalStorage
from inat.sweeps.claims import Claim, is_free, read_claims, take
from inat.sweeps.run import write_manifest
from inat.sweeps.search import parse_search
from inat.sweeps.worker import gpu_env, task_workers, tasks

JOB = {
    "name": "claims",
    "overrides": [],
    "sweep": {
        "method": "bayes",
        "run_cap": 24,
        "parallelism": 8,
        "parameters": {
            "optimizer.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
            "model.dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
            "model.activation": {"values": ["relu", "gelu"]},
        },
    },
}


def _sweep(tmp_path: Path) -> LocalStorage:
    storage = LocalStorage(tmp_path / "claims")
    write_manifest(storage, JOB, [])
    return storage


def test_racing_workers_take_each_index_once_with_distinct_values(tmp_path: Path) -> None:
    storage = _sweep(tmp_path)
    search = parse_search("claims", JOB["sweep"])

    def worker(name: str) -> list[int]:
        taken = []
        while (claim := take(storage, JOB, search, name, 600)) is not None:
            taken.append(claim.point.index)
        return taken

    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(worker, [str(w) for w in range(8)]))
    indices = sorted(i for worker_taken in taken for i in worker_taken)
    assert indices == list(range(24))  # every index once: no worker took one twice
    claims = read_claims(storage)
    assert [c.point.index for c in claims] == list(range(24))
    assert len({tuple(sorted(c.params.items())) for c in claims}) == 24
    assert len({c.point.name for c in claims}) == 24
    for claim in claims:  # the overrides say what the sampler drew
        lr = next(o for o in claim.point.swept if o.startswith("optimizer.lr="))
        assert float(lr.split("=")[1]) == claim.params["optimizer.lr"]
    assert take(storage, JOB, search, "late", 600) is None  # run_cap reached


def _claim(storage: LocalStorage, age_s: float, timeout_s: float = 60) -> Claim:
    search = parse_search("claims", JOB["sweep"])
    claim = take(storage, JOB, search, "w", timeout_s)
    assert claim is not None
    claimed_at = datetime.now(timezone.utc) - timedelta(seconds=age_s)
    data = {**claim.as_dict(), "claimed_at": claimed_at.isoformat()}
    path = storage.root / f"claims/{claim.point.index:04d}.json"
    path.write_text(json.dumps(data))
    return Claim.from_dict(data)


def test_a_claim_waits_for_a_worker_only_when_no_live_process_holds_it(tmp_path: Path) -> None:
    storage = _sweep(tmp_path)
    fresh = _claim(storage, age_s=0)
    assert not is_free(storage, fresh)  # its claimant is about to take the lease
    # ... unless its claimant starts again: it was stopped while it set the point up
    assert is_free(storage, fresh, fresh.worker)
    stale = _claim(storage, age_s=120)
    assert is_free(storage, stale)  # claimed, never started: its claimant died
    run = storage.child(fresh.point.name)
    lease = Lease(run, "holder", timeout_s=60)
    lease.acquire()
    assert not is_free(storage, fresh)  # trained by a live process
    RunDir(run).mark(Status.INTERRUPTED)
    lease.release()
    assert is_free(storage, fresh)  # interrupted, lease released: resume it
    RunDir(run).mark(Status.DONE)
    assert not is_free(storage, fresh)


def test_a_lease_held_by_a_process_that_died_frees_its_point_at_once(tmp_path: Path) -> None:
    storage = _sweep(tmp_path)
    claim = _claim(storage, age_s=0)
    run = storage.child(claim.point.name)
    # A real process takes the lease and is killed with -9: it never releases it.
    code = (
        "import sys, os, signal; from inat.lease import Lease; from inat.storage.local import "
        "LocalStorage; Lease(LocalStorage(sys.argv[1]), 'doomed', 600).acquire(); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    subprocess.run([sys.executable, "-c", code, str(run.root)], check=False)
    newest = Lease(run, "x").newest()
    assert newest is not None and not newest[1]["released"]
    assert is_free(storage, claim)


def test_tasks_group_workers_by_gpu() -> None:
    search = parse_search("x", {**JOB["sweep"], "parallelism": 5, "workers_per_gpu": 2})
    assert tasks(search) == 3
    assert [task_workers(search, t) for t in range(3)] == [["0", "1"], ["2", "3"], ["4"]]
    with pytest.raises(Exception, match="--task 3 is out of range"):
        task_workers(search, 3)


def test_a_bayes_job_with_a_value_that_is_not_allowed_fails_before_any_worker(
    tmp_path: Path,
) -> None:
    job = {
        **JOB,
        "sweep": {
            **JOB["sweep"],
            "parameters": {"model.activation": {"values": ["relu", "tanhh"]}},
        },
    }
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps({"job": job}))
    done = run_inat(tmp_path, "sweep", str(path), f"output={tmp_path}/out")
    assert done.returncode == 65, done.stderr
    assert "model.activation" in done.stderr and "tanhh" in done.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("claims"))


def test_local_workers_share_the_visible_gpus_workers_per_gpu_to_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    search = parse_search("x", {**JOB["sweep"], "parallelism": 4, "workers_per_gpu": 2})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    gpus = [gpu_env(position, search)["CUDA_VISIBLE_DEVICES"] for position in range(4)]
    assert gpus == ["3", "3", "5", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # one GPU: every worker shares it
    assert gpu_env(3, search)["CUDA_VISIBLE_DEVICES"] == "0"

"""Adaptive sweeps for real: workers in their own processes take tiny points of a bayes
sweep, on the local file system and on the S3 server, two of them killed with -9 mid-point
and started again (three workers; eight in the soak tier); one worker replays its
suggestions; weak points stop early."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import boto3
import pytest
import yaml
from helpers.runs import TINY_DATA, TINY_MODEL, inat_command, location, run_inat
from helpers.slurm import wait_for
from s3server import S3Server

from inat.rundir import Status
from inat.storage import Storage, open_storage
from inat.sweeps.claims import read_claims, records
from inat.sweeps.search import parse_search
from inat.sweeps.study import build_study, suggest

pytestmark = pytest.mark.slow

EPOCHS, MIN_ITER, ETA = 3, 1, 3
POINT = [
    *TINY_DATA,
    *TINY_MODEL,
    "data.synthetic.train_per_class=20",
    "model.batch_norm=true",
    "optimizer=adam",
    "scheduler=constant",
    f"trainer.epochs={EPOCHS}",
]


def _job(tmp_path: Path, name: str, run_cap: int, parallelism: int) -> tuple[Path, dict]:
    """A bayes job whose learning rate range reaches 1.0, where the tiny CNN cannot learn."""
    job = {
        "name": name,
        "overrides": POINT,
        "sweep": {
            "method": "bayes",
            "run_cap": run_cap,
            "parallelism": parallelism,
            "seed": 3,
            "early_terminate": {"type": "hyperband", "min_iter": MIN_ITER, "eta": ETA},
            "parameters": {
                "optimizer.lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1.0},
                "model.dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
            },
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"job": job}))
    return path, job


def _start(
    tmp_path: Path, job_file: Path, worker: str, out: list[str], env: dict
) -> subprocess.Popen:
    log = open(tmp_path / f"worker-{worker}.log", "a")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        inat_command("sweep", str(job_file), "--worker", worker, *out),
        cwd=tmp_path,
        env={**os.environ, "WANDB_MODE": "disabled", **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _holder_pid(sweep: Storage, name: str) -> int | None:
    """The pid holding the lease of point `name`, if one holds it now."""
    leases = sorted(sweep.child(f"{name}/leases").list())
    if not leases:
        return None
    record = sweep.child(f"{name}/leases").read_json(leases[-1])
    return None if record["released"] else record["pid"]


def _status(sweep: Storage, name: str) -> str | None:
    run = sweep.child(name)
    return run.read_json("result.json")["status"] if run.exists("result.json") else None


def _mid_point(sweep: Storage, workers: dict[str, subprocess.Popen]) -> dict[str, str]:
    """Workers (name -> their point) that hold a point with an epoch done and more to go."""
    held: dict[str, str] = {}
    if not sweep.exists("sweep.json"):
        return held
    for claim in read_claims(sweep):
        name = claim.point.name
        pid = _holder_pid(sweep, name)
        run = sweep.child(name)
        metrics = run.read_text("metrics.jsonl") if run.exists("metrics.jsonl") else ""
        owner = next((w for w, p in workers.items() if p.pid == pid), None)
        if owner and len(metrics.splitlines()) == 1 and _status(sweep, name) == "running":
            held[owner] = name
    return held


def _kill_two_and_restart(
    tmp_path: Path, job_file: Path, sweep: Storage, out: list[str], env: dict, count: int
) -> dict[str, str]:
    """Run `count` workers; kill -9 two of them mid-point, start them again; wait for all.
    Returns the points that were killed mid-point (worker -> point)."""
    workers = {str(w): _start(tmp_path, job_file, str(w), out, env) for w in range(count)}
    held: dict[str, str] = {}

    def two_mid_point() -> bool:
        held.update(_mid_point(sweep, workers))
        return len(held) >= 2

    wait_for(two_mid_point, 600, "two workers holding a point mid-way")
    killed = dict(list(held.items())[:2])
    for worker in killed:
        workers[worker].send_signal(signal.SIGKILL)
        workers[worker].wait()
    killed = {w: p for w, p in killed.items() if _status(sweep, p) == "running"}
    assert killed, "both points ended before their workers were killed"
    for worker in killed:
        workers[worker] = _start(tmp_path, job_file, worker, out, env)
    codes = {w: p.wait(timeout=900) for w, p in workers.items()}
    logs = "".join(f.read_text()[-2000:] for f in tmp_path.glob("worker-*.log"))
    assert set(codes.values()) == {0}, (codes, logs)
    return killed


def _check_sweep(sweep: Storage, killed: dict[str, str], run_cap: int) -> None:
    claims = read_claims(sweep)
    assert [c.point.index for c in claims] == list(range(run_cap))  # no index claimed twice
    assert len({tuple(sorted(c.params.items())) for c in claims}) == run_cap  # no duplicates
    summary = sweep.read_json("summary.json")
    assert summary["method"] == "bayes" and summary["run_cap"] == run_cap
    statuses = {row["name"]: row for row in summary["points"]}
    assert len(statuses) == run_cap
    assert {row["status"] for row in statuses.values()} <= {"done", "pruned"}
    for name in killed.values():
        row = statuses[name]
        result = sweep.child(name).read_json("result.json")
        assert result["resumes"], f"{name} was not resumed from its checkpoint"
        if row["status"] == "done":
            assert row["epochs"] == EPOCHS
        claim = next(c for c in claims if c.point.name == name)
        config = yaml.safe_load(sweep.child(name).read_text("config.yaml"))
        assert config["optimizer"]["lr"] == claim.params["optimizer.lr"]
        assert config["model"]["dropout"] == claim.params["model.dropout"]
        # Trained by one process at a time: each lease generation ended before the next.
        assert len(sweep.child(f"{name}/leases").list()) >= 2


# Three workers race for the points as eight do; eight, on 2 CPUs, take minutes (soak).
SIZES = [
    pytest.param(3, 9, id="3-workers"),
    pytest.param(8, 24, id="8-workers", marks=pytest.mark.soak),
]


@pytest.mark.parametrize(("count", "run_cap"), SIZES)
def test_workers_on_the_local_file_system(tmp_path: Path, count: int, run_cap: int) -> None:
    job_file, _ = _job(tmp_path, "workers", run_cap=run_cap, parallelism=count)
    out = location(tmp_path)
    sweep = open_storage(f"{tmp_path}/out/workers")
    killed = _kill_two_and_restart(tmp_path, job_file, sweep, out, {}, count)
    _check_sweep(sweep, killed, run_cap)


@pytest.mark.parametrize(("count", "run_cap"), SIZES)
def test_workers_on_s3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, run_cap: int
) -> None:
    # The server serves one request at a time, so that its conditional write (the claim's
    # If-None-Match: *) is atomic as on a real S3 store (see tests/s3server.py).
    with S3Server(serial=True) as server:
        env = server.job_env(tmp_path)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        boto3.session.Session().client("s3").create_bucket(Bucket="sweeps")
        job_file, _ = _job(tmp_path, "workers", run_cap=run_cap, parallelism=count)
        out = ["output=s3://sweeps/out", f"data.cache_dir={tmp_path}/cache"]
        sweep = open_storage("s3://sweeps/out/workers")
        killed = _kill_two_and_restart(tmp_path, job_file, sweep, out, env, count)
        _check_sweep(sweep, killed, run_cap)


def _one_worker_sweep(tmp_path: Path, folder: str) -> Storage:
    job_file, _ = _job(tmp_path, "replay", run_cap=7, parallelism=1)
    out = [f"output={tmp_path}/{folder}", f"data.cache_dir={tmp_path}/cache"]
    done = run_inat(tmp_path, "sweep", str(job_file), *out)
    assert done.returncode == 0, done.stdout + done.stderr
    return open_storage(f"{tmp_path}/{folder}/replay")


def test_one_worker_replays_its_suggestions_and_stops_weak_points(tmp_path: Path) -> None:
    _, job = _job(tmp_path, "replay", run_cap=7, parallelism=1)
    search = parse_search("replay", job["sweep"])
    sweep = _one_worker_sweep(tmp_path, "first")
    claims = read_claims(sweep)
    assert len(claims) == 7
    # Each point's values are what the sampler suggests from the points before it.
    recorded = records(sweep, search, claims)
    for index, claim in enumerate(claims):
        assert suggest(search, index, recorded[:index]) == dict(claim.params)
    # The rebuilt study is what the points recorded.
    study = build_study(search, recorded)
    summary = sweep.read_json("summary.json")
    for trial, row in zip(study.trials, summary["points"], strict=True):
        assert trial.state.name == {"done": "COMPLETE", "pruned": "PRUNED"}[row["status"]]
        assert max(trial.intermediate_values.values()) == pytest.approx(row["best_val_accuracy"])
    # Weak points (learning rates near 1.0 do not learn) stopped at the first rung.
    pruned = [r for r in summary["points"] if r["status"] == Status.PRUNED]
    assert pruned and all(r["epochs"] < MIN_ITER * ETA for r in pruned)
    best = max(summary["points"], key=lambda r: r["best_val_accuracy"])
    assert best["status"] == "done"
    # The same sweep again suggests the same points in the same order.
    again = read_claims(_one_worker_sweep(tmp_path, "second"))
    assert [c.params for c in again] == [c.params for c in claims]

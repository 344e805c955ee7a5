"""Faults injected into real runs: kill -9 again and again, a diverging run, a full disk,
the umask, and jobs sharing one data cache. Nothing may be lost. (The soak tier kills ten
times at random moments and runs eight jobs at once.)"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import pytest
import torch
from helpers.runs import (
    TINY,
    inat_command,
    location,
    read_metrics,
    run_inat,
    run_until,
    without_timings,
)

from inat.data import resolve_source

pytestmark = pytest.mark.slow

EPOCHS = 4
ARGS = ["train", *TINY, f"trainer.epochs={EPOCHS}", "model.dropout=0.2", "data.augment=true"]


MOMENTS = ["batch", "checkpoint", "result"]


def _kill_at(tmp_path: Path, moment: str, batch: int) -> int:
    """Start (or resume) the run and kill -9 it at the log line of `moment`.

    The moments: during batch `batch`, right after a checkpoint write began, or after the
    last epoch while the test phase and result.json are written. Returns the exit code.
    """
    proc = subprocess.Popen(
        inat_command(*ARGS, *location(tmp_path)),
        cwd=tmp_path,
        env={**os.environ, "WANDB_MODE": "disabled"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:
        hit = (
            (moment == "batch" and f" {batch}/20 loss=" in line)
            or (moment == "checkpoint" and "saving checkpoint" in line)
            or (moment == "result" and f"epoch {EPOCHS}/{EPOCHS} train_loss" in line)
        )
        if hit:
            proc.kill()
            break
    proc.stdout.read()
    return proc.wait(timeout=120)


def _three_moments() -> list[tuple[str, int]]:
    """One kill at each moment, in the run's order."""
    return [(moment, 7) for moment in MOMENTS]


def _ten_random_moments() -> list[tuple[str, int]]:
    rng = random.Random(7)
    return [(rng.choice(MOMENTS), rng.randint(1, 20)) for _ in range(10)]


@pytest.mark.parametrize(
    "kills",
    [
        pytest.param(_three_moments(), id="one-at-each-moment"),
        pytest.param(_ten_random_moments(), id="ten-at-random", marks=pytest.mark.soak),
    ],
)
def test_kills_at_any_moment_end_as_an_uninterrupted_run(tmp_path, kills):
    reference = tmp_path / "reference"
    reference.mkdir()
    done = run_inat(reference, *ARGS, *location(reference))
    assert done.returncode == 0, done.stderr

    todo = list(kills)
    run = tmp_path / "killed"
    run.mkdir()
    while todo:
        code = _kill_at(run, *todo[0])
        if code == 0:  # it finished before the chosen moment came: start a fresh run dir
            shutil.rmtree(run / "out")
            continue
        assert code == -signal.SIGKILL
        todo.pop(0)
    final = run_inat(run, *ARGS, *location(run))
    assert final.returncode == 0, final.stderr
    ours, theirs = run / "out" / "default", reference / "out" / "default"
    assert without_timings(read_metrics(ours)) == without_timings(read_metrics(theirs))
    result = json.loads((ours / "result.json").read_text())
    assert result["test"] == json.loads((theirs / "result.json").read_text())["test"]
    assert result["epochs"] == EPOCHS


def test_a_run_whose_loss_is_not_finite_stops_and_keeps_its_last_good_checkpoint(tmp_path):
    killed = run_until(tmp_path, ARGS, f"epoch 1/{EPOCHS} train_loss", signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    checkpoints = tmp_path / "out" / "default" / "checkpoints"
    latest = json.loads((checkpoints / "latest.json").read_text())
    # Weights blown up to infinity: what an fp16 overflow or a too-large step leaves.
    state = torch.load(checkpoints / latest["path"], weights_only=True)
    state["model"] = {
        k: v * float("inf") if v.is_floating_point() else v for k, v in state["model"].items()
    }
    torch.save(state, checkpoints / latest["path"])
    # Recorded as inat records a checkpoint it saved (else it would be taken for damaged).
    data = (checkpoints / latest["path"]).read_bytes()
    latest = {**latest, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    for pointer in ("latest.json", "best.json", f"{latest['path'].split('/')[0]}/digest.json"):
        if json.loads((checkpoints / pointer).read_text())["path"] == latest["path"]:
            (checkpoints / pointer).write_text(json.dumps(latest))

    rows = read_metrics(tmp_path / "out" / "default")

    diverged = run_inat(tmp_path, *ARGS, "trainer.max_nonfinite_steps=3", *location(tmp_path))
    assert diverged.returncode == 1
    output = diverged.stdout + diverged.stderr
    assert "not finite for 3 optimizer steps in a row" in output and "the run diverged" in output
    assert json.loads((checkpoints / "latest.json").read_text()) == latest
    assert read_metrics(tmp_path / "out" / "default") == rows
    result = json.loads((tmp_path / "out" / "default" / "result.json").read_text())
    assert result["status"] == "failed" and "diverged" in result["error"]


def _file_size_limit(limit: int):
    def apply() -> None:
        # Writes past the limit fail with EFBIG, as on a full disk or over a quota.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path):
    killed = run_until(tmp_path, ARGS, f"epoch 1/{EPOCHS} train_loss", signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    checkpoints = tmp_path / "out" / "default" / "checkpoints"
    latest = json.loads((checkpoints / "latest.json").read_text())
    before = sorted(p.relative_to(checkpoints) for p in checkpoints.rglob("*"))
    size = (checkpoints / latest["path"]).stat().st_size

    full = subprocess.run(
        inat_command(*ARGS, *location(tmp_path)),
        cwd=tmp_path,
        env={**os.environ, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        preexec_fn=_file_size_limit(size // 2),
        timeout=300,
    )
    out = full.stdout + full.stderr
    assert full.returncode == 75, out
    assert "no space to write checkpoint" in out
    result = json.loads((tmp_path / "out" / "default" / "result.json").read_text())
    assert result["status"] == "interrupted"  # a retry resumes it: not failed
    assert json.loads((checkpoints / "latest.json").read_text()) == latest
    assert sorted(p.relative_to(checkpoints) for p in checkpoints.rglob("*")) == before

    resumed = run_inat(tmp_path, *ARGS, *location(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((tmp_path / "out" / "default" / "result.json").read_text())["epochs"] == 4


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_files_follow_the_umask_and_are_never_world_writable(tmp_path, umask):
    source = resolve_source("synthetic", tmp_path / "gen", {"train_per_class": 8})
    archive = shutil.make_archive(str(tmp_path / "data"), "zip", source.parent, source.name)
    done = subprocess.run(
        inat_command(*ARGS, *location(tmp_path), "trainer.epochs=1", f"data.source={archive}"),
        cwd=tmp_path,
        env={**os.environ, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(umask),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    written = [p for folder in ("out", "cache") for p in (tmp_path / folder).rglob("*")]
    files = [p for p in written if p.is_file()]
    assert len(files) > 20
    for path in written:
        assert not path.stat().st_mode & stat.S_IWOTH, path
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


@pytest.mark.parametrize("count", [4, pytest.param(8, marks=pytest.mark.soak)])
def test_jobs_share_one_data_cache_and_all_train(tmp_path, count):
    source = resolve_source("synthetic", tmp_path / "gen", {"train_per_class": 8})
    archive = shutil.make_archive(str(tmp_path / "data"), "zip", source.parent, source.name)
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    jobs = [
        subprocess.Popen(
            inat_command(
                *ARGS,
                "trainer.epochs=1",
                f"data.source={archive}",
                f"data.cache_dir={tmp_path}/cache",
                f"output={tmp_path}/out",
                f"name=job{i}",
            ),
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    errors = [job.communicate(timeout=600)[1] for job in jobs]
    assert [job.returncode for job in jobs] == [0] * count, errors
    results = [
        json.loads((tmp_path / "out" / f"job{i}" / "result.json").read_text()) for i in range(count)
    ]
    assert {r["status"] for r in results} == {"done"}
    extracted = [
        p for p in (tmp_path / "cache").iterdir() if p.is_dir() and p.name.startswith("zip-")
    ]
    assert len(extracted) == 1
    images = list(extracted[0].rglob("*.png")) + list(extracted[0].rglob("*.jpg"))
    assert len(images) == len(list(source.rglob("*.png")) + list(source.rglob("*.jpg")))

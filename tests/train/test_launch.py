"""`inat launch`: two training processes (DDP on the CPU) whose exit codes reach the caller,
as the Kubernetes podFailurePolicy and the Slurm requeue logic need them."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from helpers.runs import TINY, location, read_metrics, run_inat, run_until, without_timings

from inat.errors import ExitCode
from inat.storage import LocalStorage
from inat.train.checkpoint import CheckpointManager

pytestmark = pytest.mark.slow

LAUNCH = ["launch", "--multi_gpu", "--num_processes=2", "--main_process_port=0"]
TRAIN = ["train", *TINY, "trainer.cpu=true"]


def test_a_bad_config_in_every_process_exits_65(tmp_path):
    done = run_inat(tmp_path, *LAUNCH, *TRAIN, "trainer.epochs=0", *location(tmp_path), timeout=300)

    assert done.returncode == ExitCode.BAD_INPUT, done.stdout + done.stderr
    assert "trainer.epochs=0 is not allowed" in done.stdout + done.stderr


def test_sigterm_to_the_launcher_exits_75_and_the_next_launch_resumes_exactly(tmp_path):
    train = [*TRAIN, "data.augment=true", "model.dropout=0.3"]
    reference = tmp_path / "reference"
    reference.mkdir()
    uninterrupted = run_inat(reference, *LAUNCH, *train, *location(reference), timeout=600)
    assert uninterrupted.returncode == ExitCode.OK, uninterrupted.stdout + uninterrupted.stderr

    stopped = run_until(tmp_path, [*LAUNCH, *train], "epoch 1/3 train_loss", signal.SIGTERM)
    assert stopped.returncode == ExitCode.RETRY
    run_dir = tmp_path / "out" / "default"
    assert json.loads((run_dir / "result.json").read_text())["status"] == "interrupted"
    # Each process draws its own augmentations and dropout masks, and resumes its own draws.
    checkpoint = CheckpointManager(LocalStorage(run_dir / "checkpoints"))
    generators = checkpoint.load(checkpoint.latest())["rng"]
    assert len(generators) == 2
    assert not torch.equal(generators[0]["torch"], generators[1]["torch"])

    resumed = run_inat(tmp_path, *LAUNCH, *train, *location(tmp_path), timeout=600)
    assert resumed.returncode == ExitCode.OK, resumed.stdout + resumed.stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "done" and result["resumes"]
    assert result["devices"]["num_processes"] == 2
    theirs = reference / "out" / "default"
    assert without_timings(read_metrics(run_dir)) == without_timings(read_metrics(theirs))
    assert result["test"] == json.loads((theirs / "result.json").read_text())["test"]


def test_a_command_given_as_a_module_is_refused(tmp_path):
    done = run_inat(tmp_path, *LAUNCH, "-m", "inat", "train", timeout=120)

    assert done.returncode == 2
    assert "name the inat command only" in done.stderr


def test_a_run_stopped_in_one_process_resumes_in_two(tmp_path):
    stopped = run_until(tmp_path, TRAIN, "epoch 1/3 train_loss", signal.SIGTERM)
    assert stopped.returncode == ExitCode.RETRY

    resumed = run_inat(tmp_path, *LAUNCH, *TRAIN, *location(tmp_path), timeout=600)

    assert resumed.returncode == ExitCode.OK, resumed.stdout + resumed.stderr
    assert "resuming on 2 processes, not 1" in resumed.stdout + resumed.stderr
    result = json.loads((tmp_path / "out" / "default" / "result.json").read_text())
    assert result["status"] == "done" and result["epochs"] == 3
    assert result["devices"]["num_processes"] == 2

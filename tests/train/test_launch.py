"""`inat launch`: two training processes (DDP on the CPU) whose exit codes reach the caller,
as the Kubernetes podFailurePolicy and the Slurm requeue logic need them."""

from __future__ import annotations

import json
import signal

import pytest
from helpers.runs import TINY, location, read_metrics, run_inat, run_until

from inat.errors import ExitCode

pytestmark = pytest.mark.slow

LAUNCH = ["launch", "--multi_gpu", "--num_processes=2", "--main_process_port=0"]
TRAIN = ["train", *TINY, "trainer.cpu=true"]


def test_a_bad_config_in_every_process_exits_65(tmp_path):
    done = run_inat(tmp_path, *LAUNCH, *TRAIN, "trainer.epochs=0", *location(tmp_path), timeout=300)

    assert done.returncode == ExitCode.BAD_INPUT, done.stdout + done.stderr
    assert "trainer.epochs=0 is not allowed" in done.stdout + done.stderr


def test_sigterm_to_the_launcher_checkpoints_exits_75_and_the_next_launch_resumes(tmp_path):
    stopped = run_until(tmp_path, [*LAUNCH, *TRAIN], "epoch 1/3 train_loss", signal.SIGTERM)

    assert stopped.returncode == ExitCode.RETRY
    run_dir = tmp_path / "out" / "default"
    assert json.loads((run_dir / "result.json").read_text())["status"] == "interrupted"
    assert (run_dir / "checkpoints" / "latest.json").exists()

    resumed = run_inat(tmp_path, *LAUNCH, *TRAIN, *location(tmp_path), timeout=600)
    assert resumed.returncode == ExitCode.OK, resumed.stdout + resumed.stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "done" and result["epochs"] == 3
    assert result["resumes"] and result["devices"]["num_processes"] == 2
    assert [row["epoch"] for row in read_metrics(run_dir)] == [1, 2, 3]


def test_a_command_given_as_a_module_is_refused(tmp_path):
    done = run_inat(tmp_path, *LAUNCH, "-m", "inat", "train", timeout=120)

    assert done.returncode == 2
    assert "name the inat command only" in done.stderr

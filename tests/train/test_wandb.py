"""Weights & Biases, for real in offline mode: a run directory, resumed under the same id."""

from __future__ import annotations

import signal

import pytest
from helpers.runs import TINY, location, run_inat, run_until

from inat.train.tracker import wandb_run_id

pytestmark = pytest.mark.slow


def test_offline_wandb_run_is_written_and_resumed_under_one_id(tmp_path):
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wb")}
    args = ["train", *TINY, "logger=wandb", "trainer.epochs=2"]
    killed = run_until(tmp_path, args, "epoch 1/2 train_loss", signal.SIGKILL, env=env)
    assert killed.returncode == -signal.SIGKILL
    again = run_inat(tmp_path, *args, *location(tmp_path), env=env)
    assert again.returncode == 0, again.stderr

    run_id = wandb_run_id(str(tmp_path / "out" / "default"))
    runs = sorted((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    assert all((run / f"run-{run_id}.wandb").is_file() for run in runs)

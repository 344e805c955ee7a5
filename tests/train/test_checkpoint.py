"""Checkpoints: published through pointers, pruned after the pointers moved, loaded exactly."""

from __future__ import annotations

import random

import numpy as np
import torch

from inat.storage import LocalStorage
from inat.train.checkpoint import CheckpointManager, rng_state, set_rng_state


def _state(epoch: int) -> dict:
    return {"model": {"w": torch.full((3,), float(epoch))}, "epoch": epoch}


def test_latest_and_best_pointers_name_complete_checkpoints(tmp_path):
    ckpts = CheckpointManager(LocalStorage(tmp_path), keep=2)
    assert ckpts.latest() is None
    ckpts.save(_state(1), step=10, is_best=True)
    ckpts.save(_state(2), step=20, is_best=False)
    assert ckpts.latest() == {"path": "step-0000020/state.pt", "step": 20, "epoch": 2}
    assert ckpts.best()["path"] == "step-0000010/state.pt"
    assert torch.equal(ckpts.load(ckpts.latest())["model"]["w"], torch.full((3,), 2.0))
    assert ckpts.load(ckpts.best())["epoch"] == 1


def test_prune_keeps_the_latest_k_and_the_best(tmp_path):
    ckpts = CheckpointManager(LocalStorage(tmp_path), keep=2)
    ckpts.save(_state(1), step=1, is_best=True)
    for epoch in range(2, 6):
        ckpts.save(_state(epoch), step=epoch, is_best=False)
    folders = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert folders == ["step-0000001", "step-0000004", "step-0000005"]


def test_an_unpublished_checkpoint_is_never_loaded(tmp_path):
    """A folder written without its pointer (a crash mid-save) is ignored."""
    storage = LocalStorage(tmp_path)
    ckpts = CheckpointManager(storage, keep=2)
    ckpts.save(_state(1), step=1, is_best=True)
    storage.write_bytes("step-0000002/state.pt", b"torn")
    assert ckpts.latest()["epoch"] == 1
    assert ckpts.load(ckpts.latest())["epoch"] == 1


def test_rng_state_round_trip():
    saved = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(saved)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected

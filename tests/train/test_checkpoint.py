"""Checkpoints: published through pointers, pruned after the pointers moved, loaded exactly,
and loaded with weights_only=True: a checkpoint that would run code is refused unread."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from helpers.pickles import Payload

from inat.errors import ExitCode
from inat.storage import LocalStorage
from inat.train.checkpoint import (
    CheckpointManager,
    CheckpointsDamaged,
    DamagedCheckpoint,
    UnsafeCheckpoint,
    rng_state,
    set_rng_state,
)


def _state(epoch: int) -> dict:
    return {"model": {"w": torch.full((3,), float(epoch))}, "epoch": epoch}


def test_latest_and_best_pointers_name_complete_checkpoints(tmp_path):
    ckpts = CheckpointManager(LocalStorage(tmp_path), keep=2)
    assert ckpts.latest() is None
    ckpts.save(_state(1), step=10, is_best=True)
    ckpts.save(_state(2), step=20, is_best=False)
    latest = ckpts.latest()
    assert {k: latest[k] for k in ("path", "step", "epoch")} == {
        "path": "step-0000020/state.pt",
        "step": 20,
        "epoch": 2,
    }
    assert latest["bytes"] == (tmp_path / latest["path"]).stat().st_size
    assert (tmp_path / "step-0000020/digest.json").is_file()
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
    pointer, state = ckpts.latest_intact()
    assert pointer["path"] == "step-0000001/state.pt" and state["epoch"] == 1


def test_a_changed_checkpoint_fails_its_hash_and_a_missing_one_is_named(tmp_path):
    storage = LocalStorage(tmp_path)
    ckpts = CheckpointManager(storage, keep=2)
    ckpts.save(_state(1), step=1, is_best=True)
    pointer = ckpts.latest()
    data = bytearray(storage.read_bytes(pointer["path"]))
    data[-10] ^= 0xFF  # same size, other content
    storage.write_bytes(pointer["path"], bytes(data))
    with pytest.raises(DamagedCheckpoint, match="truncated or changed") as damaged:
        ckpts.load(pointer)
    assert damaged.value.exit_code == ExitCode.BAD_INPUT
    with pytest.raises(CheckpointsDamaged, match="no intact checkpoint"):
        ckpts.latest_intact()
    storage.delete(pointer["path"])
    with pytest.raises(DamagedCheckpoint, match="missing"):
        ckpts.load(pointer)


def _draws() -> list:
    """Draws from every generator, Gaussian caches included (random.gauss, numpy's randn)."""
    return [
        random.random(),
        random.gauss(0, 1),
        np.random.rand(3).tolist(),
        np.random.randn(),
        torch.rand(3).tolist(),
        torch.randn(2).tolist(),
    ]


def test_every_generator_state_round_trips_through_a_saved_checkpoint(tmp_path):
    random.gauss(0, 1)  # leaves a cached Gaussian in python's and numpy's state
    np.random.randn()
    ckpts = CheckpointManager(LocalStorage(tmp_path))
    ckpts.save({"rng": [rng_state()], "epoch": 1}, step=1, is_best=True)
    expected = _draws()
    # Tensors and plain data only: torch's weights-only loader reads the whole file.
    torch.load(tmp_path / ckpts.latest()["path"], weights_only=True)
    _draws()  # moves every generator on

    set_rng_state(ckpts.load(ckpts.latest())["rng"][0])
    assert _draws() == expected


def test_a_checkpoint_holding_other_objects_is_refused_and_nothing_in_it_runs(tmp_path):
    marker = tmp_path / "ran"
    storage = LocalStorage(tmp_path / "ckpts")
    state = {"model": {"w": torch.zeros(2)}, "epoch": 1, "extra": Payload(marker)}
    torch.save(state, tmp_path / "evil.pt")
    storage.write_bytes("step-0000001/state.pt", (tmp_path / "evil.pt").read_bytes())

    with pytest.raises(UnsafeCheckpoint) as refused:
        CheckpointManager(storage).load({"path": "step-0000001/state.pt"})
    message = str(refused.value)
    assert f"{storage.uri}/step-0000001/state.pt" in message
    assert "objects other than tensors and plain data (posix.system)" in message
    assert "may be unsafe; nothing in it was run" in message
    assert refused.value.exit_code == ExitCode.BAD_INPUT
    assert not marker.exists()

"""Losses and gradients that are not finite: fp16 overflow skipped and counted, a bad batch
left out, broken weights never checkpointed, a run whose loss stays bad stopped.

No GPU here, and Accelerate trains fp16 configs in float32 on the CPU, with no loss scaler.
So the fp16 tests use one stand-in, for the GPU: an Accelerator given on the CPU what
Accelerate gives a GPU for fp16, a real torch.amp.GradScaler and fp16 autocast. The rest
(Accelerate's scaled backward, skipped optimizer steps, the trainer) is the real code.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from helpers.runs import compose_cfg, read_metrics

from inat.errors import InatError
from inat.train import trainer
from inat.train.trainer import train

pytestmark = pytest.mark.slow

INIT_SCALE = 2.0**30  # far above what fp16 gradients survive: the first steps overflow


class Fp16OnTheCpu(Accelerator):
    """Accelerate's fp16 setup for a GPU (autocast to float16, a GradScaler), on the CPU."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        assert self.mixed_precision == "fp16" and self.scaler is None
        self.native_amp = True
        self.scaler = torch.amp.GradScaler("cpu", init_scale=INIT_SCALE)


@pytest.fixture
def fp16(monkeypatch) -> list[str]:
    """Overrides of an fp16 run whose trainer gets the fp16 stand-in."""
    monkeypatch.setattr(trainer, "Accelerator", Fp16OnTheCpu)
    return ["trainer.mixed_precision=fp16", "trainer.cpu=true"]


def poison_outputs(monkeypatch, when) -> None:
    """Make the model's output infinite on the forward passes for which `when(module, n)`
    holds, n counting the passes in training mode: a fault injected into the real model."""
    training_passes = itertools.count(1)

    def hook(module: torch.nn.Module, inputs, output: torch.Tensor) -> torch.Tensor | None:
        n = next(training_passes) if module.training else None
        return output * math.inf if when(module, n) else None

    def build_poisoned_model(*args, **kwargs) -> torch.nn.Module:
        model = build_model(*args, **kwargs)
        model.register_forward_hook(hook)
        return model

    build_model = trainer.build_model
    monkeypatch.setattr(trainer, "build_model", build_poisoned_model)


def test_fp16_overflow_skips_steps_counts_and_logs_them_and_training_goes_on(
    tmp_path: Path, fp16, caplog
):
    cfg = compose_cfg(tmp_path, *fp16)
    with caplog.at_level(logging.INFO, logger="inat"):
        result = train(cfg)

    assert result["status"] == "done"
    skipped = result["skipped_steps"]
    assert skipped >= 5 and result["nonfinite_steps"] == 0
    # Each skipped step halved the loss scale (no growth before 2,000 good steps): the
    # count is the scaler's own, and it is kept in the checkpoint.
    checkpoints = Path(cfg.run_dir) / "checkpoints"
    latest = json.loads((checkpoints / "latest.json").read_text())
    checkpoint = torch.load(checkpoints / latest["path"], weights_only=True)
    assert checkpoint["scaler"]["scale"] == INIT_SCALE * 0.5**skipped
    rows = read_metrics(Path(cfg.run_dir))
    assert rows[-1]["skipped_steps"] == skipped
    assert all(math.isfinite(row["train_loss"]) for row in rows)
    line = f"epoch 1: fp16 overflow skipped {skipped} optimizer step(s)"
    assert any(record.getMessage().startswith(line) for record in caplog.records)


def test_an_fp16_batch_whose_loss_is_not_finite_is_skipped_and_left_out(
    tmp_path: Path, fp16, monkeypatch, caplog
):
    poison_outputs(monkeypatch, lambda module, n: n == 25)  # a batch of epoch 2
    cfg = compose_cfg(tmp_path, *fp16)
    with caplog.at_level(logging.WARNING, logger="inat"):
        result = train(cfg)

    assert result["status"] == "done"
    assert result["nonfinite_steps"] == 1
    rows = read_metrics(Path(cfg.run_dir))
    assert [row["nonfinite_steps"] for row in rows] == [0, 1, 1]
    assert all(math.isfinite(row["train_loss"]) for row in rows)
    assert rows[1]["skipped_steps"] > rows[0]["skipped_steps"]  # the scaler skipped it
    messages = [record.getMessage() for record in caplog.records]
    assert any(
        m.startswith("epoch 2: ") and "; 1 step(s) had a loss that was not finite" in m
        for m in messages
    )


def test_weights_whose_validation_loss_is_not_finite_are_never_checkpointed(
    tmp_path: Path, monkeypatch
):
    poison_outputs(monkeypatch, lambda module, n: not module.training)
    cfg = compose_cfg(tmp_path)

    with pytest.raises(InatError, match=r"the validation loss is (inf|nan).*the run diverged"):
        train(cfg)

    run_dir = Path(cfg.run_dir)
    assert not (run_dir / "checkpoints" / "latest.json").exists()
    assert read_metrics(run_dir) == []

"""Epoch-end callbacks: a rule from outside sees every metrics row and may end the run with
a status of its own; early stopping is one such rule. And the log block that opens a run."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from helpers.runs import read_metrics

from inat.rundir import Status
from inat.train import train
from inat.train.callbacks import StopRun
from inat.train.state import TrainState

pytestmark = pytest.mark.slow


class PruneAt:
    """Records the rows it sees; prunes the run at `epoch`."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.rows: list[dict[str, Any]] = []

    def on_epoch_end(self, row: dict[str, Any], state: TrainState) -> StopRun | None:
        self.rows.append(dict(row))
        if row["epoch"] == self.epoch:
            return StopRun(Status.PRUNED, f"pruned at epoch {self.epoch}")
        return None


def test_a_callback_sees_every_row_and_stops_the_run_with_its_status(tiny_cfg, caplog):
    cfg = tiny_cfg("trainer.epochs=4")
    prune = PruneAt(2)
    with caplog.at_level(logging.INFO, logger="inat"):
        result = train(cfg, callbacks=[prune])

    run_dir = Path(cfg.run_dir)
    assert prune.rows == read_metrics(run_dir)
    assert [row["epoch"] for row in prune.rows] == [1, 2]
    assert result["status"] == Status.PRUNED.value
    assert result["epochs"] == 2 and result["stopped_early"]
    assert result["stop_reason"] == "pruned at epoch 2"
    assert result["test"]["accuracy"] >= 0.0  # the best checkpoint was tested
    assert "pruned at epoch 2" in [record.getMessage() for record in caplog.records]

    # The decision is part of the run: run again, without the rule, it is not trained on.
    again = train(cfg)
    assert again == json.loads((run_dir / "result.json").read_text()) == result


def test_early_stopping_is_a_callback_whose_run_ends_done(tiny_cfg):
    # A learning rate too small to change a prediction: validation accuracy never improves.
    cfg = tiny_cfg("trainer.epochs=5", "trainer.early_stopping_patience=2", "optimizer.lr=1e-12")
    result = train(cfg)

    assert result["status"] == Status.DONE.value
    assert result["stopped_early"] and result["epochs"] == 3 and result["best_epoch"] == 1
    assert result["stop_reason"] == "early stop: no better validation accuracy for 2 epochs"
    assert len(read_metrics(Path(cfg.run_dir))) == 3


def test_the_log_block_says_what_is_trained_and_result_json_counts_parameters(tiny_cfg, caplog):
    cfg = tiny_cfg("trainer.epochs=1")
    with caplog.at_level(logging.INFO, logger="inat"):
        result = train(cfg)

    parameters = result["parameters"]
    assert parameters["trainable"] == parameters["total"] > 0
    assert parameters["trainable_modules"] == ["features", "classifier"]
    messages = [record.getMessage() for record in caplog.records]
    total = f"{parameters['total']:,}"
    expected = [
        "model: ScratchCNN",
        f"parameters: {total} trainable of {total} (100.0%); trainable modules: "
        "features, classifier",
        "recipe: plain",
        "devices: cpu, 1 process(es); trainer.mixed_precision=no",
        "batch: 16 per process and micro-batch (data.batch_size=16, "
        "trainer.grad_accum_steps=1); 20 optimizer steps per epoch, trainer.epochs=1",
        f"run directory: {cfg.run_dir}",
        "resume: no: a new run",
    ]
    start = messages.index(expected[0])
    assert messages[start : start + len(expected)] == expected

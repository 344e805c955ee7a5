"""Two-process DDP on the CPU through `accelerate launch`: metrics reduced over all samples."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate import Accelerator
from helpers.runs import TINY, location, read_metrics, train_on_two_processes

from inat.data import build_dataloaders
from inat.models import ScratchCNN
from inat.storage import LocalStorage
from inat.train.checkpoint import CheckpointManager
from inat.train.scoring import evaluate

pytestmark = pytest.mark.slow


def test_two_process_ddp_reports_the_single_process_validation_accuracy(tmp_path, tiny_cfg):
    # 40 images x 10 classes: the validation split (80) does not divide into batches of
    # 16 / 2 processes evenly, so DDP pads it and a wrong reduction would show.
    args = [
        *TINY,
        *location(tmp_path),
        "trainer.epochs=2",
        "trainer.cpu=true",
        "data.synthetic.train_per_class=43",
    ]
    done = train_on_two_processes(tmp_path, args)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = tmp_path / "out" / "default"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["devices"]["num_processes"] == 2
    assert result["epochs"] == 2

    # Recompute in this single process, from the DDP run's own checkpoint of its last epoch.
    cfg = tiny_cfg(*args[len(TINY) :])
    ckpts = CheckpointManager(LocalStorage(run_dir / "checkpoints"))
    state = ckpts.load(ckpts.latest())
    model = ScratchCNN(
        **{k: v for k, v in cfg.model.items() if k != "_target_"},
        num_classes=10,
        image_size=cfg.data.image_size,
    )
    model.load_state_dict(state["model"])
    data = build_dataloaders(cfg.data, seed=cfg.seed)
    assert len(data.val.dataset) % 16 != 0
    single = evaluate(model, data.val, Accelerator(cpu=True), num_classes=10)
    logged = read_metrics(run_dir)[-1]
    assert logged["val_accuracy"] == pytest.approx(single.accuracy, abs=1e-6)
    assert logged["val_loss"] == pytest.approx(single.loss, rel=1e-4)
    assert sum(map(sum, single.confusion)) == len(data.val.dataset)
    assert torch.isfinite(torch.tensor(logged["train_loss"]))


def test_early_stopping_decided_on_the_main_process_stops_both(tmp_path):
    # A learning rate too small to change a prediction: epoch 2 is no better than epoch 1.
    args = [
        *TINY,
        *location(tmp_path),
        "trainer.epochs=4",
        "trainer.cpu=true",
        "trainer.early_stopping_patience=1",
        "optimizer.lr=1e-12",
    ]
    done = train_on_two_processes(tmp_path, args)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = tmp_path / "out" / "default"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "done" and result["devices"]["num_processes"] == 2
    assert result["stopped_early"] and result["epochs"] == 2
    assert result["stop_reason"] == "early stop: no better validation accuracy for 1 epochs"
    assert len(read_metrics(run_dir)) == 2
    # Only the main process writes train.log: one log block, one line per epoch.
    log = (run_dir / "train.log").read_text()
    assert log.count("run directory: ") == 1 and log.count(" train_loss=") == 2
    assert ", 2 process(es); trainer.mixed_precision=no" in log

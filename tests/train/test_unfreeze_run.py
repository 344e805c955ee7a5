"""Fine-tuning a timm backbone with layer-wise decay and gradual unfreezing: the stages join
as the schedule says, a stop signal mid-epoch resumes exactly, and 2 DDP processes train it
(their wrapper rebuilt as stages join)."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from accelerate import Accelerator
from helpers.runs import (
    TINY_DATA,
    compose_cfg,
    location,
    read_metrics,
    run_inat,
    run_until,
    train_on_two_processes,
    without_timings,
)

from inat.data import build_dataloaders
from inat.models import build_model
from inat.storage import LocalStorage
from inat.train.checkpoint import CheckpointManager
from inat.train.scoring import evaluate

pytestmark = pytest.mark.slow

EPOCHS = 3
FINETUNE = [
    "train",
    *TINY_DATA,
    "name=default",
    "model=finetune",
    "model.backbone=test_resnet",
    "model.weights=null",
    "model.strategy=full",
    "model.layer_decay=0.5",
    "model.unfreeze_schedule.head_epochs=1",
    "model.unfreeze_schedule.every=1",
    "optimizer=adamw",
    "optimizer.lr=0.003",
    "scheduler=constant",
    f"trainer.epochs={EPOCHS}",
    "trainer.log_every_n_steps=1",
]


def _checkpoints(run_dir) -> list[dict]:
    """Every checkpoint a run kept, oldest first."""
    ckpts = CheckpointManager(LocalStorage(run_dir / "checkpoints"), keep=EPOCHS)
    folders = sorted(p.name for p in (run_dir / "checkpoints").glob("step-*"))
    return [ckpts.load({"path": f"{folder}/state.pt"}) for folder in folders]


def test_stages_join_as_scheduled_and_a_stopped_run_resumes_exactly(tmp_path):
    args = [*FINETUNE, "trainer.keep_checkpoints=3"]
    reference = tmp_path / "reference"
    reference.mkdir()
    done = run_inat(reference, *args, *location(reference))
    assert done.returncode == 0, done.stderr
    ref_dir = reference / "out" / "default"
    first, second, third = _checkpoints(ref_dir)
    # Epoch 1 trains the head alone: the backbone is still its initial weights... which
    # epoch 2 then trains in its last stage only, and epoch 3 one stage deeper.
    stem = "backbone.conv1.0.weight"
    last = next(k for k in first["model"] if k.startswith("backbone.layer4") and "weight" in k)
    assert torch.equal(first["model"][last], second["model"][last]) is False
    assert torch.equal(first["model"][stem], second["model"][stem])
    assert torch.equal(second["model"][stem], third["model"][stem])
    logs = done.stderr + done.stdout
    counts = [line for line in logs.splitlines() if "parameters trainable" in line]
    assert [line.split("epoch ")[1].split(":")[0] for line in counts] == ["1", "2", "3"]

    stopped = run_until(tmp_path, args, f"epoch 3/{EPOCHS} 2/", signal.SIGTERM)
    assert stopped.returncode == 75
    resumed = run_inat(tmp_path, *args, *location(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    run_dir = tmp_path / "out" / "default"
    assert without_timings(read_metrics(run_dir)) == without_timings(read_metrics(ref_dir))
    result = json.loads((run_dir / "result.json").read_text())
    assert result["test"] == json.loads((ref_dir / "result.json").read_text())["test"]


def test_gradual_unfreezing_trains_on_two_ddp_processes(tmp_path):
    args = [*FINETUNE[1:], *location(tmp_path), "trainer.cpu=true"]
    done = train_on_two_processes(tmp_path, args)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = tmp_path / "out" / "default"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["devices"]["num_processes"] == 2 and result["epochs"] == EPOCHS

    # Validation ran half of its images on each process. Had the stages that joined not
    # been reduced across processes, process 1's weights would differ from process 0's,
    # which the checkpoint holds, and so would the figures.
    cfg = compose_cfg(tmp_path, *args, base=[])
    ckpts = CheckpointManager(LocalStorage(run_dir / "checkpoints"))
    model = build_model(cfg.model, cfg.data.num_classes, cfg.data.image_size)
    model.load_state_dict(ckpts.load(ckpts.latest())["model"])
    data = build_dataloaders(cfg.data, seed=cfg.seed)
    single = evaluate(model, data.val, Accelerator(cpu=True), cfg.data.num_classes)
    logged = read_metrics(run_dir)[-1]
    assert logged["val_accuracy"] == pytest.approx(single.accuracy, abs=1e-6)
    assert logged["val_loss"] == pytest.approx(single.loss, rel=1e-4)

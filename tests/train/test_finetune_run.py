"""Fine-tuning runs train only what their strategy says, from weights in a file."""

from __future__ import annotations

import logging

import pytest
import torch
import torchvision
from helpers.runs import TINY_DATA, TINY_TRAINING

from inat.storage import LocalStorage
from inat.train import train
from inat.train.checkpoint import CheckpointManager

pytestmark = pytest.mark.slow


def test_head_strategy_trains_the_head_only_from_a_weights_file(tmp_path, tiny_cfg, caplog):
    weights = tmp_path / "resnet18.pth"
    torch.manual_seed(0)
    pretrained = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(pretrained, weights)
    cfg = tiny_cfg(
        "model=finetune",
        "model.backbone=resnet18",
        "model.strategy=head",
        f"model.weights={weights}",
        "optimizer=adam",
        "trainer.epochs=1",
        base=[*TINY_DATA, *TINY_TRAINING, "name=default"],
    )
    with caplog.at_level(logging.INFO, logger="inat"):
        result = train(cfg)
    assert result["status"] == "done"
    # What is trained, said at the start and recorded: the head's 512 x 10 + 10 parameters.
    assert result["parameters"]["trainable"] == 5130
    assert result["parameters"]["total"] > 11_000_000
    assert result["parameters"]["trainable_modules"] == ["head"]
    messages = [record.getMessage() for record in caplog.records]
    assert f"model: FineTuneModel: backbone resnet18, weights {weights}, fine-tune head" in messages
    assert any(m.startswith("parameters: 5,130 trainable of ") for m in messages)
    assert any(m.endswith("trainable modules: head") for m in messages)

    ckpts = CheckpointManager(LocalStorage(tmp_path / "out" / "default" / "checkpoints"))
    trained = ckpts.load(ckpts.latest())["model"]
    changed = {
        name
        for name, tensor in trained.items()
        if name.startswith("backbone.") and not torch.equal(tensor, pretrained[name[9:]])
    }
    assert changed == set(), f"frozen backbone tensors changed: {sorted(changed)[:5]}"
    head = {name: t for name, t in trained.items() if not name.startswith("backbone.")}
    assert head, "the checkpoint holds a head"

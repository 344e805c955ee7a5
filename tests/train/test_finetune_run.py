"""Fine-tuning runs train only what their strategy says, from weights in a file."""

from __future__ import annotations

import pytest
import torch
import torchvision
from helpers.runs import TINY_DATA, TINY_TRAINING

from inat.storage import LocalStorage
from inat.train import train
from inat.train.checkpoint import CheckpointManager

pytestmark = pytest.mark.slow


def test_head_strategy_trains_the_head_only_from_a_weights_file(tmp_path, tiny_cfg):
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
        base=[*TINY_DATA, *TINY_TRAINING],
    )
    result = train(cfg)
    assert result["status"] == "done"

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

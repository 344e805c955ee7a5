from __future__ import annotations

import torch
from hydra.utils import instantiate

from inat.models import FineTuneModel, ScratchCNN


def test_scratch_cnn_config(model_config):
    model = instantiate(model_config("scratch_cnn"), num_classes=10, image_size=64)
    assert isinstance(model, ScratchCNN)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_finetune_config(model_config):
    cfg = model_config("finetune")
    cfg.weights = None
    model = instantiate(cfg, num_classes=10, image_size=64)
    assert isinstance(model, FineTuneModel)
    assert [g["name"] for g in model.param_groups()] == ["head"]
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)

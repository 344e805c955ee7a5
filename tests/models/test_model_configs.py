from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.runs import run_inat
from hydra.utils import instantiate

import inat
from inat.config_help import yaml_comments
from inat.models import FineTuneModel, ScratchCNN, count_parameters

FINETUNE_YAML = Path(inat.__file__).parent / "configs" / "model" / "finetune.yaml"


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


def test_finetune_config_with_layer_decay_and_an_unfreeze_schedule(model_config):
    cfg = model_config("finetune")
    assert cfg.layer_decay is None and cfg.unfreeze_schedule.head_epochs is None  # off
    cfg.weights, cfg.strategy, cfg.layer_decay = None, "full", 0.5
    cfg.unfreeze_schedule.head_epochs = 1
    model = instantiate(cfg, num_classes=10, image_size=64)
    names = ["head", "stage4", "stage3", "stage2", "stage1", "stem"]
    assert [g["name"] for g in model.param_groups()] == names
    assert model.set_epoch(0) and count_parameters(model)[0] == 2048 * 10 + 10  # the head alone


@pytest.mark.slow
def test_train_help_shows_the_new_keys_with_their_comments_and_allowed_values(tmp_path):
    done = run_inat(tmp_path, "train", "model=finetune", "--help")

    assert done.returncode == 0, done.stderr
    comments = yaml_comments(FINETUNE_YAML)
    expected = {
        "layer_decay": ("null", "null or a number in (0, 1]"),
        "head_epochs": ("null", "null or an integer >= 0"),
        "every": ("1", "an integer >= 1"),
    }
    lines = {line.split(":")[0].strip(): line for line in done.stdout.splitlines()}
    for key, (value, allowed) in expected.items():
        comment = comments[f"unfreeze_schedule.{key}" if key != "layer_decay" else key]
        assert lines[key].strip() == f"{key}: {value}  # {comment}; allowed: {allowed}"
    assert "  unfreeze_schedule:" in lines["unfreeze_schedule"]
    assert "timm" in lines["backbone"]

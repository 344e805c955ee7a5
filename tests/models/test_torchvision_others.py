"""torchvision/NAME: any other classification model of torchvision, with a new head, trained
by the head and full strategies; the stages inat knows are those of its six."""

from __future__ import annotations

import pytest
import torch
import torchvision

from inat.errors import ConfigError
from inat.models.backbones import find_backbone

NAME = "torchvision/mobilenet_v3_small"


def test_its_imagenet_head_is_replaced_and_its_weights_come_from_a_file(make_finetune, tmp_path):
    torch.manual_seed(0)
    pretrained = torchvision.models.mobilenet_v3_small(weights=None).state_dict()
    torch.save(pretrained, tmp_path / "mobilenet.pth")
    model = make_finetune(
        backbone=NAME, strategy="full", weights=str(tmp_path / "mobilenet.pth"), image_size=32
    ).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    loaded = model.backbone.state_dict()
    assert not any(key.startswith("classifier.3") for key in loaded)  # the 1000-class layer
    for key, tensor in loaded.items():
        torch.testing.assert_close(tensor, pretrained[key])


def test_the_head_strategy_trains_the_new_head_alone(make_finetune):
    model = make_finetune(backbone=NAME, strategy="head", image_size=32)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


def test_last_k_is_refused_saying_what_works(make_finetune):
    with pytest.raises(ConfigError, match="does not know the stages of torchvision/mobilenet"):
        make_finetune(backbone=NAME, strategy="last_k", last_k=1, image_size=32)


def test_a_name_torchvision_does_not_know_names_close_ones():
    with pytest.raises(ConfigError, match="Did you mean torchvision/mobilenet_v2"):
        find_backbone("torchvision/mobilenetv3")

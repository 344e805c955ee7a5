from __future__ import annotations

import pytest
import torch
from torch import nn

from inat.errors import ConfigError
from inat.models import count_parameters
from inat.models.backbones import BACKBONES
from inat.models.state_dicts import load_weights

# (backbone, strategy, last_k, image_size, prefixes of exactly the trainable parameter names)
CASES = [
    ("resnet50", "head", 1, 64, ("head.",)),
    ("resnet50", "last_k", 1, 64, ("head.", "backbone.layer4.")),
    ("resnet50", "last_k", 2, 64, ("head.", "backbone.layer3.", "backbone.layer4.")),
    ("resnet50", "full", 1, 64, ("head.", "backbone.")),
    ("convnext_tiny", "head", 1, 64, ("head.",)),
    (
        "convnext_tiny",
        "last_k",
        1,
        64,
        ("head.", "backbone.features.6.", "backbone.features.7.", "backbone.classifier.0."),
    ),
    ("convnext_tiny", "full", 1, 64, ("head.", "backbone.")),
    (
        "efficientnet_v2_s",
        "last_k",
        2,
        64,
        ("head.", "backbone.features.6.", "backbone.features.7."),
    ),
    (
        "vit_b_16",
        "last_k",
        1,
        32,
        ("head.", "backbone.encoder.layers.encoder_layer_11.", "backbone.encoder.ln."),
    ),
]


def trainable_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(("backbone", "strategy", "last_k", "image_size", "prefixes"), CASES)
def test_strategy_trains_exactly_the_expected_parameters(
    make_finetune, backbone, strategy, last_k, image_size, prefixes
):
    model = make_finetune(
        backbone=backbone, strategy=strategy, last_k=last_k, image_size=image_size
    )
    params = dict(model.named_parameters())
    expected = {name for name in params if name.startswith(prefixes)}

    assert trainable_names(model) == expected
    trainable, total = count_parameters(model)
    assert trainable == sum(params[name].numel() for name in expected)
    assert total == sum(p.numel() for p in params.values())
    assert model(torch.randn(2, 3, image_size, image_size)).shape == (2, 10)


@pytest.mark.parametrize(("backbone", "features"), [("resnet50", 2048), ("convnext_tiny", 768)])
def test_head_strategy_trains_the_new_head_only(make_finetune, backbone, features):
    model = make_finetune(backbone=backbone, strategy="head")
    assert count_parameters(model)[0] == features * 10 + 10
    (group,) = model.param_groups()
    assert group["name"] == "head"
    assert group["lr_scale"] == 1.0
    assert group["params"] == list(model.head.parameters())


@pytest.mark.parametrize("strategy", ["last_k", "full"])
def test_backbone_has_its_own_param_group(make_finetune, strategy):
    model = make_finetune(strategy=strategy, last_k=2, backbone_lr_scale=0.25)
    groups = {g["name"]: g for g in model.param_groups()}

    assert set(groups) == {"head", "backbone"}
    assert groups["head"]["lr_scale"] == 1.0
    assert groups["backbone"]["lr_scale"] == 0.25
    assert groups["head"]["params"] == list(model.head.parameters())
    trainable_backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    assert groups["backbone"]["params"] == trainable_backbone
    if strategy == "full":
        assert trainable_backbone == list(model.backbone.parameters())


def test_frozen_batch_norm_stays_in_eval_mode(make_finetune):
    model = make_finetune(strategy="last_k", last_k=1).train()
    norms = {n: m for n, m in model.backbone.named_modules() if isinstance(m, nn.BatchNorm2d)}
    frozen = {n: m for n, m in norms.items() if not n.startswith("layer4.")}
    assert frozen and len(frozen) < len(norms)
    assert not any(m.training for m in frozen.values())
    assert all(m.training for n, m in norms.items() if n not in frozen)
    assert model.head.training

    before = {n: m.running_mean.clone() for n, m in norms.items()}
    model(torch.randn(4, 3, 64, 64))
    for name, module in norms.items():
        assert torch.equal(module.running_mean, before[name]) == (name in frozen)

    model.eval()
    assert not any(m.training for m in model.modules())


def test_full_strategy_trains_every_batch_norm(make_finetune):
    model = make_finetune(strategy="full").train()
    assert all(m.training for m in model.modules())


def test_vit_position_embeddings_are_resized_to_the_image_size():
    vit = BACKBONES["vit_b_16"]
    state = vit.create(224, None, None).state_dict()
    adapted = vit.adapt_state_dict(state, 48)

    assert adapted["encoder.pos_embedding"].shape == (1, 3 * 3 + 1, 768)
    # the class token's embedding is kept as it is
    assert torch.equal(adapted["encoder.pos_embedding"][:, 0], state["encoder.pos_embedding"][:, 0])
    load_weights(vit.create(48, None, None), adapted, "vit-224.pt", "vit_b_16")


def test_last_k_beyond_the_backbone_s_stages_names_the_key(make_finetune):
    # The schema checks last_k >= 1; how many stages there are only the network knows.
    with pytest.raises(ConfigError) as info:
        make_finetune(strategy="last_k", last_k=5)
    assert "model.last_k=5 is not allowed; resnet18 has 4 stages, choose 1 to 4" in str(info.value)

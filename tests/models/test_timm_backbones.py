"""timm models as backbones: which library a name means, their stages, image sizes and weights."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from inat.errors import ConfigError
from inat.models import count_parameters
from inat.models.backbones import BACKBONES, TimmBackbone, TorchvisionBackbone, find_backbone


def trainable_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_the_six_names_stay_torchvision_s(name):
    assert isinstance(find_backbone(name), TorchvisionBackbone)


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("timm/resnet18", "resnet18"),  # timm's own version of a torchvision name
        ("resnet18.a1_in1k", "resnet18.a1_in1k"),  # a tag: timm's
        ("timm/convnext_tiny.fb_in22k", "convnext_tiny.fb_in22k"),
        ("test_vit", "test_vit"),  # any other name: timm's
    ],
)
def test_other_names_are_timm_s(name, model):
    backbone = find_backbone(name)
    assert isinstance(backbone, TimmBackbone)
    assert (backbone.name, backbone.model) == (name, model)


@pytest.mark.parametrize(
    ("name", "suggested"),
    [
        ("resnet51", "resnet51q"),
        ("convnext_tiny.fb_in23k", "convnext_tiny.fb_in22k"),  # an unknown tag
        ("timm/vit_tiny_patch16_225", "vit_tiny_patch16_224"),
    ],
)
def test_an_unknown_name_is_refused_naming_close_matches(name, suggested):
    with pytest.raises(ConfigError) as info:
        find_backbone(name)
    message = str(info.value)
    assert message.startswith(f"model.backbone={name!r} is neither torchvision's (resnet18, ")
    assert "Did you mean " in message and suggested in message.split("Did you mean ")[1]
    assert "Use a torchvision name or a name of timm.list_models()" in message


# (backbone, strategy, last_k, image_size, prefixes of exactly the trainable parameter names)
CASES = [
    ("test_resnet", "head", 1, 32, ("head.",)),
    ("test_resnet", "last_k", 1, 32, ("head.", "backbone.layer4.")),
    ("test_resnet", "last_k", 2, 32, ("head.", "backbone.layer3.", "backbone.layer4.")),
    ("test_resnet", "full", 1, 32, ("head.", "backbone.")),
    # the final norm belongs with the last block
    ("test_vit", "last_k", 1, 32, ("head.", "backbone.blocks.5.", "backbone.norm.")),
    # the head's norm, left when the classifier goes, belongs with the last stage
    ("test_convnext", "last_k", 1, 32, ("head.", "backbone.stages.3.", "backbone.head.norm.")),
    ("test_efficientnet", "last_k", 1, 32, ("head.", "backbone.blocks.4.", "backbone.conv_head.",
                                            "backbone.bn2.")),
]  # fmt: skip


@pytest.mark.parametrize(("backbone", "strategy", "last_k", "image_size", "prefixes"), CASES)
def test_strategy_trains_exactly_the_expected_timm_parameters(
    make_finetune, backbone, strategy, last_k, image_size, prefixes
):
    model = make_finetune(
        backbone=backbone, strategy=strategy, last_k=last_k, image_size=image_size
    )
    params = dict(model.named_parameters())
    expected = {name for name in params if name.startswith(prefixes)}

    assert trainable_names(model) == expected
    assert count_parameters(model)[0] == sum(params[name].numel() for name in expected)
    assert model(torch.randn(2, 3, image_size, image_size)).shape == (2, 10)


def test_last_k_beyond_a_timm_model_s_stages_names_the_key(make_finetune):
    with pytest.raises(ConfigError) as info:
        make_finetune(backbone="test_vit", strategy="last_k", last_k=7, image_size=32)
    assert "model.last_k=7 is not allowed; test_vit has 6 stages, choose 1 to 6" in str(info.value)


def test_a_vit_is_built_for_the_image_size(make_finetune):
    model = make_finetune(backbone="test_vit", image_size=48)
    assert model.backbone.patch_embed.img_size == (48, 48)
    assert model(torch.randn(2, 3, 48, 48)).shape == (2, 10)


@pytest.mark.parametrize("backbone", ["test_vit", "vit_b_16"])
def test_an_image_size_off_the_patch_grid_is_refused(make_finetune, backbone):
    with pytest.raises(ConfigError) as info:
        make_finetune(backbone=backbone, image_size=40)
    assert str(info.value) == (
        f"data.image_size=40 is not allowed with model.backbone={backbone}: use a multiple of "
        f"{backbone}'s patch size 16 (e.g. 32 or 48)"
    )


@pytest.fixture
def test_vit_state() -> dict[str, torch.Tensor]:
    """A randomly initialised timm test_vit's state dict, at its default size (160 px)."""
    torch.manual_seed(0)
    return timm.create_model("test_vit").state_dict()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_a_timm_backbone_gets_the_weights_of_the_file(
    make_finetune, test_vit_state, tmp_path, suffix
):
    path = tmp_path / f"test_vit{suffix}"
    if suffix == ".safetensors":
        save_file(test_vit_state, path)
    else:
        torch.save(test_vit_state, path)

    model = make_finetune(backbone="test_vit", weights=str(path), image_size=32)
    loaded = model.backbone.state_dict()

    assert set(test_vit_state) - set(loaded) == {"head.weight", "head.bias"}  # the ImageNet head
    changed = {
        key for key, tensor in loaded.items() if not torch.equal(tensor, test_vit_state[key])
    }
    # timm's own loading resized the position embeddings from 10 x 10 patches to 2 x 2
    assert changed == {"pos_embed"}
    assert loaded["pos_embed"].shape == (1, 1 + 2 * 2, 64)
    assert "state_dict" not in model.backbone.pretrained_cfg  # no second copy kept


def test_a_timm_state_of_another_architecture_is_refused_naming_the_keys(
    make_finetune, test_vit_state, tmp_path
):
    path = tmp_path / "vit.pth"
    torch.save(test_vit_state, path)
    with pytest.raises(ConfigError) as info:
        make_finetune(backbone="test_convnext", weights=str(path), image_size=32)
    message = str(info.value)
    assert f"model.weights='{path}' does not fit test_convnext: 101 missing keys (" in message
    assert "80 unexpected keys (blocks.0.attn.proj.bias, " in message


def test_a_fine_tuned_timm_head_is_a_shape_mismatch(make_finetune, test_vit_state, tmp_path):
    test_vit_state["head.weight"] = torch.zeros(10, 64)
    path = tmp_path / "ten-classes.pth"
    torch.save(test_vit_state, path)
    with pytest.raises(ConfigError, match=r"head\.weight \(10, 64\) instead of \(1000, 64\)"):
        make_finetune(backbone="test_vit", weights=str(path), image_size=32)


def test_timm_weights_names_and_a_model_without_pretrained_weights(make_finetune):
    with pytest.raises(ConfigError) as info:
        make_finetune(backbone="test_vit", weights="IMAGENET1K_V1", image_size=32)
    assert "is neither a timm weights name of test_vit (DEFAULT, pretrained) nor an" in str(
        info.value
    )
    with pytest.raises(ConfigError) as info:
        make_finetune(backbone="test_vit4", weights="pretrained", image_size=32)
    assert str(info.value).startswith("timm has no pretrained weights for test_vit4")
    assert "pass model.weights=null for random initialisation" in str(info.value)


def test_a_timm_model_without_stages_trains_head_or_full_only(make_finetune):
    # timm's PiT says nothing of its stages (no group_matcher); full trains it as one.
    model = make_finetune(backbone="pit_ti_224", strategy="full", image_size=224)
    assert [g["name"] for g in model.param_groups()] == ["head", "backbone"]
    with pytest.raises(ConfigError, match="timm's pit_ti_224 does not say what its stages are"):
        make_finetune(backbone="pit_ti_224", strategy="last_k", image_size=224)

"""Layer-wise learning-rate decay: one param group per stage, each at the configured rate."""

from __future__ import annotations

import pytest

from inat.compose import compose
from inat.train.optim import build_optimizer

LR, SCALE, DECAY = 0.01, 0.5, 0.7


def optimizer_lrs(model) -> dict[str, float]:
    """The learning rate the trainer's optimizer gives each of the model's param groups."""
    cfg = compose(["model=finetune", "optimizer=adam", f"optimizer.lr={LR}"]).optimizer
    optimizer = build_optimizer(cfg, model.param_groups())
    return {group["name"]: group["lr"] for group in optimizer.param_groups}


@pytest.mark.parametrize(
    ("backbone", "image_size", "stages"),
    [("resnet18", 64, 4), ("test_vit", 32, 6), ("test_convnext", 32, 4)],
)
def test_each_stage_learns_one_factor_of_decay_slower_than_the_next(
    make_finetune, backbone, image_size, stages
):
    model = make_finetune(
        backbone=backbone,
        strategy="full",
        image_size=image_size,
        backbone_lr_scale=SCALE,
        layer_decay=DECAY,
    )

    lrs = optimizer_lrs(model)

    expected = {"head": LR} | {
        f"stage{i}": LR * SCALE * DECAY ** (stages - i + 1) for i in range(stages, 0, -1)
    }
    expected["stem"] = LR * SCALE * DECAY ** (stages + 1)
    assert list(lrs) == list(expected)  # the head, then deepest first
    assert lrs == pytest.approx(expected)
    # every parameter in exactly one group
    grouped = [id(p) for g in model.param_groups() for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())


def test_last_k_decays_only_the_stages_it_trains(make_finetune):
    model = make_finetune(strategy="last_k", last_k=2, backbone_lr_scale=SCALE, layer_decay=DECAY)
    groups = {g["name"]: g for g in model.param_groups()}

    assert optimizer_lrs(model) == pytest.approx(
        {"head": LR, "stage4": LR * SCALE * DECAY, "stage3": LR * SCALE * DECAY**2}
    )
    assert groups["stage4"]["params"] == list(model.backbone.layer4.parameters())
    assert groups["stage3"]["params"] == list(model.backbone.layer3.parameters())


def test_without_layer_decay_the_backbone_is_one_group(make_finetune):
    model = make_finetune(backbone="test_vit", strategy="full", image_size=32, layer_decay=None)
    assert optimizer_lrs(model) == pytest.approx({"head": LR, "backbone": LR * 0.1})

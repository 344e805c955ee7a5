"""Gradual unfreezing: the head alone, then one more stage every few epochs, deepest first."""

from __future__ import annotations

import pytest
from torch import nn

from inat.compose import compose
from inat.errors import ConfigError
from inat.models import count_parameters


def numel(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def test_a_torchvision_model_unfreezes_every_stage_then_the_stem(make_finetune):
    model = make_finetune(
        backbone="resnet18", strategy="full", unfreeze_schedule={"head_epochs": 2, "every": 1}
    )
    b = model.backbone
    stages = [b.layer4, b.layer3, b.layer2, b.layer1]
    head = numel(model.head)
    expected = [head, head] + [head + numel(*stages[:k]) for k in range(1, 5)]
    expected += [head + numel(*stages, b.conv1, b.bn1)] * 2  # the stem last, then all of it

    counts = []
    for epoch in range(len(expected)):
        model.set_epoch(epoch)
        counts.append(count_parameters(model)[0])

    assert counts == expected
    assert [model.trainable_parameters(epoch) for epoch in range(len(expected))] == expected
    assert expected[-1] == count_parameters(model)[1]  # in the end, everything


def test_a_timm_model_unfreezes_up_to_last_k_stages(make_finetune):
    model = make_finetune(
        backbone="test_convnext",
        strategy="last_k",
        last_k=2,
        image_size=32,
        unfreeze_schedule={"head_epochs": 1, "every": 2},
    )
    b = model.backbone
    head = numel(model.head)
    last = head + numel(b.stages[3], b.head.norm)  # the head's norm goes with the last stage
    expected = [head, last, last, last + numel(b.stages[2]), last + numel(b.stages[2])]
    expected.append(expected[-1])  # last_k=2: nothing more

    counts, changed = [], []
    for epoch in range(len(expected)):
        changed.append(model.set_epoch(epoch))
        counts.append(count_parameters(model)[0])

    assert counts == expected
    assert [model.trainable_parameters(epoch) for epoch in range(len(expected))] == expected
    # A new trainable set, and only then: the trainer rebuilds its DDP wrapper.
    assert changed == [True, True, False, True, False, False]


def test_the_param_groups_hold_every_stage_the_schedule_will_train_from_the_start(make_finetune):
    model = make_finetune(
        strategy="full", layer_decay=0.5, unfreeze_schedule={"head_epochs": 1, "every": 1}
    )
    before = [(g["name"], [id(p) for p in g["params"]]) for g in model.param_groups()]
    model.set_epoch(0)  # the head alone

    after = [(g["name"], [id(p) for p in g["params"]]) for g in model.param_groups()]

    assert after == before
    assert [name for name, _ in after] == ["head", "stage4", "stage3", "stage2", "stage1", "stem"]
    assert sum(len(ids) for _, ids in after) == len(list(model.parameters()))


def test_frozen_stages_keep_their_batch_norms_in_eval_mode(make_finetune):
    model = make_finetune(strategy="full", unfreeze_schedule={"head_epochs": 1, "every": 1})
    model.train()
    norms = {n: m for n, m in model.backbone.named_modules() if isinstance(m, nn.BatchNorm2d)}

    model.set_epoch(0)
    assert not any(m.training for m in norms.values())
    model.set_epoch(1)  # layer4 unfrozen
    assert {n for n, m in norms.items() if m.training} == {
        n for n in norms if n.startswith("layer4.")
    }
    assert model.head.training


def test_without_a_schedule_set_epoch_changes_nothing(make_finetune):
    model = make_finetune(strategy="last_k", last_k=1)
    trainable = count_parameters(model)[0]
    assert [model.set_epoch(epoch) for epoch in range(3)] == [False] * 3
    assert count_parameters(model)[0] == trainable == model.trainable_parameters(0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.unfreeze_schedule.head_epochs=2"],  # with the default strategy, head
            "model.unfreeze_schedule.head_epochs=2 is not allowed: use null with "
            "model.strategy=head, or model.strategy=last_k or full to unfreeze.",
        ),
        (
            ["model.strategy=full", "model.unfreeze_schedule.head_epochs=-1"],
            "model.unfreeze_schedule.head_epochs=-1 is not allowed: use null or an integer >= 0.",
        ),
        (
            ["model.strategy=full", "model.unfreeze_schedule={head_epochs:1,every:0}"],
            "model.unfreeze_schedule.every=0 is not allowed: use an integer >= 1.",
        ),
        (
            ["model.layer_decay=0"],
            "model.layer_decay=0.0 is not allowed: use null or a number in (0, 1].",
        ),
    ],
)
def test_the_schema_refuses_a_bad_schedule_or_decay(overrides, message):
    with pytest.raises(ConfigError) as info:
        compose(["model=finetune", *overrides])
    assert str(info.value) == message

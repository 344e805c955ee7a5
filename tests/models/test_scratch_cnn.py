from __future__ import annotations

import pytest
import torch
from torch import nn

from inat.errors import ConfigError
from inat.models import count_parameters


@pytest.mark.parametrize(
    ("image_size", "kernel_size"),
    [(32, 3), (64, 5), (100, [3, 3, 5, 5, 7]), (224, 5)],
)
def test_output_shape_and_dense_input(make_scratch, image_size, kernel_size):
    filters = [8, 16, 16, 32, 24]
    model = make_scratch(filters=filters, kernel_size=kernel_size, image_size=image_size).eval()
    side = image_size // 32  # 5 halvings, flooring like MaxPool2d(2)

    assert model.classifier[1].in_features == 24 * side * side
    x = torch.randn(2, 3, image_size, image_size)
    assert model.features(x).shape == (2, 24, side, side)
    assert model(x).shape == (2, 10)


@pytest.mark.parametrize("name", ["relu", "gelu", "silu", "mish"])
def test_activation(make_scratch, name):
    model = make_scratch(activation=name)
    expected = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "mish": nn.Mish}[name]
    # one per conv block and one after the dense layer
    assert sum(isinstance(m, expected) for m in model.modules()) == 6


def test_batch_norm_follows_each_conv(make_scratch):
    model = make_scratch(batch_norm=True)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [n.num_features for n in norms] == [c.out_channels for c in convs]
    assert all(c.bias is None for c in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in make_scratch(batch_norm=False).modules())


def test_param_groups_hold_every_parameter(make_scratch):
    model = make_scratch()
    (group,) = model.param_groups()
    assert group["name"] == "model"
    assert group["lr_scale"] == 1.0
    assert group["params"] == list(model.parameters())
    trainable, total = count_parameters(model)
    assert trainable == total == sum(p.numel() for p in group["params"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"activation": "swish"},
            "model.activation='swish' is not allowed; choose one of relu, gelu, silu, mish",
        ),
        (
            {"filters": [32, 64, 128, 256]},
            "model.filters must list 5 channel counts, got 4: [32, 64, 128, 256]",
        ),
        ({"filters": 32}, "model.filters must list 5 channel counts, got 32"),
        ({"filters": [32, 0, 64, 64, 64]}, "model.filters[1]=0 must be a positive integer"),
        ({"kernel_size": 4}, "model.kernel_size=4 must be odd"),
        ({"kernel_size": [3, 3]}, "model.kernel_size must be one size or a list of 5, got 2"),
        ({"kernel_size": [3, 3, 3, 3, -1]}, "model.kernel_size[4]=-1 must be a positive integer"),
        (
            {"image_size": 16},
            "data.image_size=16 is too small for 5 max-pool blocks; use at least 32",
        ),
        ({"dropout": 1.0}, "model.dropout=1.0 must be a number in [0, 1)"),
        ({"dropout": -0.1}, "model.dropout=-0.1 must be a number in [0, 1)"),
        ({"dense_neurons": 0}, "model.dense_neurons=0 must be a positive integer"),
        ({"batch_norm": "yes"}, "model.batch_norm='yes' must be true or false"),
        ({"num_classes": 0}, "data.num_classes=0 must be a positive integer"),
    ],
)
def test_bad_value_names_the_key(make_scratch, overrides, message):
    with pytest.raises(ConfigError) as info:
        make_scratch(**overrides)
    assert message in str(info.value)

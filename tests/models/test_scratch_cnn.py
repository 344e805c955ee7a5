from __future__ import annotations

import pytest
import torch
from torch import nn

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


@pytest.mark.parametrize(("pool", "reduce"), [("avg", torch.mean), ("max", torch.amax)])
def test_a_global_pool_gives_the_dense_layer_one_value_per_channel(make_scratch, pool, reduce):
    model = make_scratch(filters=[8, 16, 16, 32, 24], pool=pool, image_size=128).eval()
    assert model.classifier[2].in_features == 24  # not 24 x 4 x 4
    x = torch.randn(2, 3, 128, 128)
    maps = model.features(x)
    pooled = model.classifier[1](model.classifier[0](maps))
    torch.testing.assert_close(pooled, reduce(maps, dim=(2, 3)))
    # The same weights take any image size.
    assert model(torch.randn(2, 3, 96, 96)).shape == (2, 10)

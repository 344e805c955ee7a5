"""The original project's from-scratch CNN."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from inat import schema
from inat.models.params import ParamGroup, trainable_groups
from inat.schema import NUM_BLOCKS

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
}
assert tuple(ACTIVATIONS) == schema.ACTIVATIONS, "the schema's choices and the classes differ"


def _kernel_sizes(kernel_size: int | Sequence[int]) -> list[int]:
    """One odd size per block: `kernel_size` itself, or the same size for all."""
    if isinstance(kernel_size, int):
        return [kernel_size] * NUM_BLOCKS
    return list(kernel_size)


POOLS: dict[str, type[nn.Module] | None] = {
    "flatten": None,
    "avg": nn.AdaptiveAvgPool2d,
    "max": nn.AdaptiveMaxPool2d,
}
assert tuple(POOLS) == schema.POOLS, "the schema's choices and the pools differ"


class ScratchCNN(nn.Module):
    """5 x (conv -> [batch norm] -> activation -> 2x2 max-pool), then [global pool] -> dense
    -> dropout -> output.

    Convolutions keep the side of the image ("same" padding), so only the pools
    shrink it: with `pool` flatten (the original's) the dense layer sees
    `filters[-1] * (image_size // 32) ** 2` features; with avg or max, one per channel
    of the last block, its global average or maximum (far fewer weights in the dense
    layer, and any image size gives the same model).
    The values come checked from the config's schema (`inat.schema.ScratchCNNConfig`).
    """

    def __init__(
        self,
        *,
        filters: Sequence[int],
        kernel_size: int | Sequence[int],
        activation: str,
        batch_norm: bool,
        dropout: float,
        dense_neurons: int,
        pool: str,
        num_classes: int,
        image_size: int,
    ) -> None:
        super().__init__()
        channels = list(filters)
        kernels = _kernel_sizes(kernel_size)
        act = ACTIVATIONS[activation]
        assert len(channels) == len(kernels) == NUM_BLOCKS, "the schema allows 5 blocks only"

        blocks = []
        in_channels = 3
        for out_channels, k in zip(channels, kernels, strict=True):
            layers: list[nn.Module] = [
                # A bias before batch norm is cancelled by its mean subtraction.
                nn.Conv2d(in_channels, out_channels, k, padding=k // 2, bias=not batch_norm)
            ]
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers += [act(), nn.MaxPool2d(2)]
            blocks.append(nn.Sequential(*layers))
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)

        side = image_size // 2**NUM_BLOCKS
        global_pool = POOLS[pool]
        self.classifier = nn.Sequential(
            *([global_pool(1)] if global_pool else []),
            nn.Flatten(),
            nn.Linear(channels[-1] * (1 if global_pool else side * side), dense_neurons),
            act(),
            nn.Dropout(dropout),
            nn.Linear(dense_neurons, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of images (N, 3, image_size, image_size)."""
        return self.classifier(self.features(x))

    def param_groups(self) -> list[ParamGroup]:
        """One group with every parameter at the base learning rate."""
        return trainable_groups(("model", self, 1.0))

"""The original project's from-scratch CNN."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from inat.errors import ConfigError
from inat.models import checks
from inat.models.params import ParamGroup, trainable_groups

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
}
NUM_BLOCKS = 5
MIN_IMAGE_SIZE = 2**NUM_BLOCKS  # each block halves the side; 5 halvings of 32 leave 1 pixel


def _as_list(value: object) -> list | None:
    """`value` as a list if it is a sequence (Hydra passes a ListConfig), else None."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return None


def _filters(value: object) -> list[int]:
    values = _as_list(value)
    if values is None or len(values) != NUM_BLOCKS:
        got = repr(value) if values is None else f"{len(values)}: {values}"
        raise ConfigError(f"model.filters must list {NUM_BLOCKS} channel counts, got {got}")
    return [checks.positive_int(f"model.filters[{i}]", v) for i, v in enumerate(values)]


def _kernel_sizes(value: object) -> list[int]:
    values = _as_list(value)
    if values is None:
        sizes, keys = [value] * NUM_BLOCKS, ["model.kernel_size"] * NUM_BLOCKS
    elif len(values) == NUM_BLOCKS:
        sizes, keys = values, [f"model.kernel_size[{i}]" for i in range(NUM_BLOCKS)]
    else:
        raise ConfigError(
            f"model.kernel_size must be one size or a list of {NUM_BLOCKS}, "
            f"got {len(values)}: {values}"
        )
    for key, size in zip(keys, sizes, strict=True):
        if checks.positive_int(key, size) % 2 == 0:
            # An even kernel cannot be padded symmetrically to keep the side unchanged.
            raise ConfigError(
                f"{key}={size} must be odd so that a convolution keeps the image size"
            )
    return sizes


class ScratchCNN(nn.Module):
    """5 x (conv -> [batch norm] -> activation -> 2x2 max-pool), then dense -> dropout -> output.

    Convolutions keep the side of the image ("same" padding), so only the pools
    shrink it: the dense layer sees `filters[-1] * (image_size // 32) ** 2` features.
    Every argument is checked here, so a bad config fails before any data is read.
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
        num_classes: int,
        image_size: int,
    ) -> None:
        super().__init__()
        channels = _filters(filters)
        kernels = _kernel_sizes(kernel_size)
        act = ACTIVATIONS[checks.choice("model.activation", activation, ACTIVATIONS)]
        batch_norm = checks.flag("model.batch_norm", batch_norm)
        dropout = checks.probability("model.dropout", dropout)
        dense_neurons = checks.positive_int("model.dense_neurons", dense_neurons)
        num_classes = checks.positive_int("data.num_classes", num_classes)
        if checks.positive_int("data.image_size", image_size) < MIN_IMAGE_SIZE:
            raise ConfigError(
                f"data.image_size={image_size} is too small for {NUM_BLOCKS} max-pool blocks; "
                f"use at least {MIN_IMAGE_SIZE}"
            )

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
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels[-1] * side * side, dense_neurons),
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

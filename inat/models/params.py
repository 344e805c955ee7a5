"""Parameter counts and optimizer param groups shared by the models."""

from __future__ import annotations

from typing import TypedDict

from torch import nn


class ParamGroup(TypedDict):
    """One optimizer param group; the trainer sets its lr to the base lr * `lr_scale`."""

    params: list[nn.Parameter]
    lr_scale: float
    name: str


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """The numbers of (trainable, all) parameter elements of `model`."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def trainable_groups(*groups: tuple[str, nn.Module, float]) -> list[ParamGroup]:
    """A param group per (name, module, lr_scale) with the module's trainable parameters.

    Groups without trainable parameters are left out.
    """
    result = []
    for name, module, lr_scale in groups:
        params = [p for p in module.parameters() if p.requires_grad]
        if params:
            result.append(ParamGroup(params=params, lr_scale=lr_scale, name=name))
    return result

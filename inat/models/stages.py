"""What of a backbone a fine-tuning strategy trains, at which learning rate, from which epoch.

The trained backbone is cut into parts, deepest first: its stages (see inat.models.backbones)
from the last to the first, then the stem. `last_k` trains the first k parts, `full` all.
Layer-wise learning-rate decay (`model.layer_decay`) scales each part by one more factor of
the decay than the part after it: the last stage at backbone_lr_scale * decay, the one before
at backbone_lr_scale * decay**2, ..., the stem at backbone_lr_scale * decay**(stages + 1).
Gradual unfreezing (`model.unfreeze_schedule`) trains the head alone for `head_epochs` epochs,
then one more part, in that order, every `every` epochs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    """Backbone parameters trained or frozen together, at one learning-rate scale."""

    name: str  # stage1 (the shallowest) ... stageN, stem; or backbone: all of it at once
    params: tuple[str, ...]  # parameter names in the model
    lr_scale: float


def backbone_parts(
    stages: list[tuple[str, ...]],
    stem: tuple[str, ...],
    *,
    strategy: str,
    last_k: int,
    backbone_lr_scale: float,
    layer_decay: float | None,
) -> list[Part]:
    """The parts `strategy` trains, deepest first, each with its lr scale (see the module's
    docstring); `stages` are shallow to deep. none for the head strategy."""
    if strategy == "head":
        return []
    decay = 1.0 if layer_decay is None else layer_decay
    n = len(stages)
    parts = [
        Part(f"stage{i + 1}", stages[i], backbone_lr_scale * decay ** (n - i))
        for i in reversed(range(n))
    ]
    parts.append(Part("stem", stem, backbone_lr_scale * decay ** (n + 1)))
    return parts[:last_k] if strategy == "last_k" else parts


@dataclass(frozen=True)
class UnfreezeSchedule:
    """model.unfreeze_schedule: the head alone for `head_epochs` epochs, then one more part
    every `every` epochs."""

    head_epochs: int
    every: int

    def unfrozen(self, epoch: int, parts: int) -> int:
        """How many of `parts` parts (deepest first) train in the 0-based `epoch`."""
        if epoch < self.head_epochs:
            return 0
        return min(parts, 1 + (epoch - self.head_epochs) // self.every)

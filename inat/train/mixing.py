"""Mixup and CutMix of training batches (trainer.mixup_alpha, trainer.cutmix_alpha), with the
loss and the accuracy that go with them.

    mixing = Mixing(cfg.trainer, num_classes)
    images, targets = mixing(images, labels)      # normalized images, on the device
    loss = mixing.loss(logits, targets)
    correct = mixing.correct(logits, targets)     # for train_accuracy

The mixing is timm's Mixup, per batch: the batch is blended (mixup) or patched (CutMix)
with itself in reverse order, by one share drawn for the batch; with both on, each mixed
batch gets one of the two, evenly. trainer.label_smoothing is folded into the mixed
one-hot targets, as timm's recipe does, and the loss is the cross-entropy against those
soft targets (timm's SoftTargetCrossEntropy). timm draws from numpy's global generator,
which checkpoints save, so a resumed run mixes as an uninterrupted one would.

Under mixing, a prediction counts as correct when it is the class with the largest share
of its image's mixed target: the label of the image that makes up more of the mix (the
larger blend weight, or the larger area). Every image counts, so train_accuracy stays a
share of all training images; it reads lower than without mixing, since part of every
mixed image is another class.
"""

from __future__ import annotations

import torch
from timm.data import Mixup
from timm.data.mixup import mixup_target
from timm.loss import SoftTargetCrossEntropy
from torch import nn

from inat.schema import TrainerConfig


class Mixing:
    """Mixup and CutMix of a batch as trainer.mixup_alpha, trainer.cutmix_alpha and
    trainer.mix_prob say, with trainer.label_smoothing; with both alphas 0, nothing is
    mixed and the loss is the plain cross-entropy with that smoothing."""

    def __init__(self, trainer: TrainerConfig, num_classes: int) -> None:
        self.num_classes = num_classes
        self.smoothing = trainer.label_smoothing
        self.active = trainer.mixup_alpha > 0 or trainer.cutmix_alpha > 0
        self.mixup: Mixup | None = None
        self.criterion: nn.Module = nn.CrossEntropyLoss(label_smoothing=self.smoothing)
        if self.active:
            self.mixup = Mixup(
                mixup_alpha=trainer.mixup_alpha,
                cutmix_alpha=trainer.cutmix_alpha,
                prob=trainer.mix_prob,
                label_smoothing=self.smoothing,
                num_classes=num_classes,
            )
            self.criterion = SoftTargetCrossEntropy()

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch mixed (timm mixes `images` in place) and its targets: soft targets
        (N, num_classes) that sum to 1 per image; `images` and `labels` as they are when
        mixing is off.

        timm pairs image i with image N-1-i and refuses a batch of odd size, which the last
        batch of an epoch on a process can be: then the last image is left out of the
        mixing and keeps its own (smoothed) target.
        """
        if self.mixup is None:
            return images, labels
        if len(labels) % 2 == 0:
            return self.mixup(images, labels)
        last = mixup_target(labels[-1:], self.num_classes, smoothing=self.smoothing)
        if len(labels) == 1:
            return images, last
        mixed, targets = self.mixup(images[:-1], labels[:-1])
        return torch.cat((mixed, images[-1:])), torch.cat((targets, last))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean loss of `logits` against the targets `__call__` returned."""
        return self.criterion(logits, targets)

    def correct(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """How many predictions are right (a 0-dim tensor): the class with the largest share
        of the target, which without mixing is the label."""
        labels = targets.argmax(1) if targets.ndim == 2 else targets
        return (logits.argmax(1) == labels).sum()

"""Loss, accuracy, per-class accuracy and confusion matrix of a model on a data loader."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader


@dataclass
class Evaluation:
    """Metrics over every sample of a data set, identical on every process."""

    loss: float
    accuracy: float
    confusion: list[list[int]]  # rows: true class, columns: predicted class

    def per_class_accuracy(self, classes: list[str]) -> dict[str, float]:
        """Recall of each class: correct / samples of that class."""
        return {
            name: row[i] / total if (total := sum(row)) else 0.0
            for i, (name, row) in enumerate(zip(classes, self.confusion, strict=True))
        }


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, loader: DataLoader, accelerator: Accelerator, num_classes: int
) -> Evaluation:
    """Evaluate on every sample once: gather_for_metrics drops the padding DDP adds."""
    model.eval()
    losses, preds, labels = [], [], []
    for images, targets in loader:
        logits = model(images)
        loss = F.cross_entropy(logits.float(), targets, reduction="none")
        loss, pred, targets = accelerator.gather_for_metrics((loss, logits.argmax(1), targets))
        losses.append(loss.cpu())
        preds.append(pred.cpu())
        labels.append(targets.cpu())
    loss = torch.cat(losses)
    pred = torch.cat(preds)
    label = torch.cat(labels)
    confusion = torch.bincount(label * num_classes + pred, minlength=num_classes**2)
    return Evaluation(
        loss=loss.mean().item(),
        accuracy=(pred == label).float().mean().item(),
        confusion=confusion.reshape(num_classes, num_classes).tolist(),
    )

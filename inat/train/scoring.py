"""Loss, top-1 and top-5 accuracy, per-class accuracy and confusion matrix of a model on a
data loader, with optional test-time augmentation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader

TOP_K = 5  # top5_accuracy is reported where there are more classes than this


@dataclass
class Evaluation:
    """Metrics over every sample of a data set, identical on every process."""

    loss: float
    accuracy: float
    top5_accuracy: float | None  # None with TOP_K classes or fewer: it would always be 1
    confusion: list[list[int]]  # rows: true class, columns: predicted class

    def per_class_accuracy(self, classes: list[str]) -> dict[str, float]:
        """Recall of each class: correct / samples of that class."""
        return {
            name: row[i] / total if (total := sum(row)) else 0.0
            for i, (name, row) in enumerate(zip(classes, self.confusion, strict=True))
        }


def with_tta(model: Callable[[torch.Tensor], torch.Tensor], tta: str) -> Callable:
    """`model` with test-time augmentation: `flip` scores each image and its mirror image and
    returns the log of their mean class probabilities, a drop-in for logits (softmax and
    cross-entropy of it are the averaged prediction); `none` is `model` itself."""
    if tta == "none":
        return model

    def flipped(images: torch.Tensor) -> torch.Tensor:
        pair = torch.stack(
            [model(images).float().log_softmax(1), model(images.flip(-1)).float().log_softmax(1)]
        )
        return pair.logsumexp(0) - torch.log(torch.tensor(2.0, device=pair.device))

    return flipped


@torch.no_grad()
def evaluate(
    model: Callable[[torch.Tensor], torch.Tensor],
    loader: DataLoader,
    accelerator: Accelerator,
    num_classes: int,
    tta: str = "none",
) -> Evaluation:
    """Evaluate on every sample once: gather_for_metrics drops the padding DDP adds.

    `model` is put in eval mode if it is a module; `tta`: inat.schema.TTA_MODES (see
    with_tta).
    """
    if isinstance(model, torch.nn.Module):
        model.eval()
    score = with_tta(model, tta)
    k = TOP_K if num_classes > TOP_K else None
    losses, preds, labels, in_top = [], [], [], []
    for images, targets in loader:
        logits = score(images).float()
        loss = F.cross_entropy(logits, targets, reduction="none")
        top = (logits.topk(k, dim=1).indices == targets[:, None]).any(1) if k else targets
        loss, pred, targets, top = accelerator.gather_for_metrics(
            (loss, logits.argmax(1), targets, top)
        )
        losses.append(loss.cpu())
        preds.append(pred.cpu())
        labels.append(targets.cpu())
        in_top.append(top.cpu())
    loss = torch.cat(losses)
    pred = torch.cat(preds)
    label = torch.cat(labels)
    confusion = torch.bincount(label * num_classes + pred, minlength=num_classes**2)
    return Evaluation(
        loss=loss.mean().item(),
        accuracy=(pred == label).float().mean().item(),
        top5_accuracy=torch.cat(in_top).float().mean().item() if k else None,
        confusion=confusion.reshape(num_classes, num_classes).tolist(),
    )

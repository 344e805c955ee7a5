"""`inat evaluate`: a checkpoint's test accuracy, per-class accuracy and confusion matrix on
any data source (the test set is the source's val/ folder, as in training)."""

from __future__ import annotations

from typing import Any

from accelerate import Accelerator
from accelerate.state import AcceleratorState

from inat.data import build_dataloaders
from inat.results.classifier import Classifier
from inat.train.scoring import evaluate


def evaluate_checkpoint(
    classifier: Classifier, source: str, cache_dir: str | None = None
) -> dict[str, Any]:
    """Score `classifier` on the test set of `source` as the trainer does.

    The data settings (image size, batch size, split) and the mixed precision are the
    checkpoint's own, so a run's best checkpoint scores exactly its result.json's test figures.
    """
    config = classifier.config
    root = classifier.data_root(source, cache_dir)
    data = build_dataloaders({**config["data"], "source": str(root)}, seed=config["seed"])
    accelerator = Accelerator(mixed_precision=config["trainer"]["mixed_precision"])
    try:
        model, test = accelerator.prepare(classifier.model, data.test)
        scores = evaluate(model, test, accelerator, len(data.classes))
    finally:
        # One accelerator state per process; a later evaluation may use another precision.
        AcceleratorState._reset_state(reset_partial_state=True)
    return {
        "checkpoint": classifier.uri,
        "data": source,
        "images": len(data.test.dataset),
        "accuracy": scores.accuracy,
        "loss": scores.loss,
        "per_class_accuracy": scores.per_class_accuracy(data.classes),
        "confusion_matrix": scores.confusion,
        "classes": data.classes,
    }


def report(evaluation: dict[str, Any]) -> str:
    """The evaluation for a terminal: accuracy, per-class accuracy and the confusion matrix."""
    classes = evaluation["classes"]
    width = max(len(name) for name in classes)
    lines = [
        f"checkpoint: {evaluation['checkpoint']}",
        f"data:       {evaluation['data']} ({evaluation['images']} test images)",
        f"test accuracy {100 * evaluation['accuracy']:.2f}%, loss {evaluation['loss']:.4f}",
        "",
        "per-class accuracy:",
        *(
            f"  {name.ljust(width)}  {100 * acc:6.2f}%"
            for name, acc in evaluation["per_class_accuracy"].items()
        ),
        "",
        "confusion matrix (rows: true class, columns: predicted, in the same order):",
    ]
    cell = max(4, *(len(str(n)) + 1 for row in evaluation["confusion_matrix"] for n in row))
    header = "".join(name[:3].rjust(cell) for name in classes)
    lines.append(f"  {''.ljust(width)}{header}")
    for name, row in zip(classes, evaluation["confusion_matrix"], strict=True):
        lines.append(f"  {name.ljust(width)}{''.join(str(n).rjust(cell) for n in row)}")
    return "\n".join(lines)

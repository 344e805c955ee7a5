"""`inat evaluate`: a checkpoint's test accuracy, per-class accuracy and confusion matrix on
any data source (the test set is the source's val/ folder, as in training), or on a plain
local folder of class folders (FOLDER/<class>/<images>)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.state import AcceleratorState
from torch.utils.data import DataLoader

from inat.data import build_dataloaders
from inat.data.datasets import ImageFolderDataset, build_transform, find_unreadable
from inat.data.layout import class_folders, list_images
from inat.errors import DataError
from inat.results.classifier import Classifier
from inat.train.scoring import evaluate

log = logging.getLogger(__name__)


def class_folder(classifier: Classifier, source: str) -> Path | None:
    """`source` as a plain local folder of class folders (no train/ and val/) named after
    some or all of the checkpoint's classes; None for a data source of another kind."""
    path = Path(source).expanduser()
    if not path.is_dir():
        return None
    names = class_folders(path)
    if not set(names) & set(classifier.classes):
        return None  # a data set (train/ and val/), or no data at all: see Classifier.data_root
    unknown = sorted(set(names) - set(classifier.classes))
    if unknown:
        raise DataError(
            f"{path} holds the folder(s) {', '.join(unknown)}, which are not classes the "
            f"checkpoint was trained on ({', '.join(classifier.classes)}): rename or remove them"
        )
    return path


def folder_loader(classifier: Classifier, folder: Path) -> DataLoader:
    """The images below the class folders of `folder`, labelled by the checkpoint's classes,
    in the batches the run trained with; files that are not readable images are skipped."""
    samples = list_images(folder, classifier.classes, root=folder)
    bad = {
        path.relative_to(folder).as_posix()
        for path in find_unreadable([folder / relpath for relpath, _ in samples])
    }
    if bad:
        log.warning("skipping %d files in %s that are not readable images", len(bad), folder)
    samples = [sample for sample in samples if sample[0] not in bad]
    if not samples:
        raise DataError(f"{folder} holds no readable image in its class folders")
    transform = build_transform(classifier.image_size, augment=False)
    return DataLoader(
        ImageFolderDataset(folder, samples, transform),
        batch_size=classifier.config["data"]["batch_size"],
        shuffle=False,
    )


def evaluate_checkpoint(
    classifier: Classifier, source: str, cache_dir: str | None = None, tta: str | None = None
) -> dict[str, Any]:
    """Score `classifier` on the test set of `source` as the trainer does, or on the images
    of a plain folder of class folders (see class_folder).

    The data settings (image size, batch size, split), the mixed precision and, unless
    `tta` says otherwise, the test-time augmentation are the checkpoint's own, so a run's
    best checkpoint scores exactly its result.json's test figures.
    Per-class accuracy covers the classes that have test images.
    """
    config = classifier.config
    classes = classifier.classes
    folder = class_folder(classifier, source)
    if folder is None:
        root = classifier.data_root(source, cache_dir)
        data = build_dataloaders({**config["data"], "source": str(root)}, seed=config["seed"])
        loader = data.test
    else:
        loader = folder_loader(classifier, folder)
    accelerator = Accelerator(mixed_precision=config["trainer"]["mixed_precision"])
    try:
        model, test = accelerator.prepare(classifier.model, loader)
        scores = evaluate(model, test, accelerator, len(classes), tta or classifier.tta)
    finally:
        # One accelerator state per process; a later evaluation may use another precision.
        AcceleratorState._reset_state(reset_partial_state=True)
    per_class = scores.per_class_accuracy(classes)
    return {
        "checkpoint": classifier.uri,
        "data": source,
        "images": len(loader.dataset),
        "accuracy": scores.accuracy,
        "top5_accuracy": scores.top5_accuracy,
        "tta": tta or classifier.tta,
        "loss": scores.loss,
        "per_class_accuracy": {
            name: per_class[name]
            for name, row in zip(classes, scores.confusion, strict=True)
            if sum(row)
        },
        "confusion_matrix": scores.confusion,
        "classes": classes,
    }


def report(evaluation: dict[str, Any]) -> str:
    """The evaluation for a terminal: accuracy, per-class accuracy and the confusion matrix,
    whose rows are numbered and named by class and whose columns are numbered as the rows
    (class names of any length, e.g. species of one genus, stay whole and distinct)."""
    classes = evaluation["classes"]
    matrix = evaluation["confusion_matrix"]
    width = max(len(name) for name in classes)
    numbers = [str(i) for i in range(1, len(classes) + 1)]
    tag = len(numbers[-1])
    top5 = evaluation["top5_accuracy"]
    top5 = "" if top5 is None else f", top-5 {100 * top5:.2f}%"
    cell = 2 + max(tag, *(len(str(n)) for row in matrix for n in row))
    lines = [
        f"checkpoint: {evaluation['checkpoint']}",
        f"data:       {evaluation['data']} ({evaluation['images']} test images)",
        f"test accuracy {100 * evaluation['accuracy']:.2f}%{top5}, loss "
        f"{evaluation['loss']:.4f} (test-time augmentation: {evaluation['tta']})",
        "",
        "per-class accuracy:",
        *(
            f"  {name.ljust(width)}  {100 * acc:6.2f}%"
            for name, acc in evaluation["per_class_accuracy"].items()
        ),
        "",
        "confusion matrix (rows: true class; columns: predicted class, numbered as the rows):",
        f"  {''.rjust(tag)}  {''.ljust(width)}{''.join(n.rjust(cell) for n in numbers)}",
        *(
            f"  {number.rjust(tag)}  {name.ljust(width)}{''.join(str(n).rjust(cell) for n in row)}"
            for number, name, row in zip(numbers, classes, matrix, strict=True)
        ),
    ]
    return "\n".join(lines)

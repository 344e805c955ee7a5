"""The original assignment's picture: a grid of test images, one row per class, with their
true and predicted labels, from a checkpoint and a data source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from inat.data.layout import list_images
from inat.results.classifier import Classifier
from inat.results.predict import load_images, probabilities

PER_CLASS = 3
RIGHT, WRONG = "\u2713", "\u2717"  # check mark and cross: not colour alone


def examples(root: Path, classes: list[str], per_class: int = PER_CLASS) -> list[list[Path]]:
    """The first `per_class` test images (val/) of each class: one list per class."""
    samples = list_images(root / "val", classes)
    return [
        [root / "val" / relpath for relpath, lab in samples if lab == label][:per_class]
        for label in range(len(classes))
    ]


def prediction_grid(
    classifier: Classifier, source: str, cache_dir: str | None = None, per_class: int = PER_CLASS
) -> Figure:
    """Test images of `source`, a column per class (`per_class` rows: wide, to fit a page
    across), with their true and predicted classes and the predicted class's probability;
    in each column the misclassified images first, marked with a cross in red, then the
    right ones, marked with a check mark in green (each in file order)."""
    classes = classifier.classes
    columns = examples(classifier.data_root(source, cache_dir), classes, per_class)
    files = [path for column in columns for path in column]
    labels = [label for label, column in enumerate(columns) for _ in column]
    images = load_images(files)
    confidence, predicted = probabilities(classifier, images).max(dim=1)
    right = [p == label for p, label in zip(predicted.tolist(), labels, strict=True)]
    figure = Figure(figsize=(1.9 * len(classes), 2.3 * per_class + 0.6), layout="constrained")
    axes = figure.subplots(per_class, len(classes), squeeze=False)
    for label in range(len(classes)):
        # sorted() is stable: wrong ones (False) before right ones, each in file order.
        shown = sorted((n for n in range(len(files)) if labels[n] == label), key=right.__getitem__)
        for row in range(per_class):
            ax = axes[row][label]
            if row >= len(shown):
                ax.set_visible(False)
                continue
            n = shown[row]
            ax.imshow(images[n])
            ax.set_title(
                f"{RIGHT if right[n] else WRONG} {classes[predicted[n]]} "
                f"{100 * confidence[n]:.0f}%",
                color="green" if right[n] else "red",
                fontsize="medium",
            )
            ax.set_xticks([])
            ax.set_yticks([])
        _column_header(axes[0][label], classes[label])
    figure.suptitle(
        f"Test images by true class (columns, misclassified first), with the predicted class "
        f"and its probability ({RIGHT} right, {WRONG} wrong): {sum(right)} of {len(files)} right",
        fontsize="large",
    )
    return figure


def _column_header(ax: Any, name: str) -> None:
    """The true class of a column, above the title of its top image."""
    ax.annotate(
        name,
        (0.5, 1.0),
        xytext=(0, 22),
        xycoords="axes fraction",
        textcoords="offset points",
        ha="center",
        fontweight="bold",
    )

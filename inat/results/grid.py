"""The original assignment's picture: a grid of test images, one row per class, with their
true and predicted labels, from a checkpoint and a data source."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from inat.data.layout import list_images
from inat.results.classifier import Classifier
from inat.results.predict import load_images, probabilities

PER_CLASS = 3


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
    """Test images of `source`, a row per class, with their true and predicted classes
    (green when right, red when wrong) and the predicted class's probability."""
    classes = classifier.classes
    rows = examples(classifier.data_root(source, cache_dir), classes, per_class)
    files = [path for row in rows for path in row]
    images = load_images(files)
    confidence, predicted = probabilities(classifier, images).max(dim=1)
    figure = Figure(figsize=(2.8 * per_class, 2.9 * len(classes)), layout="constrained")
    axes = figure.subplots(len(classes), per_class, squeeze=False)
    n = 0
    for label, row in enumerate(rows):
        for column in range(per_class):
            ax = axes[label][column]
            if column >= len(row):
                ax.set_visible(False)
                continue
            guess = classes[predicted[n]]
            ax.imshow(images[n])
            ax.set_title(
                f"true: {classes[label]}\npredicted: {guess} ({100 * confidence[n]:.0f}%)",
                color="green" if label == predicted[n].item() else "red",
                fontsize="medium",
            )
            ax.set_xticks([])
            ax.set_yticks([])
            n += 1
    labels = [label for label, row in enumerate(rows) for _ in row]
    right = sum(p == label for p, label in zip(predicted.tolist(), labels, strict=True))
    figure.suptitle(
        f"Test images and predictions: {right} of {len(files)} right\n{classifier.uri}",
        fontsize="large",
    )
    return figure

"""`inat predict`: the top-k classes of a checkpoint's model for a few image files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from inat.data.datasets import UNREADABLE, build_transform, load_rgb
from inat.data.layout import IMAGE_SUFFIXES
from inat.errors import ConfigError, DataError
from inat.results.classifier import Classifier

_BATCH = 64


def image_files(paths: Sequence[str]) -> list[Path]:
    """The files named, with folders replaced by the image files below them (sorted)."""
    files = []
    for name in paths:
        path = Path(name).expanduser()
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
            if not found:
                raise ConfigError(
                    f"{path} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"{name} is not an image file or a folder of images")
    return files


def load_images(files: Sequence[Path]) -> list[Image.Image]:
    """The files decoded as RGB images; DataError naming the first that is not an image."""
    images = []
    for path in files:
        try:
            images.append(load_rgb(path))
        except UNREADABLE as e:
            raise DataError(f"{path} is not a readable image ({e}): pass JPEG or PNG files") from e
    return images


@torch.no_grad()
def probabilities(classifier: Classifier, images: Sequence[Image.Image]) -> torch.Tensor:
    """Class probabilities, shape (images, classes), from the evaluation transform."""
    transform = build_transform(classifier.image_size, augment=False)
    batches = []
    for start in range(0, len(images), _BATCH):
        batch = torch.stack([transform(image) for image in images[start : start + _BATCH]])
        batches.append(classifier.model(batch).float().softmax(dim=1))
    return torch.cat(batches)


def predict(classifier: Classifier, files: Sequence[Path], top_k: int) -> list[dict[str, Any]]:
    """For each file, its `top_k` classes with their probabilities, most likely first."""
    if top_k < 1:
        raise ConfigError(f"--top-k {top_k} is not allowed: use 1 to {len(classifier.classes)}")
    probs = probabilities(classifier, load_images(files))
    values, indices = probs.topk(min(top_k, len(classifier.classes)), dim=1)
    return [
        {
            "image": str(path),
            "top": [
                {"class": classifier.classes[i], "probability": p}
                for p, i in zip(row_values.tolist(), row_indices.tolist(), strict=True)
            ],
        }
        for path, row_values, row_indices in zip(files, values, indices, strict=True)
    ]


def report(predictions: list[dict[str, Any]]) -> str:
    """One line per image: its classes with probabilities, most likely first."""
    return "\n".join(
        f"{p['image']}: "
        + ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in p["top"])
        for p in predictions
    )

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
from inat.train.scoring import with_tta

_BATCH = 64
Skipped = dict[str, str]  # {"image": the file, "reason": why it was not predicted}


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


def decode_images(files: Sequence[Path]) -> tuple[list[tuple[Path, Image.Image]], list[Skipped]]:
    """The files that decode, with their RGB images, and those that do not, with the reason."""
    decoded, skipped = [], []
    for path in files:
        try:
            decoded.append((path, load_rgb(path)))
        except UNREADABLE as e:
            skipped.append({"image": str(path), "reason": f"not a readable image ({e})"})
    return decoded, skipped


def load_images(files: Sequence[Path]) -> list[Image.Image]:
    """The files decoded as RGB images; DataError naming the first that is not an image."""
    decoded, skipped = decode_images(files)
    if skipped:
        raise DataError(f"{skipped[0]['image']} is {skipped[0]['reason']}: pass JPEG or PNG files")
    return [image for _, image in decoded]


@torch.no_grad()
def probabilities(
    classifier: Classifier, images: Sequence[Image.Image], tta: str = "none"
) -> torch.Tensor:
    """Class probabilities, shape (images, classes), from the evaluation transform, with the
    test-time augmentation `tta` (inat.train.scoring.with_tta)."""
    transform = build_transform(classifier.image_size, augment=False)
    score = with_tta(classifier.model, tta)
    batches = []
    for start in range(0, len(images), _BATCH):
        batch = torch.stack([transform(image) for image in images[start : start + _BATCH]])
        batches.append(score(batch).float().softmax(dim=1))
    return torch.cat(batches)


def predict(
    classifier: Classifier, files: Sequence[Path], top_k: int, tta: str | None = None
) -> dict[str, Any]:
    """For each file that is a readable image, its `top_k` classes with their probabilities,
    most likely first ("predictions"); the other files with the reason ("skipped").
    `tta`: the test-time augmentation; None: the run's own (trainer.tta).

    DataError if no file is a readable image.
    """
    if top_k < 1:
        raise ConfigError(f"--top-k {top_k} is not allowed: use 1 to {len(classifier.classes)}")
    k = min(top_k, len(classifier.classes))
    predictions: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    # A batch of files at a time: a folder of photos decoded at once could fill the memory.
    for start in range(0, len(files), _BATCH):
        decoded, unreadable = decode_images(files[start : start + _BATCH])
        skipped.extend(unreadable)
        if not decoded:
            continue
        probs = probabilities(classifier, [image for _, image in decoded], tta or classifier.tta)
        values, indices = probs.topk(k, dim=1)
        predictions.extend(
            {
                "image": str(path),
                "top": [
                    {"class": classifier.classes[i], "probability": p}
                    for p, i in zip(row_values.tolist(), row_indices.tolist(), strict=True)
                ],
            }
            for (path, _), row_values, row_indices in zip(decoded, values, indices, strict=True)
        )
    if not predictions:
        listed = "; ".join(f"{s['image']} is {s['reason']}" for s in skipped[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        raise DataError(
            f"no file given is a readable image, so there is nothing to predict: {listed}{more}. "
            "Pass JPEG or PNG files"
        )
    return {"predictions": predictions, "skipped": skipped}


def report(result: dict[str, Any]) -> str:
    """One line per image: its classes with probabilities, most likely first; then the
    files skipped, with the reason."""
    lines = [
        f"{p['image']}: "
        + ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in p["top"])
        for p in result["predictions"]
    ]
    if result["skipped"]:
        lines.append(f"skipped {len(result['skipped'])} file(s):")
        lines.extend(f"  {s['image']}: {s['reason']}" for s in result["skipped"])
    return "\n".join(lines)

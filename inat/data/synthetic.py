"""A small generated data set in the nature_12K layout, learnable by a small CNN on a CPU.

Each class is a hue (shared by two classes) and a stripe direction (horizontal
or vertical) of a striped disk at a random place and size, on a random, noisy
background. The mean colour of an image tells at best which pair of classes it
belongs to; the stripes tell the class within the pair.
"""

from __future__ import annotations

import colorsys
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

CLASS_NAMES = (
    "Amphibia",
    "Animalia",
    "Arachnida",
    "Aves",
    "Fungi",
    "Insecta",
    "Mammalia",
    "Mollusca",
    "Plantae",
    "Reptilia",
)
# Part of the cache key: change it whenever render() draws something else.
GENERATOR_VERSION = 1
_HUES = (0.0, 0.2, 0.4, 0.6, 0.8)


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate: the data config's `synthetic` group."""

    train_per_class: int = 60
    image_side: int = 64
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> SyntheticSpec:
        """A spec from `data.synthetic` (its keys and ranges are checked by the schema)."""
        return cls(**dict(values or {}))

    @property
    def val_per_class(self) -> int:
        """Images per class in val/ (the test set): a quarter of train/, at least 2."""
        return max(2, self.train_per_class // 4)

    def identity(self) -> str:
        """Everything the generated files depend on, for the cache key."""
        return (
            f"v{GENERATOR_VERSION} train_per_class={self.train_per_class} "
            f"image_side={self.image_side} seed={self.seed}"
        )


def render(label: int, side: int, rng: np.random.Generator) -> np.ndarray:
    """One image of class `label` as a (side, side, 3) uint8 array."""
    yy, xx = np.mgrid[0:side, 0:side] / side
    # Background: a random muted colour with a gradient in a random direction.
    angle = rng.uniform(0, 2 * np.pi)
    gradient = (np.cos(angle) * xx + np.sin(angle) * yy - 0.5)[..., None]
    image = rng.uniform(0.15, 0.85, 3) + 0.3 * gradient * rng.uniform(-1, 1, 3)
    # Object: a disk striped in the class's hue, the stripes horizontal or vertical.
    cx, cy = rng.uniform(0.3, 0.7, 2)
    radius = rng.uniform(0.18, 0.32)
    disk = (xx - cx) ** 2 + (yy - cy) ** 2 < radius**2
    direction = (label % 2) * np.pi / 2 + rng.uniform(-0.3, 0.3)
    period = rng.uniform(0.09, 0.15)
    wave = np.sin(
        2 * np.pi * (np.cos(direction) * xx + np.sin(direction) * yy) / period
        + rng.uniform(0, 2 * np.pi)
    )
    hue = _HUES[label // 2] + rng.uniform(-0.03, 0.03)
    colour = np.array(colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(0.7, 1), rng.uniform(0.75, 1)))
    stripes = colour * np.where(wave > 0, 1.0, 0.45)[..., None]
    image = np.where(disk[..., None], stripes, image)
    image += rng.normal(0, 0.04, image.shape)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def generate(dest: Path, spec: SyntheticSpec) -> None:
    """Write train/<class>/*.jpg and val/<class>/*.jpg below `dest`, deterministic from `spec`."""
    start = time.perf_counter()
    for split_index, (split, per_class) in enumerate(
        (("train", spec.train_per_class), ("val", spec.val_per_class))
    ):
        for label, name in enumerate(CLASS_NAMES):
            folder = dest / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                # One generator per image: the files do not depend on the order they are made in.
                rng = np.random.default_rng([spec.seed, split_index, label, i])
                pixels = render(label, spec.image_side, rng)
                Image.fromarray(pixels).save(folder / f"{name.lower()}_{i:05d}.jpg", quality=90)
    total = len(CLASS_NAMES) * (spec.train_per_class + spec.val_per_class)
    log.info(
        "generated %d synthetic images in %s (%.1f s)", total, dest, time.perf_counter() - start
    )

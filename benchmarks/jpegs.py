"""Generate a data set of photo-like JPEGs in the nature_12K layout, for benchmarks.

    python -m benchmarks.jpegs DEST --images 2000

Decoding cost is what the benchmark measures, so the files resemble nature_12K's
where it matters: mostly 800x600 (some portrait, some larger or smaller), baseline
JPEGs at quality 90 with photo-like detail (150-300 KB each; the real archive averages
about 300 KB), about 3% grayscale. Each class has its own hue and texture scale, so a
model can learn something from them.
"""

from __future__ import annotations

import argparse
import colorsys
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from inat.data import CLASS_NAMES

log = logging.getLogger(__name__)

# (width, height) and how often each occurs: nature_12K is mostly 800x600 landscape.
SIZES = ((800, 600), (600, 800), (800, 533), (1024, 768), (640, 480))
SIZE_WEIGHTS = (0.6, 0.15, 0.1, 0.1, 0.05)
GRAYSCALE_SHARE = 0.03
TEST_SHARE = 0.2  # of the images go to val/ (the test set), as in nature_12K
SPEC_FILE = "benchmark-images.json"


def _field(rng: np.random.Generator, cells: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Smooth random values in [0, 255] of shape (height, width, 3): upsampled noise."""
    coarse = rng.integers(0, 256, (cells[1], cells[0], 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize(size, Image.BILINEAR), dtype=np.float32)


def render(label: int, rng: np.random.Generator) -> Image.Image:
    """One photo-like image of class `label`: a textured subject on a textured background."""
    width, height = SIZES[rng.choice(len(SIZES), p=SIZE_WEIGHTS)]
    size = (width, height)
    image = 0.55 * _field(rng, (4, 3), size) + 0.25 * _field(rng, (48, 36), size)
    # The subject: an ellipse in the class's hue, with a texture of the class's scale.
    yy, xx = np.ogrid[0:height, 0:width]
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    rx, ry = rng.uniform(0.15, 0.35) * width, rng.uniform(0.15, 0.35) * height
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
    hue = (label / len(CLASS_NAMES) + rng.uniform(-0.02, 0.02)) % 1.0
    hsv = (hue, rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.9))
    colour = np.array(colorsys.hsv_to_rgb(*hsv), dtype=np.float32)
    cells = (8 + 8 * label, 6 + 6 * label)
    subject = colour * 255 * (0.6 + 0.4 * _field(rng, cells, size) / 255)
    image = np.where(inside[..., None], subject, image + 0.2 * 128)
    # Fine detail, like foliage and sensor noise: what makes photos expensive to decode.
    image += 10 * rng.standard_normal((height, width, 1), dtype=np.float32)
    pixels = np.clip(image, 0, 255).astype(np.uint8)
    if rng.uniform() < GRAYSCALE_SHARE:
        return Image.fromarray(pixels).convert("L")
    return Image.fromarray(pixels)


def _write(job: tuple[Path, int, int]) -> None:
    path, label, seed = job
    render(label, np.random.default_rng(seed)).save(path, quality=90)


def generate(dest: Path, images: int, seed: int = 0) -> Path:
    """Write `images` JPEGs below dest/train/<class>/ and dest/val/<class>/; return dest.

    Does nothing if `dest` already holds the same set (its spec file matches).
    """
    spec = {"images": images, "seed": seed, "sizes": SIZES, "version": 1}
    spec_file = dest / SPEC_FILE
    if spec_file.is_file() and json.loads(spec_file.read_text()) == json.loads(json.dumps(spec)):
        return dest
    start = time.perf_counter()
    jobs = []
    per_class = images // len(CLASS_NAMES)
    n_test = round(per_class * TEST_SHARE)
    for label, name in enumerate(CLASS_NAMES):
        for i in range(per_class):
            split = "val" if i < n_test else "train"
            folder = dest / split / name
            folder.mkdir(parents=True, exist_ok=True)
            jobs.append((folder / f"{name.lower()}_{i:05d}.jpg", label, seed * 10**6 + len(jobs)))
    with ProcessPoolExecutor() as pool:
        list(pool.map(_write, jobs, chunksize=16))
    spec_file.write_text(json.dumps(spec) + "\n")
    log.info("generated %d JPEGs in %s (%.0f s)", len(jobs), dest, time.perf_counter() - start)
    return dest


def main() -> None:
    """Command line: generate the benchmark's images into a folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    generate(args.dest, args.images, args.seed)


if __name__ == "__main__":
    main()

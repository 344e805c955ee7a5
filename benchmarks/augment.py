"""What each data.augment costs: images per second of a batch of 64 at 224 px.

    python -m benchmarks.augment                  # on the CPU; prints a table
    python -m benchmarks.augment --device cuda    # the batch path on a GPU

Two paths: the prepared pipeline's batch transform (inat.data.batch_transform: a uint8
batch, channels-last, to normalized float32, on `--device`, in torch's intra-op threads
on the CPU), and the per-image pipeline's transform (inat.data.datasets.build_transform,
one 224 px PIL image at a time, as one DataLoader worker runs it; no decoding). The
images are the throughput benchmark's photo-like ones (benchmarks.jpegs.render), resized
to 224 px. Each figure is the median of `--repeats` timed batches after one untimed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.jpegs import render
from benchmarks.throughput import machine
from inat.data.batch_transform import BatchTransform
from inat.data.datasets import build_transform

BATCH = 64
SIDE = 224
# (what the row says, data.augment, data.random_erasing)
SETTINGS = (
    ("none (normalize only)", "none", 0.0),
    ("basic (crop, flip, colour jitter)", "basic", 0.0),
    ("randaugment (2 ops, magnitude 9)", "randaugment", 0.0),
    ("trivialaugment", "trivialaugment", 0.0),
    ("autoaugment (ImageNet policy)", "autoaugment", 0.0),
    ("basic + random_erasing 0.25", "basic", 0.25),
    ("randaugment + random_erasing 0.25", "randaugment", 0.25),
)


def photos(n: int, side: int) -> list[Image.Image]:
    """`n` photo-like RGB images of side x side."""
    rng = np.random.default_rng(0)
    return [
        render(i % 10, rng).convert("RGB").resize((side, side), Image.BILINEAR) for i in range(n)
    ]


def images_per_second(
    work: Callable[[], Any], images: int, repeats: int, device: torch.device
) -> float:
    """`images` over the median wall time of `work()`, after one untimed call."""
    work()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return images / statistics.median(times)


def measure(device: torch.device, repeats: int) -> list[tuple[str, float, float | None]]:
    """(row, batch images/s, per-image images/s or None off the CPU) for each setting."""
    pil = photos(BATCH, SIDE)
    pixels = torch.from_numpy(np.stack([np.asarray(image) for image in pil]))
    batch = pixels.permute(0, 3, 1, 2).to(device)  # channels-last, as the loader yields it
    torch.manual_seed(0)
    rows = []
    for label, augment, erasing in SETTINGS:
        transform = BatchTransform(augment, random_erasing=erasing)
        batched = images_per_second(lambda t=transform: t(batch), BATCH, repeats, device)
        per_image = None
        if device.type == "cpu":
            single = build_transform(SIDE, augment, random_erasing=erasing)
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as in a DataLoader worker
            try:
                per_image = images_per_second(
                    lambda t=single: [t(image) for image in pil], BATCH, repeats, device
                )
            finally:
                torch.set_num_threads(threads)
        rows.append((label, batched, per_image))
    return rows


def report(rows: list[tuple[str, float, float | None]], info: dict[str, str], device: str) -> str:
    """The figures as a markdown section."""
    lines = [
        "# Benchmark: augmentation",
        "",
        f"Written by `python -m benchmarks.augment --device {device}` (see its docstring).",
        "",
        *(f"- {key}: {value}" for key, value in info.items()),
        f"- torch intra-op threads: {torch.get_num_threads()}",
        "",
        f"| data.augment | batch of {BATCH} on {device}, images/s | per image, 1 thread |",
        "|---|---:|---:|",
    ]
    for label, batched, per_image in rows:
        single = f"{per_image:,.0f}" if per_image is not None else "-"
        lines.append(f"| {label} | {batched:,.0f} | {single} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line: measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    info = machine()
    rows = measure(torch.device(args.device), args.repeats)
    print(report(rows, info, args.device))


if __name__ == "__main__":
    main()

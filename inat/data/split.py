"""Hold out a stratified share of train/ for validation, identically on every node."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from inat.data.layout import Sample
from inat.errors import DataError

MIN_PER_CLASS = 2  # one image for training and one for validation


def _rank(seed: int, relpath: str) -> tuple[bytes, str]:
    # A hash of (seed, path) rather than a seeded shuffle: the same on every platform and
    # library version, whatever the order the file system lists the files in.
    digest = hashlib.blake2b(f"{seed}/{relpath}".encode(), digest_size=8).digest()
    return digest, relpath


def stratified_split(
    samples: Iterable[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """(train, val): about `fraction` of each class's samples go to val.

    Depends only on the samples' relative paths and `seed`, not on their order.
    A class with two or more samples keeps at least one on each side.
    """
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample[1]].append(sample)
    train: list[Sample] = []
    val: list[Sample] = []
    for members in by_class.values():
        ranked = sorted(members, key=lambda s: _rank(seed, s[0]))
        n_val = round(len(ranked) * fraction)
        if fraction > 0 and len(ranked) >= 2:
            n_val = min(max(n_val, 1), len(ranked) - 1)
        val.extend(ranked[:n_val])
        train.extend(ranked[n_val:])
    return sorted(train), sorted(val)


def require_splittable(samples: Sequence[Sample], classes: Sequence[str], split_dir: Path) -> None:
    """DataError naming the classes of `split_dir` (train/) with too few images to hold one
    out for validation and keep one for training."""
    counts = Counter(label for _, label in samples)
    few = [
        (name, counts[label]) for label, name in enumerate(classes) if counts[label] < MIN_PER_CLASS
    ]
    if few:
        listed = ", ".join(f"{name} has {n} readable image{'s' * (n != 1)}" for name, n in few)
        folders = ", ".join(f"{split_dir.name}/{name}/" for name, _ in few)
        raise DataError(
            f"too few images in {split_dir} to hold out a validation split: {listed}; "
            f"each class needs at least {MIN_PER_CLASS}, one kept for training and "
            "data.val_fraction of them (at least one) held out for validation. "
            f"Add images to {folders}, or remove the class from train/ and val/ and set "
            "data.num_classes to the new number of classes."
        )

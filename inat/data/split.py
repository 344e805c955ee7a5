"""Hold out stratified shares of the images (validation; the test of a flat folder of class
folders), identically on every node."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from inat.data.layout import Sample
from inat.errors import DataError


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


def require_splittable(
    samples: Sequence[Sample], classes: Sequence[str], split_dir: Path, flat: bool = False
) -> None:
    """DataError naming the classes of `split_dir` (train/, or a flat folder of class
    folders) with too few images to keep one for training and hold one out for validation
    (and, `flat`, one for the test)."""
    need = 3 if flat else 2  # one image for training, one for each split held out
    counts = Counter(label for _, label in samples)
    few = [(name, counts[label]) for label, name in enumerate(classes) if counts[label] < need]
    if not few:
        return
    listed = ", ".join(f"{name} has {n} readable image{'s' * (n != 1)}" for name, n in few)
    if flat:
        split = "a validation and a test split"
        held = "data.val_fraction and data.test_fraction of them (at least one each) held out for "
        held += "validation and test"
        folders = ", ".join(f"{name}/" for name, _ in few)
        remove = "the class folder"
    else:
        split = "a validation split"
        held = "data.val_fraction of them (at least one) held out for validation"
        folders = ", ".join(f"{split_dir.name}/{name}/" for name, _ in few)
        remove = "the class from train/ and val/"
    raise DataError(
        f"too few images in {split_dir} to hold out {split}: {listed}; each class needs at "
        f"least {need}, one kept for training and {held}. Add images to {folders}, or remove "
        f"{remove} and set data.num_classes to the new number of classes."
    )

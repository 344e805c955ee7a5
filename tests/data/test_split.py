"""The stratified validation split: per-class shares, deterministic from split_seed alone."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from inat.data.split import require_splittable, stratified_split
from inat.errors import DataError

SAMPLES = [
    (f"c{label}/{i:03d}.jpg", label) for label, n in enumerate((10, 20, 45)) for i in range(n)
]


def test_each_class_gives_its_share_to_validation() -> None:
    train, val = stratified_split(SAMPLES, 0.2, seed=0)
    assert Counter(label for _, label in val) == {0: 2, 1: 4, 2: 9}
    assert Counter(label for _, label in train) == {0: 8, 1: 16, 2: 36}
    assert sorted(train + val) == sorted(SAMPLES)


def test_the_split_ignores_input_order_and_depends_on_the_seed() -> None:
    shuffled = SAMPLES.copy()
    random.Random(1).shuffle(shuffled)
    assert stratified_split(shuffled, 0.2, seed=0) == stratified_split(SAMPLES, 0.2, seed=0)
    assert stratified_split(SAMPLES, 0.2, seed=1)[1] != stratified_split(SAMPLES, 0.2, seed=0)[1]


def test_tiny_classes_keep_an_image_on_each_side_when_they_can() -> None:
    samples = [("a/1.jpg", 0), ("a/2.jpg", 0), ("b/1.jpg", 1)]
    train, val = stratified_split(samples, 0.1, seed=0)
    assert Counter(label for _, label in train) == {0: 1, 1: 1}
    assert Counter(label for _, label in val) == {0: 1}


def test_a_class_too_small_to_split_is_named_with_its_count_and_the_fix() -> None:
    samples = [("Aves/1.jpg", 0), ("Aves/2.jpg", 0), ("Fungi/1.jpg", 1), ("Plantae/1.jpg", 2)]
    folder = Path("/data/set/train")
    require_splittable(samples[:2], ["Aves"], folder)  # two images: one on each side
    with pytest.raises(DataError) as raised:
        require_splittable(samples, ["Aves", "Fungi", "Plantae"], folder)
    assert raised.value.exit_code == 65
    assert str(raised.value) == (
        "too few images in /data/set/train to hold out a validation split: Fungi has 1 "
        "readable image, Plantae has 1 readable image; each class needs at least 2, one kept "
        "for training and data.val_fraction of them (at least one) held out for validation. "
        "Add images to train/Fungi/, train/Plantae/, or remove the class from train/ and val/ "
        "and set data.num_classes to the new number of classes."
    )

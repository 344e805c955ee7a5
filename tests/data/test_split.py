"""The stratified validation split: per-class shares, deterministic from split_seed alone."""

from __future__ import annotations

import random
from collections import Counter

from inat.data.split import stratified_split

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

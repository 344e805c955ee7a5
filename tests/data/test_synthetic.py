"""The generated data set: layout, determinism, speed, and that a small CNN can learn it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from torch import nn

from inat.data import CLASS_NAMES, build_dataloaders
from inat.data.synthetic import SyntheticSpec, generate


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.jpg")}


def test_layout_counts_and_sizes(tmp_path: Path) -> None:
    generate(tmp_path, SyntheticSpec(train_per_class=12, image_side=40))
    for split, per_class in (("train", 12), ("val", 3)):
        assert sorted(p.name for p in (tmp_path / split).iterdir()) == list(CLASS_NAMES)
        for name in CLASS_NAMES:
            images = sorted((tmp_path / split / name).iterdir())
            assert len(images) == per_class
            with Image.open(images[0]) as image:
                assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (40, 40))


def test_val_gets_a_quarter_of_train_but_at_least_two() -> None:
    assert SyntheticSpec(train_per_class=60).val_per_class == 15
    assert SyntheticSpec(train_per_class=4).val_per_class == 2


def test_generation_is_deterministic_from_the_seed(tmp_path: Path) -> None:
    spec = SyntheticSpec(train_per_class=4, image_side=32, seed=3)
    for name, s in (("a", spec), ("b", spec), ("c", SyntheticSpec(4, 32, seed=4))):
        generate(tmp_path / name, s)
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)


def _small_cnn() -> nn.Module:
    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

    return nn.Sequential(
        *block(3, 16),
        nn.MaxPool2d(2),
        *block(16, 32),
        nn.MaxPool2d(2),
        *block(32, 64),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


def _batches(loader) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*loader, strict=True)
    return torch.cat(images), torch.cat(labels)


@pytest.mark.slow
def test_a_small_cnn_learns_it_and_mean_colour_does_not(data_cfg) -> None:
    torch.manual_seed(0)
    cfg = data_cfg(source="synthetic", image_size=64, batch_size=32, pipeline="images")
    loaders = build_dataloaders(cfg, seed=0)
    model = _small_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    val_images, val_labels = _batches(loaders.val)
    accuracies = []
    for _ in range(6):
        model.train()
        for images, labels in loaders.train:
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracies.append((model(val_images).argmax(1) == val_labels).float().mean().item())
    assert max(accuracies) > 0.9, accuracies

    train_images, train_labels = _batches(loaders.train)
    by_colour = LogisticRegression(max_iter=1000).fit(
        train_images.mean((2, 3)).numpy(), train_labels.numpy()
    )
    colour_accuracy = by_colour.score(val_images.mean((2, 3)).numpy(), val_labels.numpy())
    assert colour_accuracy < 0.5, colour_accuracy
    assert np.unique(val_labels.numpy()).tolist() == list(range(10))

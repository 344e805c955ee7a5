"""Training really learns: on generated images, and on real images shipped in scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.runs import LEARNS
from PIL import Image

from inat.train import train

pytestmark = pytest.mark.slow


def test_scratch_cnn_learns_generated_images(tiny_cfg):
    cfg = tiny_cfg(*LEARNS, "data.synthetic.train_per_class=60")
    result = train(cfg)
    assert result["status"] == "done"
    assert result["best_val_accuracy"] >= 0.90
    assert result["test"]["accuracy"] >= 0.85


def _write_digits(root: Path) -> None:
    """scikit-learn's 1,797 real 8x8 handwritten digits as an image folder: train/ and val/."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images * (255 / 16)).astype(np.uint8)
    train_idx, test_idx = train_test_split(
        np.arange(len(images)), test_size=0.2, stratify=digits.target, random_state=0
    )
    for split, indices in (("train", train_idx), ("val", test_idx)):
        for i in indices:
            folder = root / split / f"digit_{digits.target[i]}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], mode="L").save(folder / f"{i:04d}.png")


def test_scratch_cnn_reaches_95_percent_test_accuracy_on_real_digits(tmp_path, tiny_cfg):
    """Real images (scikit-learn's digits, no download): at least 95% on the held-out test split."""
    _write_digits(tmp_path / "digits")
    cfg = tiny_cfg(*LEARNS, f"data.source={tmp_path}/digits", "data.batch_size=32")
    result = train(cfg)
    assert result["classes"] == [f"digit_{d}" for d in range(10)]
    assert result["test"]["accuracy"] >= 0.95
    assert min(result["test"]["per_class_accuracy"].values()) >= 0.8
    confusion = np.array(result["test"]["confusion_matrix"])
    assert confusion.sum() == 360 and np.trace(confusion) / confusion.sum() == pytest.approx(
        result["test"]["accuracy"]
    )

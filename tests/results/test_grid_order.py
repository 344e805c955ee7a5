"""The prediction grid of `inat results --grid`: in each class's column the misclassified
test images come first, then the right ones, each group in file order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from inat.results.classifier import Classifier
from inat.results.grid import RIGHT, WRONG, prediction_grid

CLASSES = ["blue", "green", "red"]  # sorted, as the data set's class folders are
CHANNEL = {"red": 0, "green": 1, "blue": 2}
# The colour of each test image (val/<class>/<n>.png), in file order: 3 of each class are
# shown, so the blue one of red (its 4th) is not.
TEST_IMAGES = {
    "blue": ["blue", "blue", "blue"],
    "green": ["green", "red", "blue"],
    "red": ["red", "red", "green", "blue"],
}


def _colour_classifier() -> Classifier:
    """A real model that predicts the colour of an image: the class of its strongest
    (normalised) channel."""
    linear = nn.Linear(3, len(CLASSES))
    with torch.no_grad():
        linear.weight.copy_(torch.eye(3)[[CHANNEL[name] for name in CLASSES]])
        linear.bias.zero_()
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear).eval()
    return Classifier(model, {"data": {"image_size": 16}}, CLASSES, "colours")


def _image(colour: str, shade: int) -> Image.Image:
    """A plain image of `colour`, darker with `shade`."""
    pixel = [0, 0, 0]
    pixel[CHANNEL[colour]] = 250 - 15 * shade
    return Image.new("RGB", (16, 16), tuple(pixel))


def _data_set(root: Path) -> dict[bytes, tuple[str, int]]:
    """train/ and val/ with TEST_IMAGES, each test image a shade of its own; each test
    image's pixels -> (its class, its number)."""
    pixels = {}
    for name, colours in TEST_IMAGES.items():
        (root / "train" / name).mkdir(parents=True)
        _image(name, 0).save(root / "train" / name / "0.png")
        (root / "val" / name).mkdir(parents=True)
        for n, colour in enumerate(colours):
            image = _image(colour, len(pixels))
            image.save(root / "val" / name / f"{n}.png")
            pixels[np.asarray(image).tobytes()] = (name, n)
    return pixels


def test_each_column_shows_its_misclassified_images_first(tmp_path):
    pixels = _data_set(tmp_path / "data")

    figure = prediction_grid(_colour_classifier(), str(tmp_path / "data"))

    grid = np.array(figure.axes).reshape(3, len(CLASSES))
    shown = {
        name: [pixels[np.asarray(ax.images[0].get_array()).tobytes()] for ax in grid[:, column]]
        for column, name in enumerate(CLASSES)
    }
    assert shown == {
        "blue": [("blue", 0), ("blue", 1), ("blue", 2)],
        "green": [("green", 1), ("green", 2), ("green", 0)],
        "red": [("red", 2), ("red", 0), ("red", 1)],
    }
    titles = {name: [ax.get_title() for ax in grid[:, c]] for c, name in enumerate(CLASSES)}
    predicted = {name: [title.split()[:2] for title in column] for name, column in titles.items()}
    assert predicted == {
        "blue": [[RIGHT, "blue"], [RIGHT, "blue"], [RIGHT, "blue"]],
        "green": [[WRONG, "red"], [WRONG, "blue"], [RIGHT, "green"]],
        "red": [[WRONG, "green"], [RIGHT, "red"], [RIGHT, "red"]],
    }
    colours = [ax.title.get_color() for ax in grid[:, CLASSES.index("green")]]
    assert colours == ["red", "red", "green"]
    assert "6 of 9 right" in figure.get_suptitle()

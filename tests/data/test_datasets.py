"""Decoding to RGB, transforms, and surviving files that are not (complete) images."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image

from inat.data.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageFolderDataset,
    build_transform,
    find_unreadable,
    load_rgb,
    to_rgb,
)
from inat.errors import DataError

from .trees import upright_photo, write_sideways_jpeg

# What turns an image stored with each EXIF orientation upright (the EXIF specification).
TURNS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _normalized(rgb: tuple[int, int, int]) -> torch.Tensor:
    value = torch.tensor(rgb, dtype=torch.float32) / 255
    return (value - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("L", (4, 4), 128), (128, 128, 128)),
        (Image.new("I;16", (4, 4), 40), (40, 40, 40)),
        (Image.new("CMYK", (4, 4), (0, 0, 0, 0)), (255, 255, 255)),
        (Image.new("RGBA", (4, 4), (255, 0, 0, 0)), (255, 255, 255)),  # transparent: white
        (Image.new("RGBA", (4, 4), (255, 0, 0, 255)), (255, 0, 0)),
        (Image.new("LA", (4, 4), (0, 0)), (255, 255, 255)),
        (Image.new("P", (4, 4), 0), (0, 0, 0)),
    ],
    ids=["L", "I;16", "CMYK", "RGBA-clear", "RGBA-opaque", "LA", "P"],
)
def test_every_mode_becomes_rgb(image: Image.Image, expected: tuple[int, int, int]) -> None:
    rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((1, 1)) == expected


def test_a_palette_with_a_transparent_index_is_composed_on_white() -> None:
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    image.info["transparency"] = 1
    assert to_rgb(image).getpixel((0, 0)) == (255, 255, 255)


def test_the_plain_transform_resizes_and_normalizes() -> None:
    x = build_transform(24, augment=False)(Image.new("RGB", (50, 30), (10, 120, 250)))
    assert x.shape == (3, 24, 24)
    assert x.dtype == torch.float32
    expected = _normalized((10, 120, 250))[:, None, None].expand(3, 24, 24)
    assert torch.allclose(x, expected, atol=1e-5)


def test_augmentation_is_random_and_keeps_the_output_shape() -> None:
    image = Image.linear_gradient("L").convert("RGB").resize((64, 48))
    augment = build_transform(32, augment=True)
    plain = build_transform(32, augment=False)
    torch.manual_seed(0)
    outputs = [augment(image) for _ in range(4)]
    assert all(x.shape == (3, 32, 32) for x in outputs)
    assert not all(torch.equal(outputs[0], x) for x in outputs[1:])
    assert torch.equal(plain(image), plain(image))


@pytest.mark.parametrize("orientation", [6, 8])
def test_a_photo_saved_sideways_is_decoded_upright(tmp_path: Path, orientation: int) -> None:
    path = write_sideways_jpeg(tmp_path / "phone.jpg", orientation)
    full, square = np.asarray(load_rgb(path)), np.asarray(load_rgb(path, 16))
    upright = np.asarray(upright_photo())
    assert full.shape == upright.shape == (32, 48, 3)
    assert np.abs(full.astype(int) - upright).mean() < 2  # JPEG's loss only
    red, grey = np.array((220, 20, 20)), np.array((128, 128, 128))
    assert np.abs(square[1, 1] - red).max() < 30  # the red corner at the top left
    assert np.abs(square[14, 1] - grey).max() < 30  # not at the bottom left


@pytest.mark.parametrize("orientation", sorted(TURNS))
def test_every_exif_orientation_is_applied_in_full_and_in_draft_mode(
    tmp_path: Path, orientation: int
) -> None:
    # Odd sides: a JPEG decoded at 1/2 or 1/4 scale ends in part of a pixel on two edges,
    # which must be left out on whichever edges they end up when turned upright.
    stored = Image.fromarray(np.random.default_rng(0).integers(0, 256, (131, 203, 3), np.uint8))
    stored.save(tmp_path / "plain.jpg", quality=90)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    stored.save(tmp_path / "tagged.jpg", quality=90, exif=exif)
    turn = TURNS[orientation]
    for side in (None, 32, 64):  # full size, drafted at 1/4, drafted at 1/2
        expected = np.asarray(load_rgb(tmp_path / "plain.jpg", side).transpose(turn))
        assert np.array_equal(np.asarray(load_rgb(tmp_path / "tagged.jpg", side)), expected)


def _write_images(folder: Path, n: int) -> list[tuple[str, int]]:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (20, 20), (i * 40, 0, 0)).save(folder / f"{i}.jpg", quality=95)
    return [(f"{i}.jpg", i) for i in range(n)]


def test_files_that_are_not_images_are_found_by_their_header(tmp_path: Path) -> None:
    _write_images(tmp_path, 2)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "page.jpg").write_text("<html>not found</html>")
    paths = sorted(tmp_path.iterdir())
    assert find_unreadable(paths) == [tmp_path / "empty.jpg", tmp_path / "page.jpg"]


def test_an_image_that_fails_to_decode_is_replaced_by_the_next(tmp_path: Path, caplog) -> None:
    samples = _write_images(tmp_path, 3)
    broken = tmp_path / "1.jpg"
    data = broken.read_bytes()
    broken.write_bytes(data[: data.index(b"\xff\xda") + 20])  # header intact, pixels cut off
    assert find_unreadable([broken]) == []  # so only loading can tell
    dataset = ImageFolderDataset(tmp_path, samples, build_transform(8, augment=False))
    with caplog.at_level(logging.WARNING, logger="inat.data"):
        images = [dataset[i] for i in (0, 1, 1, 2)]
    assert [label for _, label in images] == [0, 2, 2, 2]
    assert torch.equal(images[1][0], images[3][0])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per file, not once per use
    assert warnings[0].startswith("cannot decode 1.jpg")


def test_a_folder_where_nothing_decodes_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"junk")
    dataset = ImageFolderDataset(tmp_path, [("a.jpg", 0)], build_transform(8, augment=False))
    with pytest.raises(DataError, match="can be decoded"):
        dataset[0]

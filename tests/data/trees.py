"""Small data set folders and zips of them, written for tests."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

from PIL import ExifTags, Image

# How a camera stores an upright image for each EXIF orientation it then writes: the inverse
# of what ImageOps.exif_transpose does to turn it upright.
SIDEWAYS = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}

SMALL_TREE = {
    "train": {"Aves": 6, "Fungi": 6, "Plantae": 6},
    "val": {"Aves": 2, "Fungi": 2, "Plantae": 2},
}


def write_tree(root: Path, counts: Mapping[str, Mapping[str, int]] = SMALL_TREE) -> Path:
    """root/<split>/<class>/<class>_<i>.png images of distinct colours; returns root."""
    for split, classes in counts.items():
        for label, (name, n) in enumerate(classes.items()):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                colour = (40 * label % 256, 10 * i % 256, 200 if split == "val" else 100)
                Image.new("RGB", (12, 10), colour).save(folder / f"{name.lower()}_{i}.png")
    return root


def write_zip(folder: Path, archive: Path, prefix: str = "") -> Path:
    """A zip of every file below `folder`, each stored as `prefix` + its relative path."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return archive


def upright_photo() -> Image.Image:
    """A 48x32 grey photo with a red top-left corner: which way up it is shows."""
    image = Image.new("RGB", (48, 32), (128, 128, 128))
    image.paste((220, 20, 20), (0, 0, 12, 8))
    return image


def write_sideways_jpeg(path: Path, orientation: int = 6) -> Path:
    """upright_photo() as a phone saves it: its pixels turned (SIDEWAYS), and the EXIF
    Orientation tag `orientation` saying how to turn them upright again."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    upright_photo().transpose(SIDEWAYS[orientation]).save(path, quality=95, exif=exif)
    return path

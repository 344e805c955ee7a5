"""A corpus of bad inputs, each through the real `inat train`: odd images are converted,
undecodable ones skipped and listed, broken data sets refused with exit code 65."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers.runs import TINY, location, run_inat
from PIL import Image

from inat.data import resolve_source

pytestmark = pytest.mark.slow

ARGS = ["train", *TINY, "trainer.epochs=1"]


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _corpus() -> dict[str, bytes | None]:
    """Odd and bad files by name; None marks a file made unreadable (no permission)."""
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), np.uint8))
    good = _jpeg(noise)
    return {
        # decodable oddities: converted
        "cmyk.jpg": _jpeg(noise.convert("CMYK")),
        "gray.jpg": _jpeg(noise.convert("L")),
        "sixteen_bit.png": _png(Image.fromarray(np.full((20, 20), 40000, np.uint16))),
        "palette.png": _png(noise.convert("P")),
        "one_pixel.jpg": _jpeg(Image.new("RGB", (1, 1), (200, 10, 10))),
        "png_named.jpg": _png(noise),
        # undecodable: skipped and listed, or replaced while loading
        "text_named.jpg": b"this is not an image\n",
        "truncated.jpg": good[: len(good) // 2],
        "corrupt.jpg": good[:200] + bytes(len(good) - 200),
        # 192 million pixels: over PIL's decompression-bomb limit, a few kB on disk
        "bomb.png": _png(Image.new("1", (12000, 16000))),
        "unreadable.jpg": None,
    }


SKIPPED = {"text_named.jpg", "bomb.png", "unreadable.jpg"}


def _data_set(tmp_path: Path) -> Path:
    """A generated data set with the corpus added to one training class."""
    generated = resolve_source("synthetic", tmp_path / "gen", {"train_per_class": 40})
    root = tmp_path / "data"
    for path in generated.rglob("*"):
        if path.is_file():
            target = root / path.relative_to(generated)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    folder = root / "train" / "Aves"
    for name, content in _corpus().items():
        (folder / name).write_bytes(content if content is not None else b"\xff\xd8")
        if content is None:
            (folder / name).chmod(0o000)
    return root


def _run_unprivileged(tmp_path: Path, *args: str):
    """`inat ARGS` in a process that file permissions bind (root runs without the two
    capabilities that bypass them), so the unreadable file is really unreadable."""
    prefix = []
    if os.geteuid() == 0:
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    return run_inat(tmp_path, *args, prefix=prefix)


# Files whose header is fine but whose pixels are not: replaced while loading (or when the
# prepared pipeline decodes them once), and listed too.
REPLACED = {"truncated.jpg", "corrupt.jpg"}


@pytest.mark.parametrize(
    "pipeline", [["data.pipeline=prepared"], ["data.pipeline=images", "data.num_workers=2"]]
)
def test_odd_images_are_converted_and_undecodable_ones_skipped_and_listed(tmp_path, pipeline):
    root = _data_set(tmp_path)
    done = _run_unprivileged(
        tmp_path,
        *ARGS,
        *location(tmp_path),
        f"data.source={root}",
        "data.max_bad_fraction=0.05",
        *pipeline,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "out" / "default" / "result.json").read_text())
    assert result["status"] == "done"
    skipped = {Path(p).name for p in result["skipped_images"]}
    assert skipped >= SKIPPED | REPLACED
    assert all(p.startswith("train/Aves/") for p in result["skipped_images"])
    assert not skipped & {
        "cmyk.jpg",
        "gray.jpg",
        "sixteen_bit.png",
        "palette.png",
        "one_pixel.jpg",
        "png_named.jpg",
    }
    assert "not readable images" in done.stdout + done.stderr


def test_too_many_bad_files_fail_with_exit_65_naming_the_fix(tmp_path):
    root = _data_set(tmp_path)
    done = _run_unprivileged(
        tmp_path, *ARGS, *location(tmp_path), f"data.source={root}", "data.max_bad_fraction=0"
    )
    out = done.stdout + done.stderr
    assert done.returncode == 65, out
    assert "data.max_bad_fraction" in out and "Traceback" not in out
    assert not (tmp_path / "out" / "default" / "checkpoints").exists()


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not a zip", "not a zip"),
        ("escapes the target", ".."),
        ("no train folder", "train"),
        ("empty class folder", "Fungi"),
        ("class missing from train", "Mollusca"),
        ("one image per class", "Aves has 1 readable image, Fungi has 1 readable image"),
        ("class folder linked outside", "train/Etc -> "),
    ],
)
def test_broken_data_sets_are_refused_with_exit_65(tmp_path, case, message):
    image = _jpeg(Image.new("RGB", (8, 8)))
    layout = {
        f"{split}/{c}/{i}.jpg": image
        for split in ("train", "val")
        for c in ("Aves", "Fungi")
        for i in range(3)
    }
    if case == "not a zip":
        source = tmp_path / "data.zip"
        source.write_text("<html>not found</html>")
    elif case == "escapes the target":
        source = _zip(tmp_path / "data.zip", {**layout, "../../outside.jpg": image})
    elif case == "no train folder":
        source = _zip(tmp_path / "data.zip", {f"images/{i}.jpg": image for i in range(3)})
    elif case == "empty class folder":
        source = tmp_path / "tree"
        for name, content in layout.items():
            if not name.startswith("train/Fungi/"):
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                (source / name).write_bytes(content)
        (source / "train" / "Fungi").mkdir()
    elif case == "one image per class":
        source = tmp_path / "tree"
        for name, content in layout.items():
            if name.startswith("val/") or name.endswith("/0.jpg"):
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                (source / name).write_bytes(content)
    elif case == "class folder linked outside":
        source = tmp_path / "tree"
        for name, content in {**layout, "../outside/1.jpg": image}.items():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes(content)
        for split in ("train", "val"):
            (source / split / "Etc").symlink_to(tmp_path / "outside")
    else:
        source = _zip(tmp_path / "data.zip", {**layout, "val/Mollusca/1.jpg": image})
    done = run_inat(
        tmp_path, *ARGS, *location(tmp_path), f"data.source={source}", "data.num_classes=2"
    )
    out = done.stdout + done.stderr
    assert done.returncode == 65, out
    assert message in out and "Traceback" not in out
    assert not (tmp_path / "outside.jpg").exists()
    assert not (tmp_path / "out" / "default" / "checkpoints").exists()


@pytest.mark.parametrize("value", ["abc", "-1", "2"])
def test_a_bad_max_bad_fraction_is_refused_before_any_image_is_read(tmp_path, value):
    done = run_inat(tmp_path, *ARGS, *location(tmp_path), f"data.max_bad_fraction={value}")
    out = done.stdout + done.stderr
    assert done.returncode == 65, out
    assert "data.max_bad_fraction=" in out and "use a number in [0, 1)" in out
    assert "Traceback" not in out and not (tmp_path / "cache").exists()

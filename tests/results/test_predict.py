"""`inat predict`: photos turned upright by their EXIF orientation; files that are not
readable images skipped and listed, in text and JSON, unless no file is one (exit code 65)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from data.trees import upright_photo, write_sideways_jpeg
from helpers.runs import TINY
from omegaconf import OmegaConf
from PIL import Image

from inat.cli import main
from inat.compose import compose
from inat.data import CLASS_NAMES
from inat.models import build_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The state.pt of the tiny scratch CNN, untrained: seeded weights fix what it predicts."""
    cfg = compose(TINY)
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=len(CLASS_NAMES), image_size=cfg.data.image_size)
    state = {
        "model": model.state_dict(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "classes": list(CLASS_NAMES),
    }
    path = tmp_path_factory.mktemp("checkpoint") / "state.pt"
    torch.save(state, path)
    return path


@pytest.fixture
def predict(checkpoint, capsys, caplog):
    """Run `inat predict CHECKPOINT ARGS` in-process: (exit code, stdout, the error logged)."""
    caplog.set_level(logging.ERROR, logger="inat")

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        caplog.clear()
        code = main(["predict", str(checkpoint), *args])
        return code, capsys.readouterr().out, caplog.text

    return run


def test_a_photo_saved_sideways_is_predicted_upright(predict, tmp_path: Path) -> None:
    phone = write_sideways_jpeg(tmp_path / "phone.jpg")
    # References without EXIF, kept losslessly: the phone's pixels as stored, and turned
    # upright by hand (orientation 6: a quarter turn clockwise).
    with Image.open(phone) as image:
        stored = np.asarray(image.convert("RGB"))
    Image.fromarray(stored).save(tmp_path / "as_stored.png")
    Image.fromarray(np.rot90(stored, k=-1)).save(tmp_path / "upright.png")

    code, out, _ = predict(str(tmp_path), "--top-k", str(len(CLASS_NAMES)), "--json")

    assert code == 0
    result = json.loads(out)
    assert result["skipped"] == []
    probabilities = {
        Path(p["image"]).name: {t["class"]: t["probability"] for t in p["top"]}
        for p in result["predictions"]
    }
    assert sorted(probabilities) == ["as_stored.png", "phone.jpg", "upright.png"]
    phone_probs, upright_probs, stored_probs = (
        np.array([probabilities[name][c] for c in CLASS_NAMES])
        for name in ("phone.jpg", "upright.png", "as_stored.png")
    )
    assert np.array_equal(phone_probs, upright_probs)
    # Which way up matters even to this untrained model (about 2e-5; float32 resolves 1e-8).
    assert np.abs(phone_probs - stored_probs).max() > 1e-6


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of two photos, a text file named .jpg and a JPEG cut off after its header."""
    folder = tmp_path / "photos"
    folder.mkdir()
    upright_photo().save(folder / "a.png")
    upright_photo().save(folder / "d.jpg", quality=95)
    (folder / "b_notes.jpg").write_text("not an image\n")
    data = (folder / "d.jpg").read_bytes()
    (folder / "c_cut.jpg").write_bytes(data[: data.index(b"\xff\xda") + 20])
    return folder


def test_files_that_are_not_images_are_skipped_and_listed(predict, photos: Path) -> None:
    code, out, _ = predict(str(photos), "--top-k", "2")

    assert code == 0
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines[:2]] == [
        str(photos / "a.png"),
        str(photos / "d.jpg"),
    ]
    assert lines[2] == "skipped 2 file(s):"
    assert lines[3].startswith(f"  {photos / 'b_notes.jpg'}: not a readable image (cannot identify")
    assert lines[4].startswith(f"  {photos / 'c_cut.jpg'}: not a readable image (")
    assert len(lines) == 5

    code, out, _ = predict(str(photos), "--json")

    assert code == 0
    result = json.loads(out)
    assert [p["image"] for p in result["predictions"]] == [
        str(photos / "a.png"),
        str(photos / "d.jpg"),
    ]
    skipped = result["skipped"]
    assert [s["image"] for s in skipped] == [str(photos / "b_notes.jpg"), str(photos / "c_cut.jpg")]
    assert all(s["reason"].startswith("not a readable image (") for s in skipped)


def test_a_folder_without_a_readable_image_is_refused(predict, photos: Path) -> None:
    for name in ("a.png", "d.jpg"):
        (photos / name).unlink()

    code, out, message = predict(str(photos))

    assert code == 65 and out == ""
    assert "no file given is a readable image, so there is nothing to predict" in message
    assert f"{photos / 'b_notes.jpg'} is not a readable image" in message
    assert f"{photos / 'c_cut.jpg'} is not a readable image" in message
    assert "Pass JPEG or PNG files" in message

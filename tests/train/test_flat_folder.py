"""inat train on a plain folder of class folders (no train/ and val/): it trains, with the
split said in the log and recorded in result.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.runs import TINY_MODEL, location, run_inat
from PIL import Image

pytestmark = pytest.mark.slow


def test_a_flat_folder_of_class_folders_trains(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for label, name in enumerate(["Amphibia", "Aves", "Fungi"]):
        (photos / name).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (40, 30), (80 * label, 20 * i, 90)).save(photos / name / f"{i}.jpg")
    args = [
        "train",
        *TINY_MODEL,
        f"data.source={photos}",
        "data.num_classes=3",
        "data.image_size=32",
        "data.batch_size=8",
        "trainer.epochs=1",
        "name=flat",
    ]
    done = run_inat(tmp_path, *args, *location(tmp_path))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"{photos} has no train/ and val/: its class folders are split" in output
    result = json.loads((tmp_path / "out" / "flat" / "result.json").read_text())
    assert result["status"] == "done" and result["classes"] == ["Amphibia", "Aves", "Fungi"]
    assert result["data_split"]["layout"] == "class folders"
    assert result["data_split"]["images"] == {"train": 18, "validation": 6, "test": 6}
    assert sum(sum(row) for row in result["test"]["confusion_matrix"]) == 6
    assert sorted(p.name for p in photos.parent.iterdir()) == ["cache", "out", "photos"]

"""`inat evaluate` on a plain folder of class folders (FOLDER/<class>/<images>, no train/ and
val/): some or all of the checkpoint's classes, scored with the checkpoint's settings."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers.runs import TINY, location, run_inat

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run trained on generated images: (its run directory, its test set's val/)."""
    tmp = tmp_path_factory.mktemp("evaluate")
    done = run_inat(tmp, "train", *TINY, *location(tmp), "trainer.epochs=1")
    assert done.returncode == 0, done.stdout + done.stderr
    [val] = [p for p in (tmp / "cache").glob("synthetic-*/val") if p.is_dir()]
    return tmp / "out" / "default", val


def test_a_plain_folder_of_some_classes_is_the_test_set(trained, tmp_path):
    run_dir, val = trained
    folder = tmp_path / "photos"
    for name in ("Amphibia", "Aves"):
        shutil.copytree(val / name, folder / name)
    counts = {name: len(list((folder / name).iterdir())) for name in ("Amphibia", "Aves")}

    done = run_inat(tmp_path, "evaluate", str(run_dir), str(folder), "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    evaluation = json.loads(done.stdout)
    assert evaluation["images"] == sum(counts.values())
    assert set(evaluation["per_class_accuracy"]) == set(counts)
    classes = evaluation["classes"]
    rows = dict(zip(classes, evaluation["confusion_matrix"], strict=True))
    assert {name: sum(row) for name, row in rows.items() if sum(row)} == counts


def test_a_class_folder_the_checkpoint_does_not_know_is_refused(trained, tmp_path):
    run_dir, val = trained
    shutil.copytree(val / "Aves", tmp_path / "photos" / "Aves")
    shutil.copytree(val / "Fungi", tmp_path / "photos" / "Mushrooms")

    done = run_inat(tmp_path, "evaluate", str(run_dir), str(tmp_path / "photos"))

    assert done.returncode == 65, done.stdout + done.stderr
    assert "holds the folder(s) Mushrooms, which are not classes the checkpoint" in done.stderr

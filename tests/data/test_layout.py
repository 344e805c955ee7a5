"""Finding the data set root, its classes and its images."""

from __future__ import annotations

from pathlib import Path

import pytest

from inat.data.layout import find_classes, find_root, list_images, require_every_class
from inat.errors import DataError

from .trees import write_tree


def test_the_root_is_the_folder_or_its_only_subfolder(tmp_path: Path) -> None:
    direct = write_tree(tmp_path / "direct")
    assert find_root(direct) == direct
    nested = write_tree(tmp_path / "nested" / "inaturalist_12K")
    (tmp_path / "nested" / ".hidden").mkdir()
    assert find_root(tmp_path / "nested") == nested


def test_a_folder_without_train_and_val_names_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "photos" / "birds").mkdir(parents=True)
    (tmp_path / "photos" / "notes.txt").write_text("")
    with pytest.raises(DataError, match=r"found: photos/, holding birds/, notes\.txt"):
        find_root(tmp_path)
    (tmp_path / "photos" / "train").mkdir()
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError, match=r"from.zip has no train/ and val/.*found: other/, photos/"):
        find_root(tmp_path, "from.zip")


def test_classes_are_the_sorted_train_folders(tree: Path) -> None:
    (tree / "train" / ".cache").mkdir()
    assert find_classes(tree) == ["Aves", "Fungi", "Plantae"]


def test_classes_missing_on_either_side_are_named(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {"train": {"Aves": 1, "Fungi": 1, "Insecta": 1}, "val": {"Aves": 1, "Reptilia": 1}},
    )
    with pytest.raises(DataError) as raised:
        find_classes(root)
    message = str(raised.value)
    assert f"{root / 'val'} lacks Fungi, Insecta" in message
    assert f"{root / 'train'} lacks Reptilia" in message


def test_images_are_listed_sorted_with_labels_skipping_hidden_and_other_files(tree: Path) -> None:
    aves = tree / "train" / "Aves"
    (aves / "notes.txt").write_text("")
    (aves / "._aves_0.png").write_bytes(b"")
    (aves / "sub").mkdir()
    (aves / "sub" / "deep.JPG").write_bytes(b"")
    samples = list_images(tree / "train", ["Aves", "Fungi"])
    assert samples[:7] == [(f"Aves/aves_{i}.png", 0) for i in range(6)] + [("Aves/sub/deep.JPG", 0)]
    assert samples[7:] == [(f"Fungi/fungi_{i}.png", 1) for i in range(6)]


def test_a_class_without_images_is_a_data_error(tree: Path) -> None:
    for image in (tree / "val" / "Fungi").iterdir():
        image.unlink()
    classes = find_classes(tree)
    samples = list_images(tree / "val", classes)
    with pytest.raises(DataError, match=r"Fungi in .*val hold no readable image.*num_classes"):
        require_every_class(samples, classes, tree / "val")

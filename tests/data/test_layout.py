"""Finding the data set root, its classes and its images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from inat.data.layout import (
    class_folders,
    find_classes,
    find_root,
    has_splits,
    list_images,
    require_every_class,
)
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


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the data set, holding an image: what a link must not reach."""
    folder = tmp_path / "outside"
    folder.mkdir()
    Image.new("RGB", (4, 4)).save(folder / "secret.png")
    return folder


def test_a_class_folder_linked_outside_the_data_set_is_refused(tree: Path, outside) -> None:
    (tree / "train" / "Etc").symlink_to(outside)
    (tree / "val" / "Etc").symlink_to(outside)
    with pytest.raises(DataError) as raised:
        find_classes(tree)
    message = str(raised.value)
    assert f"train/Etc -> {outside}, val/Etc -> {outside}" in message
    assert "Copy what they point to into the data set (cp -rL), or remove the links" in message
    with pytest.raises(DataError, match=f"train holds symbolic links .*: Etc -> {outside}"):
        class_folders(tree / "train")  # as a plain folder of class folders (inat evaluate)


def test_an_image_linked_outside_the_data_set_is_refused(tree: Path, outside) -> None:
    (tree / "val" / "Fungi" / "fungi_9.png").symlink_to(outside / "secret.png")
    classes = find_classes(tree)
    with pytest.raises(DataError, match=f"val/Fungi/fungi_9.png -> {outside / 'secret.png'}"):
        list_images(tree / "val", classes)
    with pytest.raises(DataError, match=f"Fungi/fungi_9.png -> {outside / 'secret.png'}"):
        list_images(tree / "val", classes, root=tree / "val")


def test_links_that_stay_inside_the_data_set_are_followed(tree: Path, tmp_path: Path) -> None:
    shutil.move(tree / "train" / "Aves", tree / "pool")
    (tree / "train" / "Aves").symlink_to(Path("..") / "pool")
    (tree / "val" / "Fungi" / "fungi_9.png").symlink_to(Path("..") / ".." / "pool" / "aves_0.png")
    (tmp_path / "link").symlink_to(tree)  # the data set itself reached through a link
    for root in (tree, tmp_path / "link"):
        classes = find_classes(root)
        assert classes == ["Aves", "Fungi", "Plantae"]
        assert list_images(root / "train", classes)[:6] == [
            (f"Aves/aves_{i}.png", 0) for i in range(6)
        ]
        assert ("Fungi/fungi_9.png", 1) in list_images(root / "val", classes)


def test_a_folder_of_class_folders_of_images_is_a_data_set_root(tmp_path: Path) -> None:
    for name in ("Amphibia", "Aves"):
        (tmp_path / "outer" / "photos" / name).mkdir(parents=True)
        (tmp_path / "outer" / "photos" / name / "0.jpg").write_bytes(b"")
    photos = tmp_path / "outer" / "photos"
    assert find_root(photos) == photos
    assert find_root(tmp_path / "outer") == photos  # its only subfolder
    assert not has_splits(photos)
    # One class folder is no data set: it could as well be a wrapper folder.
    with pytest.raises(DataError, match="no class folders of images"):
        find_root(photos / "Aves")

"""Every kind of data source, made available as a folder holding train/ and val/."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from inat.data import download_command, resolve_source
from inat.data.cache import MARKER
from inat.data.layout import find_classes, list_images
from inat.data.sources import from_storage_tree, from_storage_zip
from inat.errors import DataError
from inat.storage import LocalStorage

from .trees import write_zip

CLASSES = ["Aves", "Fungi", "Plantae"]


def _relfiles(root: Path) -> list[str]:
    files = (p for p in root.rglob("*") if p.is_file() and p.name != MARKER)
    return sorted(p.relative_to(root).as_posix() for p in files)


def _entries(cache: Path) -> list[str]:
    """The finished or unfinished entries in `cache` (not locks or the downloads folder)."""
    return sorted(p.name for p in cache.iterdir() if p.is_dir() and p.name != "downloads")


def test_a_local_zip_is_extracted_once_into_the_cache(tree: Path, tmp_path: Path) -> None:
    archive = write_zip(tree, tmp_path / "nature_12K.zip", prefix="inaturalist_12K/")
    cache = tmp_path / "cache"
    root = resolve_source(str(archive), cache)
    assert root.name == "inaturalist_12K"
    assert (root.parent / MARKER).is_file()
    assert root.parent.parent == cache
    assert _relfiles(root) == _relfiles(tree)
    (root / "train/Aves/aves_0.png").unlink()  # extracting again would bring it back
    assert resolve_source(str(archive), cache) == root
    assert not (root / "train/Aves/aves_0.png").exists()
    assert archive.is_file()  # the user's own zip is kept


def test_a_changed_zip_gets_a_new_cache_entry(tree: Path, tmp_path: Path) -> None:
    archive = write_zip(tree, tmp_path / "nature_12K.zip")
    first = resolve_source(str(archive), tmp_path / "cache")
    stat = archive.stat()
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert resolve_source(str(archive), tmp_path / "cache") != first


def test_an_extracted_folder_is_used_in_place(tree: Path, tmp_path: Path) -> None:
    assert resolve_source(str(tree), tmp_path / "cache") == tree
    shutil.move(tree, tmp_path / "outer" / "inaturalist_12K")
    assert resolve_source(str(tmp_path / "outer")) == tmp_path / "outer" / "inaturalist_12K"
    assert not (tmp_path / "cache").exists()


def test_a_zip_without_train_names_what_it_holds(tmp_path: Path) -> None:
    archive = tmp_path / "nature_12K.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("photos/a.jpg", b"")
        zf.writestr("readme.txt", b"")
    with pytest.raises(
        DataError,
        match=r"nature_12K\.zip has no train/ and val/ folders; found: photos/, readme\.txt\.",
    ):
        resolve_source(str(archive), tmp_path / "cache")
    assert _entries(tmp_path / "cache") == []


def test_a_missing_source_says_what_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"not an existing file or folder.*Set data\.source"):
        resolve_source(str(tmp_path / "nowhere.zip"), tmp_path / "cache")


def test_a_url_is_downloaded_once_and_the_archive_is_not_kept(
    tree: Path, tmp_path: Path, http_server
) -> None:
    archive = write_zip(tree, tmp_path / "served.zip", prefix="inaturalist_12K/")
    http_server.files["/datasets/nature_12K.zip"] = archive.read_bytes()
    url = http_server.url("/datasets/nature_12K.zip")
    cache = tmp_path / "cache"
    root = resolve_source(url, cache)
    assert _relfiles(root) == _relfiles(tree)
    assert list((cache / "downloads").iterdir()) == []
    assert resolve_source(url, cache) == root
    assert len(http_server.ranges) == 1


def test_a_corrupt_download_is_refused_and_fetched_afresh_next_time(
    tree: Path, tmp_path: Path, http_server
) -> None:
    good = write_zip(tree, tmp_path / "served.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "served.zip") as zf:
        info = zf.getinfo("train/Aves/aves_0.png")
    bad = bytearray(good)
    bad[info.header_offset + 30 + len(info.filename) + 10] ^= 0xFF  # inside the compressed data
    http_server.files["/nature_12K.zip"] = bytes(bad)
    url = http_server.url("/nature_12K.zip")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="corrupt"):
        resolve_source(url, cache)
    assert _entries(cache) == []
    assert list((cache / "downloads").iterdir()) == []
    http_server.files["/nature_12K.zip"] = good
    assert find_classes(resolve_source(url, cache)) == CLASSES
    assert http_server.ranges == [None, None]  # downloaded again from the start


def test_a_web_page_instead_of_a_zip_is_a_clear_data_error(tmp_path: Path, http_server) -> None:
    http_server.files["/nature_12K.zip"] = b"<!DOCTYPE html><p>Sign in to continue</p>"
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="is not a zip archive") as raised:
        resolve_source(http_server.url("/nature_12K.zip"), cache)
    # The message is true about the disk: the download is gone, nothing to delete.
    assert "that copy is already deleted" in str(raised.value)
    assert "delete it" not in str(raised.value)
    assert list((cache / "downloads").iterdir()) == []


def test_a_download_cut_short_without_a_length_is_fetched_whole(
    tree: Path, tmp_path: Path, http_server
) -> None:
    served = write_zip(tree, tmp_path / "served.zip", prefix="inaturalist_12K/").read_bytes()
    http_server.files["/nature_12K.zip"] = served
    http_server.announce_length = False
    http_server.cuts = [len(served) // 2]
    root = resolve_source(http_server.url("/nature_12K.zip"), tmp_path / "cache")
    assert _relfiles(root) == _relfiles(tree)
    assert http_server.ranges == [None, f"bytes={len(served) // 2}-"]


def test_zips_and_trees_in_a_storage_location(tree: Path, tmp_path: Path) -> None:
    store = tmp_path / "bucket"
    store.mkdir()
    write_zip(tree, store / "nature_12K.zip", prefix="inaturalist_12K/")
    shutil.copytree(tree, store / "extracted")
    cache = tmp_path / "cache"
    from_zip = from_storage_zip(
        LocalStorage(store), "nature_12K.zip", "s3://b/nature_12K.zip", cache
    )
    from_tree = from_storage_tree(LocalStorage(store / "extracted"), "s3://b/extracted", cache)
    assert _relfiles(from_zip) == _relfiles(from_tree) == _relfiles(tree)
    assert list((cache / "downloads").iterdir()) == []
    with pytest.raises(DataError, match=r"s3://b/other\.zip does not exist"):
        from_storage_zip(LocalStorage(store), "other.zip", "s3://b/other.zip", cache)
    with pytest.raises(DataError, match="found no files under s3://b/empty"):
        from_storage_tree(LocalStorage(store / "empty"), "s3://b/empty", cache)


def test_s3_uris_of_a_zip_and_of_a_tree(
    tree: Path, tmp_path: Path, s3_client, s3_bucket: str
) -> None:
    client = s3_client
    archive = write_zip(tree, tmp_path / "nature_12K.zip", prefix="inaturalist_12K/")
    client.upload_file(str(archive), s3_bucket, "sets/nature_12K.zip")
    for relpath in _relfiles(tree):
        client.upload_file(str(tree / relpath), s3_bucket, f"sets/tree/inaturalist_12K/{relpath}")
    cache = tmp_path / "cache"
    from_zip = resolve_source(f"s3://{s3_bucket}/sets/nature_12K.zip", cache)
    from_tree = resolve_source(f"s3://{s3_bucket}/sets/tree/", cache)
    assert from_tree.name == "inaturalist_12K"
    assert _relfiles(from_zip) == _relfiles(from_tree) == _relfiles(tree)
    assert len(list_images(from_tree / "train", CLASSES)) == 18


def test_synthetic_data_is_cached_by_its_settings(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    spec = {"train_per_class": 4, "image_side": 16, "seed": 1}
    root = resolve_source("synthetic", cache, spec)
    assert resolve_source("synthetic", cache, spec) == root
    assert resolve_source("synthetic", cache, {**spec, "seed": 2}) != root
    assert len(list_images(root / "val", find_classes(root))) == 20


def test_download_command_prints_only_the_data_folder(tree: Path, tmp_path: Path, capsys) -> None:
    archive = write_zip(tree, tmp_path / "nature_12K.zip")
    root = download_command(str(archive), tmp_path / "cache")
    assert capsys.readouterr().out == f"{root}\n"
    assert find_classes(root) == CLASSES

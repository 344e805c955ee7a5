"""Zip extraction that does not trust the archive."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from inat.data.extract import extract_zip
from inat.errors import DataError


def _zip(path: Path, entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def test_extracts_files_and_skips_macos_clutter(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "a.zip",
        {
            "inaturalist_12K/train/Aves/1.jpg": b"one",
            "inaturalist_12K/val/Aves/2.jpg": b"two",
            "__MACOSX/inaturalist_12K/._1.jpg": b"fork",
            "inaturalist_12K/train/.DS_Store": b"finder",
            "inaturalist_12K/train/Aves/._1.jpg": b"fork",
        },
    )
    extract_zip(archive, tmp_path / "out")
    files = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
    )
    assert [f for f in files if "." in f] == [
        "inaturalist_12K/train/Aves/1.jpg",
        "inaturalist_12K/val/Aves/2.jpg",
    ]
    assert (tmp_path / "out/inaturalist_12K/train/Aves/1.jpg").read_bytes() == b"one"


@pytest.mark.parametrize("name", ["../escape.txt", "train/../../escape.txt", "/tmp/escape.txt"])
def test_entries_leaving_the_target_are_refused_before_anything_is_written(
    tmp_path: Path, name: str
) -> None:
    archive = _zip(tmp_path / "evil.zip", {"train/ok.jpg": b"ok", name: b"evil"})
    out = tmp_path / "deep" / "out"
    out.mkdir(parents=True)
    with pytest.raises(DataError, match="unsafe path"):
        extract_zip(archive, out)
    assert list(out.iterdir()) == []
    assert not (tmp_path / "deep" / "escape.txt").exists()
    assert not (tmp_path / "escape.txt").exists()


def test_an_archive_unpacking_beyond_the_limit_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bomb.zip", {"train/zeros.bin": bytes(1_000_000)})
    assert archive.stat().st_size < 10_000  # small on disk, large unpacked
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError, match="zip bomb"):
        extract_zip(archive, out, max_bytes=500_000)
    assert list(out.iterdir()) == []


def test_a_file_that_is_not_a_zip_is_a_clear_data_error(tmp_path: Path) -> None:
    page = tmp_path / "nature_12K.zip"
    page.write_text("<html>Access denied</html>")
    with pytest.raises(DataError, match=r"is not a zip archive \(it starts with b'<html>"):
        extract_zip(page, tmp_path / "out")


def test_a_corrupt_entry_fails_the_integrity_check(tmp_path: Path) -> None:
    content = b"pixels" * 1000
    archive = _zip(tmp_path / "a.zip", {"train/Aves/1.jpg": content}, zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    at = data.index(content) + 100
    data[at] ^= 0xFF  # one flipped byte: the size still matches, the CRC does not
    archive.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt"):
        extract_zip(archive, tmp_path / "out")

"""Zip extraction that does not trust the archive."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from inat.data.extract import MAX_COMPRESSION_RATIO, extract_zip
from inat.errors import DataError, ExitCode

LAYOUT = {"nature/train/Aves/1.jpg": b"one", "nature/val/Aves/2.jpg": b"two"}


def _refused(archive: Path, tmp_path: Path, match: str, **limits: int) -> DataError:
    """Extract `archive`; assert it is refused with `match`, exit 65 and nothing written."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    with pytest.raises(DataError, match=match) as refused:
        extract_zip(archive, out, **limits)
    assert refused.value.exit_code == ExitCode.BAD_INPUT
    assert list(out.iterdir()) == []
    return refused.value


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
    archive = _zip(
        tmp_path / "bomb.zip", {"train/zeros.bin": bytes(400_000), "val/zeros.bin": bytes(400_000)}
    )
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
    archive = _zip(
        tmp_path / "a.zip",
        {"train/Aves/1.jpg": content, "val/Aves/2.jpg": b"two"},
        zipfile.ZIP_STORED,
    )
    data = bytearray(archive.read_bytes())
    at = data.index(content) + 100
    data[at] ^= 0xFF  # one flipped byte: the size still matches, the CRC does not
    archive.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt"):
        extract_zip(archive, tmp_path / "out")


def test_an_entry_compressed_beyond_the_ratio_is_refused_before_writing(tmp_path: Path) -> None:
    bomb = bytes(8 << 20)  # 8 MiB of zeros deflate to about 8 KiB: a ratio of 1000:1
    archive = _zip(tmp_path / "bomb.zip", {**LAYOUT, "nature/train/Aves/big.jpg": bomb})
    error = _refused(archive, tmp_path, "zip bomb")
    assert "'nature/train/Aves/big.jpg'" in str(error)
    assert f"{MAX_COMPRESSION_RATIO}:1" in str(error)


def test_many_small_bombs_are_refused_by_the_archive_ratio(tmp_path: Path) -> None:
    entries = {f"nature/train/Aves/{i}.jpg": bytes(200_000) for i in range(40)}  # 8 MB
    archive = _zip(tmp_path / "bombs.zip", {**LAYOUT, **entries})
    error = _refused(archive, tmp_path, "zip bomb")
    assert "its archive unpacks" in str(error)


def test_entries_that_compress_like_photos_are_extracted(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "ok.zip", {**LAYOUT, "nature/train/Aves/3.jpg": os.urandom(2 << 20)})
    extract_zip(archive, tmp_path / "out")
    assert (tmp_path / "out/nature/train/Aves/3.jpg").stat().st_size == 2 << 20


def test_too_many_entries_are_refused_before_writing(tmp_path: Path) -> None:
    entries = {f"nature/train/Aves/{i}.jpg": b"x" for i in range(20)}
    archive = _zip(tmp_path / "many.zip", {**LAYOUT, **entries})
    _refused(archive, tmp_path, "more than 10 entries", max_entries=10)


def test_an_archive_without_train_and_val_is_refused_before_writing(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "photos.zip", {"holiday/a.jpg": b"a", "holiday/train/b.jpg": b"b"})
    error = _refused(archive, tmp_path, "no train/ and val/ folders")
    assert "holiday/" in str(error)


def test_an_encrypted_zip_is_refused_naming_it(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "secret.zip", LAYOUT, zipfile.ZIP_STORED)
    # Set the "encrypted" flag bit in every local and central header (zipfile cannot encrypt).
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        while at != -1:
            data[at + offset] |= 0x1
            at = data.find(signature, at + 4)
    archive.write_bytes(bytes(data))
    _refused(archive, tmp_path, r"secret\.zip .*is encrypted")


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ({"nature/train/Aves": b"file", "nature/train/Aves/1.jpg": b"one"}, "as a file and as"),
        ({"nature/train/Aves/": b"", "nature/train/Aves/x": b""}, None),
        ({"nature/train/Aves/" + "a" * 300 + ".jpg": b"long"}, "too long"),
    ],
)
def test_entries_that_clash_are_refused_naming_the_entry(
    tmp_path: Path, entries: dict[str, bytes], match: str | None
) -> None:
    archive = _zip(tmp_path / "clash.zip", {**LAYOUT, **entries})
    if match is None:  # a folder entry and a file inside it do not clash
        extract_zip(archive, tmp_path / "out")
        return
    error = _refused(archive, tmp_path, match)
    assert "nature/train/Aves" in str(error)


def test_a_name_twice_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "twice.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in LAYOUT.items():
            zf.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("nature/train/Aves/1.jpg", b"again")
    _refused(archive, tmp_path, "twice")

"""Extract a zip archive without trusting it: no paths outside the target, no zip bombs."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from inat.data.layout import SPLITS
from inat.errors import DataError
from inat.progress import TransferProgress
from inat.storage.base import clean_relpath

log = logging.getLogger(__name__)

# nature_12K.zip holds 3.8 GB in 12,000 entries; far beyond that is not a data set of this kind.
MAX_UNCOMPRESSED_BYTES = 64 * 2**30
MAX_ENTRIES = 1_000_000
# Photos hardly compress (JPEG, PNG: about 1:1; BMP or TIFF: a few to one); zip bombs reach
# 1000:1 and more. Entries (and archives) below RATIO_FLOOR_BYTES unpacked are not judged:
# small text files compress well and cannot fill a disk.
MAX_COMPRESSION_RATIO = 100
RATIO_FLOOR_BYTES = 1 << 20
_ENCRYPTED = 0x1  # bit 0 of a zip entry's general purpose flags
_ARCHIVE_FAULTS = (errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.EILSEQ)


def safe_relpath(name: str, container: str) -> PurePosixPath:
    """`name` as a relative path that stays inside its folder, else DataError.

    `container` names the archive or location `name` comes from, for the message.
    """
    try:
        return PurePosixPath(clean_relpath(name.replace("\\", "/")))
    except ValueError:
        raise DataError(
            f"{container} holds an entry with an unsafe path {name!r} (absolute or with '..'); "
            "refusing to extract it. Use an archive whose entries are relative paths, "
            "such as the original nature_12K.zip."
        ) from None


def is_junk(path: PurePosixPath) -> bool:
    """Whether `path` is operating-system clutter (macOS resource forks, Finder files)."""
    return path.parts[:1] == ("__MACOSX",) or path.name.startswith("._") or path.name == ".DS_Store"


def extract_zip(
    archive: Path,
    dest: Path,
    max_bytes: int = MAX_UNCOMPRESSED_BYTES,
    max_entries: int = MAX_ENTRIES,
) -> None:
    """Extract `archive` into the folder `dest`, checking every entry's CRC-32 as it goes.

    The archive's directory is judged before a byte is written (see `check_members`);
    raises DataError, having written nothing, if `archive` is not a zip or fails those
    checks, and DataError naming the entry if one turns out corrupt or cannot be written.
    """
    if not zipfile.is_zipfile(archive):
        with open(archive, "rb") as f:
            head = f.read(16)
        raise DataError(
            f"{archive} is not a zip archive (it starts with {head!r}). "
            "Point data.source at nature_12K.zip, its extracted folder, or a URL that serves "
            "the zip itself (not a web page about it); if inat downloaded it, that copy is "
            "already deleted."
        )
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [
                (info, path)
                for info in zf.infolist()
                if not is_junk(path := safe_relpath(info.filename, str(archive)))
            ]
            check_members(archive, members, dest, max_bytes, max_entries)
            total = sum(info.file_size for info, _ in members)
            log.info("extracting %d entries of %s into %s", len(members), archive, dest)
            with TransferProgress(f"extract {archive.name}", total) as progress:
                for info, path in members:
                    _extract_member(zf, info, dest.joinpath(*path.parts), archive)
                    progress(info.file_size)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise DataError(
            f"{archive} is corrupt or unreadable: {e}. Get an intact copy of it; "
            "if inat downloaded it, that copy is already deleted: run again to download it afresh."
        ) from e


def _extract_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, archive: Path
) -> None:
    """Write one entry; a path the file system refuses is the archive's fault, named."""
    try:
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # Reading through ZipFile.open checks the entry's CRC-32: the integrity test.
        with zf.open(info) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except OSError as e:
        if e.errno not in _ARCHIVE_FAULTS:
            raise  # a full disk or a permission: the cache's problem, reported as such
        raise DataError(
            f"{archive} holds an entry that cannot be extracted here, {info.filename!r}: "
            f"{e.strerror}. Repack the archive with plain train/<class>/<image> names."
        ) from e


def check_members(
    archive: Path,
    members: list[tuple[zipfile.ZipInfo, PurePosixPath]],
    dest: Path,
    max_bytes: int = MAX_UNCOMPRESSED_BYTES,
    max_entries: int = MAX_ENTRIES,
) -> None:
    """Raise DataError unless the archive's directory describes a data set worth extracting.

    Refused: more than `max_entries` entries or `max_bytes` unpacked; a compression ratio
    beyond MAX_COMPRESSION_RATIO, per entry or in all (a zip bomb); encrypted entries;
    entries that clash (a file and a folder of one name, a name twice, a name too long for
    the file system); no train/ and val/ at the top or in one folder.
    """
    where = f"{archive} ({len(members)} entries)"
    if len(members) > max_entries:
        raise DataError(
            f"{where} has more than {max_entries:,} entries: not a data set of this kind "
            "(nature_12K.zip has 12,000). Check data.source."
        )
    total = sum(info.file_size for info, _ in members)
    if total > max_bytes:
        raise DataError(
            f"{archive} would unpack to {total / 2**30:.1f} GiB, more than the "
            f"{max_bytes / 2**30:.1f} GiB allowed: not a data set of this kind "
            "(or a zip bomb). Check data.source."
        )
    packed = sum(info.compress_size for info, _ in members)
    bombs = [info for info, _ in members if _ratio(info.file_size, info.compress_size)]
    if bombs or _ratio(total, packed):
        entry = f"entry {bombs[0].filename!r}" if bombs else "archive"
        size, squeezed = (bombs[0].file_size, bombs[0].compress_size) if bombs else (total, packed)
        raise DataError(
            f"{archive} is a zip bomb: its {entry} unpacks {size:,} bytes from "
            f"{squeezed:,}, a ratio beyond {MAX_COMPRESSION_RATIO}:1 that no photo reaches. "
            "Nothing was extracted. Check data.source."
        )
    encrypted = [info.filename for info, _ in members if info.flag_bits & _ENCRYPTED]
    if encrypted:
        raise DataError(
            f"{where} is encrypted (e.g. {encrypted[0]!r}): inat cannot read password-protected "
            "zips. Unpack it yourself and point data.source at the folder, or repack it "
            "without a password."
        )
    _check_names(archive, members, dest)
    _check_layout(archive, [path for _, path in members])


def _ratio(unpacked: int, packed: int) -> bool:
    """Whether `unpacked` bytes from `packed` are beyond what a data set compresses to."""
    return unpacked >= RATIO_FLOOR_BYTES and unpacked > MAX_COMPRESSION_RATIO * max(packed, 1)


def _check_names(
    archive: Path, members: list[tuple[zipfile.ZipInfo, PurePosixPath]], dest: Path
) -> None:
    """Refuse names that the file system cannot hold as given: clashes and overlong names."""
    name_max = os.pathconf(dest, "PC_NAME_MAX") if dest.exists() else 255
    files = [path for info, path in members if not info.is_dir()]
    folders = {path for info, path in members if info.is_dir()}
    folders |= {parent for path in files for parent in path.parents}
    seen: set[PurePosixPath] = set()
    for path in files:
        if path in seen or path in folders:
            what = "twice" if path in seen else "as a file and as a folder"
            raise DataError(
                f"{archive} names {path.as_posix()!r} {what}: its entries clash. "
                "Repack the archive so that each name is one file or one folder."
            )
        seen.add(path)
        if any(len(part.encode()) > name_max for part in path.parts):
            raise DataError(
                f"{archive} holds a name too long for this file system ({name_max} bytes "
                f"at most): {path.as_posix()!r}. Repack the archive with shorter names."
            )


def _check_layout(archive: Path, paths: list[PurePosixPath]) -> None:
    """Refuse an archive with no train/ and val/ at its top or in one folder below it."""
    splits = {
        (path.parts[:depth], path.parts[depth])
        for path in paths
        for depth in (0, 1)
        if len(path.parts) > depth + 1 and path.parts[depth] in SPLITS
    }
    if any(all((prefix, split) in splits for split in SPLITS) for prefix, _ in splits):
        return
    top = sorted({path.parts[0] + ("/" if len(path.parts) > 1 else "") for path in paths})
    more = f" and {len(top) - 10} more" if len(top) > 10 else ""
    raise DataError(
        f"{archive} has no train/ and val/ folders; found: {', '.join(top[:10]) or 'nothing'}"
        f"{more}. A data set needs train/<class>/<images> and val/<class>/<images>, at its top "
        "or in one folder (like inaturalist_12K/ in nature_12K.zip). Nothing was extracted. "
        "Check data.source."
    )

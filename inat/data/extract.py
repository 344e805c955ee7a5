"""Extract a zip archive without trusting it: no paths outside the target, no zip bombs."""

from __future__ import annotations

import logging
import shutil
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from inat.errors import DataError
from inat.progress import TransferProgress
from inat.storage.base import clean_relpath

log = logging.getLogger(__name__)

# nature_12K.zip holds 3.8 GB; anything far beyond that is not a data set of this kind.
MAX_UNCOMPRESSED_BYTES = 64 * 2**30


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


def extract_zip(archive: Path, dest: Path, max_bytes: int = MAX_UNCOMPRESSED_BYTES) -> None:
    """Extract `archive` into the folder `dest`, checking every entry's CRC-32 as it goes.

    Raises DataError, having written nothing, if `archive` is not a zip, holds
    an unsafe path, or would unpack to more than `max_bytes`; raises DataError
    if an entry turns out corrupt while extracting.
    """
    if not zipfile.is_zipfile(archive):
        with open(archive, "rb") as f:
            head = f.read(16)
        raise DataError(
            f"{archive} is not a zip archive (it starts with {head!r}). "
            "Point data.source at nature_12K.zip, its extracted folder, or a URL of the zip; "
            "if it was downloaded, delete it and download it again."
        )
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [
                (info, path)
                for info in zf.infolist()
                if not is_junk(path := safe_relpath(info.filename, str(archive)))
            ]
            total = sum(info.file_size for info, _ in members)
            if total > max_bytes:
                raise DataError(
                    f"{archive} would unpack to {total / 2**30:.1f} GiB, more than the "
                    f"{max_bytes / 2**30:.1f} GiB allowed: not a data set of this kind "
                    "(or a zip bomb). Check data.source."
                )
            log.info("extracting %d entries of %s into %s", len(members), archive, dest)
            with TransferProgress(f"extract {archive.name}", total) as progress:
                for info, path in members:
                    target = dest.joinpath(*path.parts)
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    # Reading through ZipFile.open checks the entry's CRC-32: the integrity test.
                    with zf.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    progress(info.file_size)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise DataError(
            f"{archive} is corrupt or unreadable: {e}. Get an intact copy of it; "
            "if inat downloaded it, that copy is already deleted: run again to download it afresh."
        ) from e

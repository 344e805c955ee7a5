"""Storage on a local (or shared, network-mounted) file system."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from inat.errors import StorageError
from inat.storage.base import Storage, clean_relpath


@contextlib.contextmanager
def _staged(path: Path, write) -> Iterator[Path]:
    """A temporary sibling of `path` holding what `write(tmp_path)` wrote, synced to disk and
    with the mode the user's umask allows; removed afterwards unless moved into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give the file the mode the user's umask allows.
        os.chmod(tmp_path, _umask_mode(0o666))
        yield tmp_path
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask_mode(full: int) -> int:
    """`full` (0o666 for files, 0o777 for folders) less what the user's umask takes away."""
    umask = os.umask(0)
    os.umask(umask)
    return full & ~umask


def atomic_folder(path: Path, build: Callable[[Path], None]) -> None:
    """Create the folder `path` through `build(tmp_folder)` on a temporary sibling
    (`.NAME.tmp-XXXX`), then rename it in place: `path` appears complete or not at all.

    What `build` wrote is removed when it fails; `path` must not exist, or be an empty folder.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        build(tmp)
        os.chmod(tmp, _umask_mode(0o777))  # mkdtemp creates 0700 folders
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write(path: Path, write) -> None:
    """Create `path` through `write(tmp_path)` on a temporary sibling, then rename it in place.

    The rename is atomic on POSIX file systems, so a crash leaves either the old
    file or the new one, never a torn file.
    """
    with _staged(path, write) as tmp_path:
        os.replace(tmp_path, path)


class LocalStorage(Storage):
    """A folder on the local file system."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.uri = str(self.root)

    def _path(self, relpath: str) -> Path:
        relpath = clean_relpath(relpath)
        return self.root / relpath if relpath else self.root

    @staticmethod
    def _files(folder: Path) -> Iterator[Path]:
        """Files below `folder`, skipping atomic_write's temporary files."""
        for path in folder.rglob("*"):
            if path.is_file() and not (path.name.startswith(".") and path.name.endswith(".tmp")):
                yield path

    def child(self, relpath: str) -> LocalStorage:
        return LocalStorage(self._path(relpath))

    def exists(self, relpath: str) -> bool:
        return self._path(relpath).is_file()

    def read_bytes(self, relpath: str) -> bytes:
        return self._path(relpath).read_bytes()

    def write_bytes(self, relpath: str, data: bytes) -> None:
        atomic_write(self._path(relpath), lambda tmp: tmp.write_bytes(data))

    def create(self, relpath: str, data: bytes) -> bool:
        path = self._path(relpath)
        with _staged(path, lambda tmp: tmp.write_bytes(data)) as tmp_path:
            # link(2) fails if `path` exists and is atomic on NFS too (O_EXCL is not, on old
            # clients); the file appears whole, as atomic_write's renames do.
            try:
                os.link(tmp_path, path)
            except FileExistsError:
                return False
        return True

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix)
        if base.is_file():
            return [clean_relpath(prefix)]
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in self._files(base))

    def delete(self, relpath: str) -> None:
        self._path(relpath).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        """Delete every file below `prefix`, then the folders left empty."""
        super().delete_prefix(prefix)
        base = self._path(prefix)
        if base.is_dir() and base != self.root:
            for folder in sorted((p for p in base.rglob("*") if p.is_dir()), reverse=True):
                with contextlib.suppress(OSError):  # not empty: a file arrived meanwhile
                    folder.rmdir()
            with contextlib.suppress(OSError):
                base.rmdir()

    def upload_file(self, local_path: Path, relpath: str) -> None:
        atomic_write(self._path(relpath), lambda tmp: shutil.copyfile(local_path, tmp))

    def download_file(self, relpath: str, local_path: Path) -> None:
        source = self._path(relpath)
        if not source.is_file():
            raise FileNotFoundError(source)
        atomic_write(Path(local_path), lambda tmp: shutil.copyfile(source, tmp))

    def size(self, relpath: str) -> int:
        return self._path(relpath).stat().st_size

    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-probe-"):
                pass
        except OSError as e:
            raise StorageError(
                f"cannot write to output {self.uri}: {e.strerror or e}. "
                "Choose an output folder you can write to (output=PATH or output=s3://BUCKET/PREFIX)."
            ) from e

    def check_readable(self, relpath: str = "") -> None:
        target = self._path(relpath)
        try:
            file = target
            if target.is_dir():
                os.listdir(target)  # rglob would silently skip a folder it may not read
                file = next(self._files(target), None)
            if file is None:
                raise StorageError(
                    f"{target} is an empty folder. Check the path, or put the expected files there."
                )
            with open(file, "rb") as f:
                f.read(1)
        except FileNotFoundError as e:
            raise StorageError(
                f"{target} does not exist. Check the path (a typo, or a file system that is not "
                "mounted on this machine)."
            ) from e
        except OSError as e:
            raise StorageError(
                f"cannot read {e.filename or target}: {e.strerror or e}. "
                "Check the path and that this user may read it."
            ) from e

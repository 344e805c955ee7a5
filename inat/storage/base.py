"""The storage interface: a directory-like location addressed by relative paths."""

from __future__ import annotations

import json
import posixpath
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any


def clean_relpath(relpath: str) -> str:
    """`relpath` in normal "a/b" form, "" for the location itself.

    Raises ValueError for a path that leaves the location (absolute, or "..").
    """
    if not relpath:
        return ""
    path = posixpath.normpath(relpath)
    if path == ".":
        return ""
    if path.startswith("/") or path == ".." or path.startswith("../"):
        raise ValueError(f"storage path {relpath!r} is not inside the storage location")
    return path


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")


class Storage(ABC):
    """A folder on local disk or a prefix in an object store.

    Paths given to the methods are relative to the location and use "/" as the
    separator; they are normalised ("a//./b" is "a/b"), and one that leaves the
    location ("/abs", "../x") raises ValueError. Every write is atomic: a reader
    sees the old content or the new, never a partial file.
    """

    uri: str

    @abstractmethod
    def child(self, relpath: str) -> Storage:
        """The location `relpath` below this one."""

    @abstractmethod
    def exists(self, relpath: str) -> bool:
        """Whether a file exists at `relpath`."""

    @abstractmethod
    def read_bytes(self, relpath: str) -> bytes:
        """The content of a file; raises FileNotFoundError when there is none."""

    @abstractmethod
    def write_bytes(self, relpath: str, data: bytes) -> None:
        """Write a file atomically, replacing any earlier content."""

    @abstractmethod
    def create(self, relpath: str, data: bytes) -> bool:
        """Write a file only if there is none at `relpath`, atomically, as one writer among
        any number racing to create it: True if this call created it, False if a file was
        there already (left as it was).

        Give `data` something unique to the writer (an id): a create whose first attempt
        reached the store but whose answer was lost finds its own content, and is True.
        """

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Relative paths of all files below `prefix` (recursive), sorted."""

    @abstractmethod
    def delete(self, relpath: str) -> None:
        """Delete a file; deleting a missing file is not an error."""

    @abstractmethod
    def upload_file(self, local_path: Path, relpath: str) -> None:
        """Copy a local file to `relpath` atomically (large files in parts, with progress)."""

    @abstractmethod
    def download_file(self, relpath: str, local_path: Path) -> None:
        """Copy `relpath` to a local file; the local file appears only when complete."""

    @abstractmethod
    def size(self, relpath: str) -> int:
        """Size of a file in bytes; raises FileNotFoundError when there is none."""

    @abstractmethod
    def check_writable(self) -> None:
        """Raise StorageError naming the location and the likely cause if it cannot be written."""

    @abstractmethod
    def check_readable(self, relpath: str = "") -> None:
        """Raise StorageError naming `relpath` and the likely cause unless it can be read.

        `relpath` may name a file, or a folder/prefix ("" for this location) that
        must hold at least one readable file.
        """

    def delete_prefix(self, prefix: str) -> None:
        """Delete every file below `prefix`."""
        for relpath in self.list(prefix):
            self.delete(relpath)

    def read_text(self, relpath: str) -> str:
        """The content of a text file."""
        return self.read_bytes(relpath).decode("utf-8")

    def write_text(self, relpath: str, text: str) -> None:
        """Write a text file atomically."""
        self.write_bytes(relpath, text.encode("utf-8"))

    def read_json(self, relpath: str) -> Any:
        """The parsed content of a JSON file."""
        return json.loads(self.read_bytes(relpath))

    def write_json(self, relpath: str, obj: Any) -> None:
        """Write an object as indented JSON, atomically."""
        self.write_bytes(relpath, _json_bytes(obj))

    def create_json(self, relpath: str, obj: Any) -> bool:
        """`create` with an object as indented JSON."""
        return self.create(relpath, _json_bytes(obj))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

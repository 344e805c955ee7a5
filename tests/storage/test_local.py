"""What only local storage can show: file permissions and a writer that dies mid-write."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from inat.errors import StorageError
from inat.storage import LocalStorage, atomic_write


def run_where_permissions_bind(code: str) -> subprocess.CompletedProcess:
    """Run Python `code` in a process that file permissions bind.

    Root bypasses them through two capabilities; the process runs without those.
    """
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_check_writable_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        done = run_where_permissions_bind(
            f"from inat.storage import LocalStorage; LocalStorage({str(folder)!r}).check_writable()"
        )
    finally:
        folder.chmod(0o755)
    assert done.returncode != 0
    assert f"StorageError: cannot write to output {folder}: Permission denied" in done.stderr


def test_check_writable_folder_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="cannot write to output"):
        LocalStorage(tmp_path / "file" / "out").check_writable()


def test_check_readable_unreadable_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write_text("secret.txt", "x")
    (tmp_path / "secret.txt").chmod(0o000)
    done = run_where_permissions_bind(
        f"from inat.storage import LocalStorage; "
        f"LocalStorage({str(tmp_path)!r}).check_readable('secret.txt')"
    )
    assert done.returncode != 0
    assert re.search(r"StorageError: cannot read .*secret\.txt: Permission denied", done.stderr)


def test_writer_that_dies_leaves_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.pt"
    target.write_text("old")

    def dies_halfway(tmp: Path) -> None:
        tmp.write_text("new but incomplete")
        raise KeyboardInterrupt  # BaseException too: a signal may end a writer

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, dies_halfway)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_failed_upload_leaves_the_old_content(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    storage.write_text("ckpt.pt", "old")
    with pytest.raises(FileNotFoundError):
        storage.upload_file(tmp_path / "missing.pt", "ckpt.pt")
    assert storage.read_text("ckpt.pt") == "old"
    assert storage.list() == ["ckpt.pt"]

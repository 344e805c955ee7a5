"""Downloads against a real HTTP server on 127.0.0.1: resume, fallback, verification, retries."""

from __future__ import annotations

import io
import logging
import os
import socket
import zipfile
from pathlib import Path

import pytest

from inat import progress
from inat.data.download import CHUNK_BYTES, download
from inat.errors import DataError, TransientError

CONTENT = os.urandom(300_000)


def _zip_bytes() -> bytes:
    """A zip archive of about 300 kB that does not compress: its end comes last."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("train/Aves/0.jpg", CONTENT)
    return buffer.getvalue()


ZIP = _zip_bytes()


@pytest.fixture
def served(http_server):
    http_server.files["/nature.zip"] = CONTENT
    return http_server


def test_download_writes_the_served_file(served, tmp_path: Path) -> None:
    dest = download(served.url("/nature.zip"), tmp_path / "nature.zip")
    assert dest.read_bytes() == CONTENT
    assert list(tmp_path.iterdir()) == [dest]  # no .part left behind
    assert served.ranges == [None]


def test_a_cut_download_resumes_with_a_range_request(served, tmp_path: Path) -> None:
    served.cuts = [100_000]
    dest = download(served.url("/nature.zip"), tmp_path / "nature.zip", backoff=0)
    assert dest.read_bytes() == CONTENT
    # Resumed after the whole chunks that arrived before the cut.
    assert served.ranges == [None, f"bytes={CHUNK_BYTES}-"]


def test_a_part_left_by_an_earlier_run_is_resumed(served, tmp_path: Path) -> None:
    (tmp_path / "nature.zip.part").write_bytes(CONTENT[:1234])
    dest = download(served.url("/nature.zip"), tmp_path / "nature.zip")
    assert dest.read_bytes() == CONTENT
    assert served.ranges == ["bytes=1234-"]


def test_a_server_that_ignores_range_gets_a_full_download(served, tmp_path: Path) -> None:
    served.honour_range = False
    served.cuts = [100_000]
    dest = download(served.url("/nature.zip"), tmp_path / "nature.zip", backoff=0)
    assert served.ranges == [None, f"bytes={CHUNK_BYTES}-"]  # asked to resume, answered 200
    assert dest.read_bytes() == CONTENT  # started over rather than appending


def test_server_errors_are_retried(served, tmp_path: Path) -> None:
    served.statuses = [503, 502]
    dest = download(served.url("/nature.zip"), tmp_path / "nature.zip", backoff=0)
    assert dest.read_bytes() == CONTENT
    assert len(served.ranges) == 3


def test_a_file_shorter_than_announced_fails_verification(served, tmp_path: Path) -> None:
    served.cuts = [CHUNK_BYTES + 100] * 3
    with pytest.raises(TransientError, match=r"failed 3 times.*IncompleteRead.*run again"):
        download(served.url("/nature.zip"), tmp_path / "nature.zip", attempts=3, backoff=0)
    assert served.ranges == [None, f"bytes={CHUNK_BYTES}-", f"bytes={2 * CHUNK_BYTES}-"]
    assert not (tmp_path / "nature.zip").exists()
    # What arrived is kept, for the next run to resume.
    assert (tmp_path / "nature.zip.part").read_bytes() == CONTENT[: 3 * CHUNK_BYTES]


def test_a_zip_cut_short_without_a_length_is_resumed(http_server, tmp_path: Path) -> None:
    http_server.files["/nature.zip"] = ZIP
    http_server.announce_length = False
    http_server.cuts = [100_000]  # the connection closes there: the body looks complete
    dest = download(http_server.url("/nature.zip"), tmp_path / "nature.zip", backoff=0)
    assert dest.read_bytes() == ZIP
    assert http_server.ranges == [None, "bytes=100000-"]


def test_a_zip_cut_short_every_time_without_a_length_is_transient(
    http_server, tmp_path: Path
) -> None:
    http_server.files["/nature.zip"] = ZIP
    http_server.announce_length = False
    http_server.cuts = [5000] * 3
    with pytest.raises(TransientError) as raised:
        download(http_server.url("/nature.zip"), tmp_path / "nature.zip", attempts=3, backoff=0)
    assert raised.value.exit_code == 75
    part = tmp_path / "nature.zip.part"
    assert str(raised.value) == (
        f"download of {http_server.url('/nature.zip')} failed 3 times, last: the connection "
        "closed after 15000 bytes, before the end of the zip. Check the network connection "
        "and that the server is up, then run again: the download resumes from "
        f"{part} where the server allows it."
    )
    assert part.read_bytes() == ZIP[:15000]  # kept, as the message says
    assert not (tmp_path / "nature.zip").exists()


def test_a_whole_file_without_a_length_is_left_to_the_archive_check(
    http_server, tmp_path: Path
) -> None:
    http_server.files["/nature.zip"] = b"<html>Sign in</html>"
    http_server.announce_length = False
    dest = download(http_server.url("/nature.zip"), tmp_path / "nature.zip", backoff=0)
    assert dest.read_bytes() == b"<html>Sign in</html>"
    assert http_server.ranges == [None]  # not retried: no cut shows


def test_an_unreachable_server_raises_transient_error_after_retries(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/nature.zip"
    with pytest.raises(TransientError, match="failed 2 times") as raised:
        download(url, tmp_path / "nature.zip", attempts=2, backoff=0)
    assert raised.value.exit_code == 75


def test_a_missing_file_is_a_data_error_without_retries(served, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"HTTP 404.*data\.source"):
        download(served.url("/missing.zip"), tmp_path / "nature.zip", backoff=0)
    assert len(served.ranges) == 1


def test_progress_is_logged_when_stderr_is_not_a_terminal(
    served, tmp_path: Path, caplog, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="inat"):
        download(served.url("/nature.zip"), tmp_path / "nature.zip")
    lines = [r.getMessage() for r in caplog.records if r.name == "inat.progress"]
    assert any("%" in line for line in lines)
    assert lines[-1].startswith(f"download {served.url('/nature.zip')}: done")
    assert capsys.readouterr().err == ""  # no bar drawn into a log

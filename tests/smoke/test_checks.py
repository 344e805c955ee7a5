"""The smoke checks one by one, against real servers: S3 (moto_server) and HTTP."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from inat.errors import InatError
from inat.smoke import CheckFailed, Skip, check_checkpoint, check_data


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a folder: its base URL and the folder."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


def test_checkpoint_goes_to_s3_comes_back_and_is_deleted(aws_env, s3_bucket, s3_client):
    detail = check_checkpoint(f"s3://{s3_bucket}/runs")

    assert f"s3://{s3_bucket}/runs/.inat-smoke-" in detail
    assert "identical, deleted" in detail
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0


def test_checkpoint_to_a_bucket_that_does_not_exist_names_it(aws_env):
    with pytest.raises(InatError, match="no-such-bucket-for-smoke"):
        check_checkpoint("s3://no-such-bucket-for-smoke/runs")


def test_data_on_s3_is_found_or_named(aws_env, s3_bucket, s3_client):
    # The check reads the object's metadata, not its content: any bytes stand in for a zip.
    s3_client.put_object(Bucket=s3_bucket, Key="data/nature_12K.zip", Body=b"not read")

    assert "can be read" in check_data(f"s3://{s3_bucket}/data/nature_12K.zip")
    with pytest.raises(InatError, match=r"data/other\.zip"):
        check_data(f"s3://{s3_bucket}/data/other.zip")


def test_data_over_http_reports_the_size_or_the_status(http_folder):
    url, folder = http_folder
    (folder / "nature_12K.zip").write_bytes(bytes(2_500_000))

    assert check_data(f"{url}/nature_12K.zip") == f"{url}/nature_12K.zip answers HTTP 200, 2.5 MB"
    with pytest.raises(CheckFailed, match="HTTP 404"):
        check_data(f"{url}/missing.zip")


def test_generated_data_is_skipped():
    with pytest.raises(Skip, match="synthetic"):
        check_data("synthetic")

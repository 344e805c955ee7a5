"""The Storage contract, checked the same way on local disk and on a real S3 server."""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from s3server import S3Server

from inat.errors import StorageError
from inat.storage import LocalStorage, S3Settings, Storage, open_storage
from inat.storage.s3 import S3Storage


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """An empty storage location: a local folder, or a prefix in a fresh bucket."""
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Storage(f"s3://{bucket}/runs/exp1")


def test_write_read_round_trip(storage: Storage) -> None:
    storage.write_bytes("a.bin", b"\x00\x01")
    storage.write_text("b.txt", "héllo")
    storage.write_json("c.json", {"acc": 0.5, "epoch": 3})
    assert storage.read_bytes("a.bin") == b"\x00\x01"
    assert storage.read_text("b.txt") == "héllo"
    assert storage.read_json("c.json") == {"acc": 0.5, "epoch": 3}
    assert storage.size("a.bin") == 2


def test_create_writes_only_where_nothing_is(storage: Storage) -> None:
    assert storage.create("claims/000.json", b"mine")
    assert not storage.create("claims/000.json", b"theirs")
    assert storage.read_bytes("claims/000.json") == b"mine"
    assert storage.create_json("claims/001.json", {"index": 1})
    assert storage.read_json("claims/001.json") == {"index": 1}
    assert storage.list("claims") == ["claims/000.json", "claims/001.json"]  # no temporary file


def test_overwrite_replaces_content(storage: Storage) -> None:
    storage.write_text("x.txt", "a much longer first version")
    storage.write_text("x.txt", "v2")
    assert storage.read_text("x.txt") == "v2"
    assert storage.size("x.txt") == 2


def test_missing_files(storage: Storage, tmp_path: Path) -> None:
    assert not storage.exists("nope.txt")
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("nope.txt")
    with pytest.raises(FileNotFoundError):
        storage.size("nope.txt")
    local = tmp_path / "local.txt"
    local.write_text("keep me")
    with pytest.raises(FileNotFoundError):
        storage.download_file("nope.txt", local)
    assert local.read_text() == "keep me"
    storage.delete("nope.txt")  # not an error


def test_exists_and_delete(storage: Storage) -> None:
    storage.write_text("d/x.txt", "1")
    assert storage.exists("d/x.txt")
    assert not storage.exists("d")  # a folder is not a file
    storage.delete("d/x.txt")
    assert not storage.exists("d/x.txt")


def test_list_is_recursive_sorted_and_folder_based(storage: Storage) -> None:
    assert storage.list() == []
    for path in ["b/2.txt", "a.txt", "b/1.txt", "b/sub/3.txt", "bc/4.txt"]:
        storage.write_text(path, path)
    assert storage.list() == ["a.txt", "b/1.txt", "b/2.txt", "b/sub/3.txt", "bc/4.txt"]
    assert storage.list("b") == ["b/1.txt", "b/2.txt", "b/sub/3.txt"]  # not bc/
    assert storage.list("b/") == storage.list("b")
    assert storage.list("a.txt") == ["a.txt"]
    assert storage.list("missing") == []


def test_delete_prefix(storage: Storage) -> None:
    for path in ["ckpt/1.pt", "ckpt/2.pt", "ckpt/old/3.pt", "ckpt2/keep.pt", "keep.json"]:
        storage.write_text(path, "x")
    storage.delete_prefix("ckpt")
    assert storage.list() == ["ckpt2/keep.pt", "keep.json"]
    storage.delete_prefix("nothing-here")


def test_relative_paths_are_normalised(storage: Storage) -> None:
    storage.write_text("a//b/./c.txt", "x")
    assert storage.list() == ["a/b/c.txt"]
    assert storage.read_text("a/b/../b/c.txt") == "x"
    for outside in ["../escape.txt", "/etc/passwd", "a/../../b"]:
        with pytest.raises(ValueError, match="not inside"):
            storage.write_text(outside, "x")


def test_child(storage: Storage) -> None:
    child = storage.child("runs/r1")
    assert child.uri == f"{storage.uri}/runs/r1"
    child.write_text("metrics.json", "{}")
    assert storage.read_text("runs/r1/metrics.json") == "{}"
    assert child.list() == ["metrics.json"]
    assert child.child("deeper").uri == f"{storage.uri}/runs/r1/deeper"


def test_upload_download_round_trip(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "model.pt"
    source.write_bytes(b"weights" * 1000)
    storage.upload_file(source, "ckpt/model.pt")
    assert storage.size("ckpt/model.pt") == 7000
    target = tmp_path / "out" / "model.pt"
    target.parent.mkdir()
    target.write_text("old")
    storage.download_file("ckpt/model.pt", target)
    assert target.read_bytes() == source.read_bytes()
    assert [p.name for p in target.parent.iterdir()] == ["model.pt"]  # no temporary files left


@pytest.mark.slow
def test_large_file_goes_in_parts_with_progress(
    storage: Storage,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],  # captured stderr is no TTY: progress goes to the log
) -> None:
    storage = open_storage(storage.uri, S3Settings(multipart_threshold_mb=5))
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(20 * 2**20))
    caplog.set_level(logging.INFO, logger="inat.progress")
    storage.upload_file(source, "big.bin")
    target = tmp_path / "big.copy"
    storage.download_file("big.bin", target)
    assert target.read_bytes() == source.read_bytes()
    if isinstance(storage, S3Storage):
        # S3 gives an object uploaded in N parts the ETag "<md5 of part md5s>-N".
        s3_client = request.getfixturevalue("s3_client")
        head = s3_client.head_object(Bucket=storage.bucket, Key="runs/exp1/big.bin")
        assert head["ETag"].strip('"').endswith("-4")
        done = [r.getMessage() for r in caplog.records if ": done," in r.getMessage()]
        assert len(done) == 2 and "20.0 of 20.0 MiB" in done[0], done


def test_check_writable(storage: Storage) -> None:
    storage.check_writable()
    assert storage.list() == []  # the probe is gone


def test_check_readable(storage: Storage) -> None:
    storage.write_text("data/train/cat/1.jpg", "x")
    storage.check_readable()
    storage.check_readable("data")
    storage.check_readable("data/train/cat/1.jpg")
    for missing in ["data/val", "dat", "data/train/cat/2.jpg"]:
        with pytest.raises(StorageError, match=missing):
            storage.check_readable(missing)


def test_check_readable_empty_location(storage: Storage) -> None:
    with pytest.raises(StorageError):
        storage.check_readable()


def test_s3_listing_reads_every_page(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with S3Server(env={"MOTO_S3_DEFAULT_MAX_KEYS": "2"}) as server:  # 2 keys per page
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        storage = S3Storage("s3://paged/run")
        boto3.session.Session().client("s3").create_bucket(Bucket="paged")
        names = [f"ckpt/{i}.pt" for i in range(7)]
        for name in names:
            storage.write_text(name, "x")
        assert storage.list() == names
        storage.delete_prefix("ckpt")
        assert storage.list() == []


def _race(storage: Storage, rounds: int = 20, writers: int = 16) -> list[int]:
    """How many of `writers` threads created each round's key, all starting at once."""

    def create(start: threading.Barrier, key: str, writer: int) -> bool:
        start.wait()
        return storage.create(key, f"writer {writer}".encode())

    winners = []
    for round_ in range(rounds):
        start = threading.Barrier(writers)
        key = f"claims/{round_:03d}.json"
        with ThreadPoolExecutor(writers) as pool:
            winners.append(
                sum(pool.map(create, [start] * writers, [key] * writers, range(writers)))
            )
    return winners


def test_exactly_one_of_racing_local_writers_creates_a_file(tmp_path: Path) -> None:
    assert _race(LocalStorage(tmp_path / "store")) == [1] * 20


def test_exactly_one_of_racing_s3_writers_creates_an_object(
    monkeypatch: pytest.MonkeyPatch, aws_env: dict[str, str], tmp_path: Path
) -> None:
    # What is checked: the server's conditional write (If-None-Match: *) alone decides. The
    # S3 server here handles one request at a time (see SERIAL_SERVER), so its check-and-write
    # cannot interleave; the writers race for real in their own threads and connections.
    with S3Server(serial=True) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        boto3.session.Session().client("s3").create_bucket(Bucket="claims")
        storage = S3Storage("s3://claims/sweep")
        assert _race(storage) == [1] * 20
        # The refusal is the server's: a plain conditional put on an existing key gets 412.
        client = boto3.session.Session().client("s3")
        with pytest.raises(client.exceptions.ClientError, match="PreconditionFailed"):
            client.put_object(
                Bucket="claims", Key="sweep/claims/000.json", Body=b"x", IfNoneMatch="*"
            )
        assert storage.read_bytes("claims/000.json").startswith(b"writer ")

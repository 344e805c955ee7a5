"""Fixtures shared by every test folder: a real S3 server (moto_server), a job's AWS
environment with fake credentials, buckets, and default storage settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from s3server import S3Server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto_server for the whole test session."""
    with S3Server() as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, s3_server: S3Server) -> dict[str, str]:
    """The environment of a job that uses the test server: fake credentials, nothing else.

    Every AWS_* variable of the calling shell is dropped, and AWS config files and
    instance metadata are turned off, so a developer's own AWS setup never leaks in.
    """
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    env = s3_server.job_env(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3_client(aws_env: dict[str, str]):
    """A boto3 client on the test server, to set up and inspect what the code under test sees."""
    return boto3.session.Session().client("s3")


@pytest.fixture
def s3_bucket(s3_client) -> Iterator[str]:
    """A new, empty bucket on the test server; removed with its objects afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            s3_client.delete_object(Bucket=name, Key=item["Key"])
    s3_client.delete_bucket(Bucket=name)


@pytest.fixture
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real MLflow tracking server for the test; MLFLOW_TRACKING_URI points at it."""
    from helpers.mlflow_server import mlflow_server

    folder = tmp_path / "mlflow-server"
    folder.mkdir()
    with mlflow_server(folder) as uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri


# Folders whose tests share one machine-wide thing (the Slurm cluster's CPUs, the image
# build): under pytest-xdist (scripts/test.sh runs -n 2 --dist loadgroup), each folder's
# tests run in one worker, one after another.
SERIAL_FOLDERS = ("slurm", "container")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A soak test is slow too, so that `pytest -m "not slow"` leaves it out; the tests of
    a SERIAL_FOLDERS folder form one xdist group."""
    tests = Path(__file__).parent
    for item in items:
        if item.get_closest_marker("soak"):
            item.add_marker(pytest.mark.slow)
        folder = item.path.relative_to(tests).parts[0]
        if folder in SERIAL_FOLDERS:
            item.add_marker(pytest.mark.xdist_group(folder))

"""S3 failures against real servers: each becomes the project's error, names the location and
the fix, and never shows a secret key or session token."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from s3server import S3Server, free_port

from inat.errors import ExitCode, StorageError, TransientError
from inat.storage import S3Settings, Storage
from inat.storage.s3 import S3Storage

OPERATIONS: dict[str, Callable[[Storage], object]] = {
    "write": lambda s: s.write_text("result.json", "{}"),
    "read": lambda s: s.read_text("train/cat/1.jpg"),
    "list": lambda s: s.list(),
    "upload": lambda s: s.upload_file(Path(__file__), "copy.py"),
    "check_writable": lambda s: s.check_writable(),
}


def assert_no_secrets(error: BaseException, env: dict[str, str]) -> None:
    """Neither the error, nor anything chained to it, shows the secret key or session token."""
    text = "".join(traceback.format_exception(error)) + repr(error)
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if env.get(name):
            assert env[name] not in text, f"{name} leaked into:\n{text}"


@pytest.fixture
def own_server(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """A server of the test's own, free to stop; AWS_ENDPOINT_URL points at it."""
    with S3Server() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        aws_env["AWS_ENDPOINT_URL"] = server.endpoint_url
        boto3.session.Session().client("s3").create_bucket(Bucket="outage")
        yield server


@pytest.mark.parametrize("operation", OPERATIONS)
def test_no_such_bucket(operation: str, aws_env: dict[str, str]) -> None:
    storage = S3Storage("s3://inat-no-such-bucket/run")
    with pytest.raises(StorageError) as caught:
        OPERATIONS[operation](storage)
    message = str(caught.value)
    assert "'inat-no-such-bucket' does not exist" in message
    assert "s3://inat-no-such-bucket/run" in message
    assert "Create it" in message and "AWS_ENDPOINT_URL" in message
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert_no_secrets(caught.value, aws_env)


def test_check_readable_no_such_bucket(aws_env: dict[str, str]) -> None:
    with pytest.raises(StorageError, match="'inat-no-such-bucket' does not exist"):
        S3Storage("s3://inat-no-such-bucket/data").check_readable()


def test_no_credentials(
    aws_env: dict[str, str], s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    with pytest.raises(StorageError) as caught:
        S3Storage(f"s3://{s3_bucket}/run").write_text("x", "1")
    message = str(caught.value)
    assert f"s3://{s3_bucket}/run/x" in message
    assert "no usable AWS credentials" in message and "AWS_PROFILE" in message


# Credentials: moto_server accepts any key unless told to check them against its IAM.
@pytest.fixture(scope="module")
def auth_server() -> Iterator[tuple[S3Server, dict[str, tuple[str, str]]]]:
    """A server that checks credentials; its IAM has users "writer" (s3:*) and "reader"."""
    with S3Server() as server:
        admin = boto3.session.Session(
            aws_access_key_id="admin", aws_secret_access_key="admin", region_name="us-east-1"
        )
        s3 = admin.client("s3", endpoint_url=server.endpoint_url)
        s3.create_bucket(Bucket="auth-data")
        s3.put_object(Bucket="auth-data", Key="data/train/cat/1.jpg", Body=b"jpg")
        iam = admin.client("iam", endpoint_url=server.endpoint_url)
        keys = {}
        for user, actions in [("writer", ["s3:*"]), ("reader", ["s3:GetObject", "s3:ListBucket"])]:
            iam.create_user(UserName=user)
            policy = {"Effect": "Allow", "Action": actions, "Resource": "*"}
            iam.put_user_policy(
                UserName=user,
                PolicyName="s3",
                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [policy]}),
            )
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        server.enforce_auth()
        yield server, keys


def use_credentials(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], endpoint: str, key_id: str, secret: str
) -> None:
    """Point the environment at `endpoint` with these long-term credentials."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    env.update(AWS_SECRET_ACCESS_KEY=secret, AWS_SESSION_TOKEN="")


@pytest.mark.parametrize("operation", ["write", "read", "list", "upload"])
@pytest.mark.parametrize("who", ["unknown key id", "wrong secret"])
def test_bad_credentials(
    who: str, operation: str, auth_server, aws_env: dict[str, str], monkeypatch
) -> None:
    server, keys = auth_server
    key_id = aws_env["AWS_ACCESS_KEY_ID"] if who == "unknown key id" else keys["writer"][0]
    use_credentials(monkeypatch, aws_env, server.endpoint_url, key_id, "FAKE-wrong-secret-a4f0")
    storage = S3Storage("s3://auth-data/data")
    with pytest.raises(StorageError) as caught:
        OPERATIONS[operation](storage)
    message = str(caught.value)
    code = "InvalidAccessKeyId" if who == "unknown key id" else "SignatureDoesNotMatch"
    assert "rejected the credentials for s3://auth-data/data" in message
    assert f"({code}:" in message
    assert "AWS_SECRET_ACCESS_KEY" in message
    assert_no_secrets(caught.value, aws_env)


def test_read_only_credentials(auth_server, aws_env: dict[str, str], monkeypatch) -> None:
    server, keys = auth_server
    use_credentials(monkeypatch, aws_env, server.endpoint_url, *keys["reader"])
    storage = S3Storage("s3://auth-data/data")
    storage.check_readable()
    assert storage.read_text("train/cat/1.jpg") == "jpg"
    with pytest.raises(StorageError) as caught:
        storage.check_writable()
    message = str(caught.value)
    assert "access denied to s3://auth-data/data/.inat-write-probe-" in message
    assert "lack s3:PutObject on bucket 'auth-data'" in message
    assert_no_secrets(caught.value, aws_env)


def count_retries(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.getMessage().startswith("Retry needed") for r in caplog.records)


def test_wrong_endpoint_is_transient(
    aws_env: dict[str, str], s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = S3Settings(endpoint_url=endpoint, max_attempts=2, retry_budget_s=0)
    caplog.set_level(logging.DEBUG, logger="botocore.retries.standard")
    with pytest.raises(TransientError) as caught:
        S3Storage(f"s3://{s3_bucket}/run", settings).write_text("x", "1")
    message = str(caught.value)
    assert f"cannot reach S3 at {endpoint} for s3://{s3_bucket}/run/x" in message
    assert "storage.endpoint_url / AWS_ENDPOINT_URL" in message
    assert caught.value.exit_code == ExitCode.RETRY
    assert count_retries(caplog) == 1
    assert_no_secrets(caught.value, aws_env)


@pytest.mark.slow
def test_server_down_for_good_is_transient_after_bounded_attempts(
    own_server: S3Server, aws_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    settings = S3Settings(max_attempts=3, connect_timeout=1, retry_budget_s=0)
    storage = S3Storage("s3://outage/run", settings)
    storage.write_text("before.txt", "1")
    own_server.stop()
    caplog.set_level(logging.DEBUG, logger="botocore.retries.standard")
    start = time.monotonic()
    with pytest.raises(TransientError) as caught:
        storage.read_text("before.txt")
    # Standard mode sleeps at most 1 s, then 2 s, between the 3 attempts.
    assert time.monotonic() - start < 10
    assert count_retries(caplog) == 2
    assert own_server.endpoint_url in str(caught.value)
    assert "s3://outage/run/before.txt" in str(caught.value)
    assert_no_secrets(caught.value, aws_env)


def test_hung_server_times_out_as_transient(aws_env: dict[str, str]) -> None:
    with socket.socket() as hung:  # accepts connections (the kernel does), never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        endpoint = f"http://127.0.0.1:{hung.getsockname()[1]}"
        settings = S3Settings(
            endpoint_url=endpoint, max_attempts=2, read_timeout=0.5, retry_budget_s=0
        )
        start = time.monotonic()
        with pytest.raises(TransientError, match="Read timeout") as caught:
            S3Storage("s3://any-bucket/run", settings).read_text("x")
    assert time.monotonic() - start < 10
    assert_no_secrets(caught.value, aws_env)


class HoldRetries(logging.Filter):
    """Holds botocore's retries (logged just before it backs off) until released.

    moto_server forgets its buckets when restarted, so the test must create the
    bucket again before the retried request arrives. A filter, not a handler: a
    handler blocks under its lock, which other threads' log calls then wait for.
    """

    def __init__(self) -> None:
        super().__init__()
        self.retrying = threading.Event()
        self.release = threading.Event()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Retry needed"):
            self.retrying.set()
            self.release.wait(timeout=30)
        return True


@pytest.mark.slow
def test_operation_survives_server_restart(own_server: S3Server, aws_env: dict[str, str]) -> None:
    settings = S3Settings(max_attempts=10, connect_timeout=1)
    storage = S3Storage("s3://outage/run", settings)
    own_server.stop()
    hold = HoldRetries()
    logger = logging.getLogger("botocore.retries.standard")
    level = logger.level
    logger.addFilter(hold)
    logger.setLevel(logging.DEBUG)
    try:
        with ThreadPoolExecutor(1) as pool:
            write = pool.submit(storage.write_text, "result.json", '{"acc": 1}')
            assert hold.retrying.wait(timeout=10), "botocore did not retry"
            own_server.start()
            boto3.session.Session().client("s3").create_bucket(Bucket="outage")
            hold.release.set()
            write.result(timeout=60)
    finally:
        hold.release.set()
        logger.removeFilter(hold)
        logger.setLevel(level)
    assert storage.read_json("result.json") == {"acc": 1}

"""Storage under an s3://bucket/prefix URI, on AWS or any S3-compatible store (MinIO, Ceph, R2).

The only module that talks to boto3. Configuration is boto3's own (credential
chain, AWS_ENDPOINT_URL[_S3], AWS_REGION, AWS config files), overridden by the
`storage` settings given to `open_storage` where those are not null.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from inat.errors import ConfigError, StorageError, TransientError
from inat.progress import TransferProgress
from inat.storage.base import Storage, clean_relpath
from inat.storage.local import atomic_write
from inat.storage.s3_errors import PreconditionFailed, translate
from inat.storage.settings import S3Settings

log = logging.getLogger(__name__)
# botocore says where it found credentials at INFO, once for every client: a run makes many.
logging.getLogger("botocore.credentials").setLevel(logging.WARNING)

_DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes
_CONFLICT_RETRIES = 5  # conditional writes answered 409 (a racing write) before giving up
_BACKOFF_START_S = 1.0  # the first retry after botocore's attempts waits up to this long
_BACKOFF_CAP_S = 30.0  # and the waits double up to this
T = TypeVar("T")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """The bucket and the normalised key prefix ("" for the whole bucket) of an s3:// URI."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise StorageError(f"{uri!r} is not an S3 location; write it as s3://BUCKET/PREFIX.")
    try:
        return bucket, clean_relpath(prefix)
    except ValueError as e:
        raise StorageError(f"{uri!r}: {e}; write it as s3://BUCKET/PREFIX.") from e


def _warn_on_failed_attempt(
    attempts: int,
    operation: Any = None,
    caught_exception: Exception | None = None,
    response: Any = None,
    **_: Any,
) -> None:
    """Log a warning for each failed attempt that botocore may retry (connection errors, 5xx).

    Registered first on botocore's `needs-retry` event; returning None leaves the retry
    decision to botocore.
    """
    status = response[0].status_code if response else None
    if caught_exception is None and (status is None or status < 500):
        return
    reason = type(caught_exception).__name__ if caught_exception else f"HTTP {status}"
    log.warning(
        "S3 %s failed (attempt %d: %s); retrying within storage.max_attempts",
        getattr(operation, "name", "request"),
        attempts,
        reason,
    )


def _make_client(settings: S3Settings) -> BaseClient:
    """An S3 client configured by `settings`, on top of boto3's configuration chain."""
    retries = {"mode": settings.retry_mode, "total_max_attempts": settings.max_attempts}
    config = Config(
        retries={k: v for k, v in retries.items() if v is not None},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        s3={"addressing_style": settings.addressing_style} if settings.addressing_style else None,
    )
    try:
        # A session per client: boto3's default session is shared and not thread-safe.
        session = boto3.session.Session(region_name=settings.region)
        client = session.client("s3", endpoint_url=settings.endpoint_url, config=config)
    except ValueError as e:
        raise ConfigError(
            f"cannot set up the S3 client: {e}. Give the endpoint as a full URL such as "
            "http://minio:9000 (storage.endpoint_url, AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3)."
        ) from e
    client.meta.events.register_first("needs-retry.s3", _warn_on_failed_attempt)
    return client


def _outlasting(method: Callable[..., T]) -> Callable[..., T]:
    """`method`, retried after a TransientError (botocore's attempts spent: S3 unreachable,
    5xx, throttled) with capped exponential backoff and full jitter, until the storage's
    retry budget has passed since the first failure; then that error, saying how long."""

    @functools.wraps(method)
    def retrying(self: S3Storage, *args: Any, **kwargs: Any) -> T:
        first_failure: float | None = None
        ceiling = _BACKOFF_START_S
        while True:
            try:
                return method(self, *args, **kwargs)
            except TransientError as e:
                now = time.monotonic()
                first_failure = first_failure or now
                left = self._retry_budget_s - (now - first_failure)
                if left <= 0:
                    raise TransientError(
                        f"{e} S3 stayed unreachable for {now - first_failure:.0f} s, the "
                        f"retry budget (storage.retry_budget_s={self._retry_budget_s:g})."
                    ) from e
                log.warning(
                    "S3 %s failed (%s); retrying for up to %.0f s more (storage.retry_budget_s)",
                    method.__name__,
                    e,
                    left,
                )
                time.sleep(min(random.uniform(0, ceiling), left))
                ceiling = min(2 * ceiling, _BACKOFF_CAP_S)

    return retrying


class S3Storage(Storage):
    """The objects under s3://bucket/prefix; relative paths are keys below the prefix.

    Every operation outlasts an outage of up to `storage.retry_budget_s` (see _outlasting).
    """

    def __init__(self, uri: str, settings: S3Settings | None = None) -> None:
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.uri = self._uri(self.prefix)
        settings = settings or S3Settings()
        self._retry_budget_s = settings.retry_budget_s
        self._client = _make_client(settings)
        self._threshold = settings.multipart_threshold
        self._transfer = TransferConfig(
            multipart_threshold=self._threshold,
            multipart_chunksize=self._threshold,
            # "auto" may pick the CRT client on some GPU instance types; its errors and
            # progress callbacks differ from those handled here.
            preferred_transfer_client="classic",
        )

    def _key(self, relpath: str) -> str:
        return "/".join(part for part in (self.prefix, clean_relpath(relpath)) if part)

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """Raise the project's error for any boto3 error met inside, naming `key`."""
        try:
            yield
        except (BotoCoreError, ClientError, Boto3Error) as e:
            endpoint = self._client.meta.endpoint_url
            raise translate(e, self._uri(key), self.bucket, endpoint) from e

    def _progress(self, description: str, size: int) -> contextlib.AbstractContextManager[Any]:
        if size < self._threshold:
            return contextlib.nullcontext()
        return TransferProgress(description, size)

    def _head(self, key: str) -> dict[str, Any]:
        with self._errors(key):
            return self._client.head_object(Bucket=self.bucket, Key=key)

    def _keys(self, prefix: str) -> Iterator[str]:
        """Keys at or below `prefix` taken as a folder: "a" matches "a" and "a/b", not "ab"."""
        base = self._key(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors(base):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    # Keys ending in "/" are folder markers made by consoles, not files.
                    in_folder = not base or key == base or key.startswith(f"{base}/")
                    if in_folder and not key.endswith("/"):
                        yield key

    def child(self, relpath: str) -> S3Storage:
        child = copy.copy(self)  # shares the client: clients are thread-safe and costly to make
        child.prefix = self._key(relpath)
        child.uri = self._uri(child.prefix)
        return child

    @_outlasting
    def exists(self, relpath: str) -> bool:
        try:
            self._head(self._key(relpath))
        except FileNotFoundError:
            return False
        return True

    @_outlasting
    def read_bytes(self, relpath: str) -> bytes:
        key = self._key(relpath)
        with self._errors(key):
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    @_outlasting
    def write_bytes(self, relpath: str, data: bytes) -> None:
        key = self._key(relpath)
        with self._errors(key):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data)

    @_outlasting
    def create(self, relpath: str, data: bytes) -> bool:
        key = self._key(relpath)
        for _ in range(_CONFLICT_RETRIES):
            try:
                with self._errors(key):
                    # A conditional write: S3 (since 2024), MinIO, Ceph RGW and R2 refuse it
                    # with 412 when the key exists: one of racing writers creates it.
                    self._client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
                return True
            except PreconditionFailed as e:
                if e.status == 409:  # ConditionalRequestConflict: a racing write in flight
                    continue
            # 412: a file is there; ours if a retried first attempt wrote it.
            with self._errors(key):
                return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read() == data
        raise TransientError(
            f"could not create {self._uri(key)}: other writers kept racing for it. Run again."
        )

    @_outlasting
    def list(self, prefix: str = "") -> list[str]:
        start = len(self.prefix) + 1 if self.prefix else 0
        return sorted(key[start:] for key in self._keys(prefix))

    @_outlasting
    def delete(self, relpath: str) -> None:
        key = self._key(relpath)
        with self._errors(key):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    @_outlasting
    def delete_prefix(self, prefix: str) -> None:
        keys = list(self._keys(prefix))
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            with self._errors(batch[0]):
                response = self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise StorageError(
                    f"could not delete {len(response['Errors'])} object(s) under "
                    f"{self._uri(self._key(prefix))}, e.g. {self._uri(first['Key'])}: "
                    f"{first.get('Code')} {first.get('Message', '')}. Check that the credentials "
                    "in use have s3:DeleteObject there."
                )

    @_outlasting
    def upload_file(self, local_path: Path, relpath: str) -> None:
        key = self._key(relpath)
        size = Path(local_path).stat().st_size
        with (
            self._errors(key),
            self._progress(f"upload {local_path} -> {self._uri(key)}", size) as progress,
        ):
            self._client.upload_file(
                str(local_path), self.bucket, key, Config=self._transfer, Callback=progress
            )
        stored = self._head(key)["ContentLength"]
        if stored != size:
            raise TransientError(
                f"uploaded {local_path} ({size} bytes) to {self._uri(key)}, but S3 holds "
                f"{stored} bytes there: another process may be writing the same key. Run again."
            )

    @_outlasting
    def download_file(self, relpath: str, local_path: Path) -> None:
        key = self._key(relpath)
        size = self._head(key)["ContentLength"]  # FileNotFoundError before any local file

        def fetch(tmp: Path) -> None:
            with (
                self._errors(key),
                self._progress(f"download {self._uri(key)} -> {local_path}", size) as progress,
            ):
                self._client.download_file(
                    self.bucket, key, str(tmp), Config=self._transfer, Callback=progress
                )
            if tmp.stat().st_size != size:
                raise TransientError(
                    f"downloaded {tmp.stat().st_size} of {size} bytes of {self._uri(key)}: "
                    "the object changed during the download. Run again."
                )

        atomic_write(Path(local_path), fetch)

    @_outlasting
    def size(self, relpath: str) -> int:
        return self._head(self._key(relpath))["ContentLength"]

    @_outlasting
    def check_writable(self) -> None:
        probe = self._key(f".inat-write-probe-{uuid.uuid4().hex}")
        with self._errors(probe):
            self._client.put_object(Bucket=self.bucket, Key=probe, Body=b"")
            self._client.delete_object(Bucket=self.bucket, Key=probe)

    @_outlasting
    def check_readable(self, relpath: str = "") -> None:
        key = self._key(relpath)
        if key:  # a bucket's root is never an object
            with contextlib.suppress(FileNotFoundError):
                self._head(key)
                return
        first = next(self._keys(relpath), None)
        if first is None:
            raise StorageError(
                f"nothing to read at {self._uri(key)}: no object there and none below it. Check "
                "the path (a typo, the wrong bucket or endpoint, or data never uploaded)."
            )
        self._head(first)

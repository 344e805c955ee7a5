"""Storage settings: from the composed `storage` group, passed to S3Storage, and where the
S3 endpoint comes from. Bad values are refused when the config is composed (tests/config)."""

from __future__ import annotations

import pytest
from s3server import free_port

from inat.compose import compose
from inat.data import check_source
from inat.errors import ConfigError, StorageError, TransientError
from inat.models.weights import read_weights
from inat.storage import S3Settings, storage_settings
from inat.storage.s3 import S3Storage


def test_settings_come_from_the_composed_storage_group() -> None:
    cfg = compose(["storage.max_attempts=3", "storage.endpoint_url=http://minio:9000"])
    settings = storage_settings(cfg.storage)
    assert settings == S3Settings(max_attempts=3, endpoint_url="http://minio:9000")
    assert settings.multipart_threshold == 64 * 1024 * 1024


def test_no_settings_are_the_defaults() -> None:
    assert storage_settings(None) == S3Settings() == storage_settings(compose().storage)


def test_invalid_endpoint_url(aws_env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="full URL such as http://minio:9000"):
        S3Storage("s3://bucket/run", S3Settings(endpoint_url="minio:9000"))


@pytest.mark.parametrize("uri", ["s3://", "s3:///run", "s3://bucket/../run"])
def test_bad_uri(uri: str) -> None:
    with pytest.raises(StorageError, match="s3://BUCKET/PREFIX"):
        S3Storage(uri)


def dead_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_service_endpoint_variable_wins(
    aws_env: dict[str, str], s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore reads AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL itself.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws_env["AWS_ENDPOINT_URL"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_endpoint())
    S3Storage(f"s3://{s3_bucket}/run", S3Settings(max_attempts=1)).write_text("x", "1")


def test_config_endpoint_wins_over_environment(
    aws_env: dict[str, str], s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", dead_endpoint())
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_endpoint())
    settings = S3Settings(endpoint_url=aws_env["AWS_ENDPOINT_URL"], max_attempts=1)
    S3Storage(f"s3://{s3_bucket}/run", settings).write_text("x", "1")


def test_addressing_style(aws_env: dict[str, str], s3_bucket: str) -> None:
    # With a host name (not an IP) as endpoint, botocore puts the bucket into the host
    # name (BUCKET.localhost), which MinIO and Ceph usually do not serve; path style
    # keeps it in the path.
    endpoint = aws_env["AWS_ENDPOINT_URL"].replace("127.0.0.1", "localhost")
    path = S3Settings(endpoint_url=endpoint, addressing_style="path")
    S3Storage(f"s3://{s3_bucket}/run", path).write_text("x", "1")
    virtual = S3Settings(
        endpoint_url=endpoint, addressing_style="virtual", max_attempts=1, retry_budget_s=0
    )
    with pytest.raises(TransientError, match=f"{s3_bucket}.localhost"):
        S3Storage(f"s3://{s3_bucket}/run", virtual).write_text("x", "1")


def test_data_sources_and_weights_use_the_settings_they_are_given(
    aws_env: dict[str, str], s3_bucket: str, s3_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment names a dead endpoint: only the settings passed reach the server.
    s3_client.put_object(Bucket=s3_bucket, Key="data/nature_12K.zip", Body=b"zip")
    settings = S3Settings(endpoint_url=aws_env["AWS_ENDPOINT_URL"], max_attempts=1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_endpoint())
    check_source(f"s3://{s3_bucket}/data/nature_12K.zip", settings)
    with pytest.raises(ConfigError, match="does not exist"):
        read_weights("resnet18", f"s3://{s3_bucket}/weights/missing.pth", settings)
    with pytest.raises(TransientError):
        check_source(
            f"s3://{s3_bucket}/data/nature_12K.zip", S3Settings(max_attempts=1, retry_budget_s=0)
        )

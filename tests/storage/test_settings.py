"""Storage settings: the config file, configure(), and where the S3 endpoint comes from."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from s3server import free_port

import inat
from inat.errors import ConfigError, StorageError, TransientError
from inat.storage import configure, settings
from inat.storage.s3 import S3Storage
from inat.storage.settings import S3Settings

DEFAULT_YAML = Path(inat.__file__).parent / "configs" / "storage" / "default.yaml"


def test_config_file_matches_the_defaults() -> None:
    from_file = OmegaConf.load(DEFAULT_YAML)
    assert OmegaConf.to_container(from_file) == dataclasses.asdict(S3Settings())
    configure(from_file)  # what the trainer passes: cfg.storage, a DictConfig
    assert settings.current() == S3Settings()


def test_configure_and_reset() -> None:
    configure({"max_attempts": 3, "endpoint_url": "http://minio:9000"})
    assert settings.current().max_attempts == 3
    assert settings.current().endpoint_url == "http://minio:9000"
    configure(None)
    assert settings.current() == S3Settings()


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({"endpoint": "http://x"}, "unknown storage setting(s) endpoint; allowed: "),
        ({"retry_mode": "eager"}, "storage.retry_mode must be one of standard, adaptive"),
        ({"addressing_style": "dns"}, "storage.addressing_style must be one of auto, path"),
        ({"max_attempts": 0}, "storage.max_attempts must be at least 1"),
        ({"read_timeout": 0}, "storage.read_timeout must be positive"),
    ],
)
def test_bad_settings(given: dict, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configure(given)
    assert error in str(caught.value)


def test_invalid_endpoint_url(aws_env: dict[str, str]) -> None:
    configure({"endpoint_url": "minio:9000"})
    with pytest.raises(ConfigError, match="full URL such as http://minio:9000"):
        S3Storage("s3://bucket/run")


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
    configure({"max_attempts": 1})
    S3Storage(f"s3://{s3_bucket}/run").write_text("x", "1")


def test_config_endpoint_wins_over_environment(
    aws_env: dict[str, str], s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", dead_endpoint())
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_endpoint())
    configure({"endpoint_url": aws_env["AWS_ENDPOINT_URL"], "max_attempts": 1})
    S3Storage(f"s3://{s3_bucket}/run").write_text("x", "1")


def test_addressing_style(aws_env: dict[str, str], s3_bucket: str) -> None:
    # With a host name (not an IP) as endpoint, botocore puts the bucket into the host
    # name (BUCKET.localhost), which MinIO and Ceph usually do not serve; path style
    # keeps it in the path.
    endpoint = aws_env["AWS_ENDPOINT_URL"].replace("127.0.0.1", "localhost")
    configure({"endpoint_url": endpoint, "addressing_style": "path"})
    S3Storage(f"s3://{s3_bucket}/run").write_text("x", "1")
    configure({"endpoint_url": endpoint, "addressing_style": "virtual", "max_attempts": 1})
    with pytest.raises(TransientError, match=f"{s3_bucket}.localhost"):
        S3Storage(f"s3://{s3_bucket}/run").write_text("x", "1")

"""Process-wide settings for object storage: the `storage` config group.

The trainer calls `configure(cfg.storage)` once at start; every `open_storage`
afterwards uses those settings. Keys and defaults mirror
`inat/configs/storage/default.yaml`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from inat.errors import ConfigError

RETRY_MODES = ("standard", "adaptive", "legacy")
ADDRESSING_STYLES = ("auto", "path", "virtual")


@dataclass(frozen=True)
class S3Settings:
    """How to reach and talk to S3; None leaves a value to boto3's own configuration chain."""

    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: str | None = None
    retry_mode: str | None = "standard"
    max_attempts: int | None = 10
    connect_timeout: float = 10
    read_timeout: float = 60
    multipart_threshold_mb: float = 64

    def __post_init__(self) -> None:
        _check_choice("retry_mode", self.retry_mode, RETRY_MODES)
        _check_choice("addressing_style", self.addressing_style, ADDRESSING_STYLES)
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError(f"storage.max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("connect_timeout", "read_timeout", "multipart_threshold_mb"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"storage.{name} must be positive, got {getattr(self, name)}")

    @property
    def multipart_threshold(self) -> int:
        """The multipart threshold in bytes."""
        return int(self.multipart_threshold_mb * 1024 * 1024)


def _check_choice(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        choices = ", ".join(allowed)
        raise ConfigError(f"storage.{name} must be one of {choices} or null, got {value!r}")


_current = S3Settings()


def configure(settings: Mapping[str, Any] | None) -> None:
    """Use `settings` (the `storage` config group) for every storage opened from now on.

    None restores the defaults, which defer to the environment (AWS_* variables,
    the AWS config files) wherever a default is null.
    """
    global _current
    given = dict(settings or {})
    known = {f.name for f in fields(S3Settings)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(
            f"unknown storage setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}"
        )
    _current = S3Settings(**given)


def current() -> S3Settings:
    """The settings given to the latest `configure` call (defaults before any)."""
    return _current

"""Validation of model config values: each failure is a ConfigError naming the key."""

from __future__ import annotations

from collections.abc import Iterable

from inat.errors import ConfigError


def choice(key: str, value: object, allowed: Iterable[str]) -> str:
    """`value` if it is one of `allowed`."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {', '.join(allowed)}")
    return value  # type: ignore[return-value]


def flag(key: str, value: object) -> bool:
    """`value` if it is a boolean."""
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be true or false")
    return value


def positive_int(key: str, value: object) -> int:
    """`value` if it is an integer above zero."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{key}={value!r} must be a positive integer")
    return value


def positive_float(key: str, value: object) -> float:
    """`value` as a float if it is a number above zero."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{key}={value!r} must be a number above 0")
    return float(value)


def probability(key: str, value: object) -> float:
    """`value` as a float if it is a number in [0, 1), such as a dropout rate."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ConfigError(f"{key}={value!r} must be a number in [0, 1)")
    return float(value)

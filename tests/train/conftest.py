"""Fixtures of the trainer tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.runs import compose_cfg


@pytest.fixture
def tiny_cfg(tmp_path: Path):
    """A factory of tiny configs writing under tmp_path."""
    return lambda *overrides, **kwargs: compose_cfg(tmp_path, *overrides, **kwargs)

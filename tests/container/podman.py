"""podman as the container tests use it: the project's settings, output captured.

podman stands in for Docker here: it builds the same Dockerfile and runs the image with
the same semantics (entrypoint, user, signals, --read-only), and needs no daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SETTINGS = REPO / "scripts" / "containers.conf"


def require_podman() -> None:
    """Skip (fail in CI) unless podman can build and run images here."""
    if shutil.which("podman") is None:
        reason = "no podman: run `bash scripts/install-container-tools.sh` (scripts/test.sh does)"
    elif os.geteuid() != 0:
        reason = "the base image is made with debootstrap, which needs root"
    else:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def engine_env() -> dict[str, str]:
    """This process's environment with the project's podman settings (unless others are set)."""
    return {"CONTAINERS_CONF": str(SETTINGS), **os.environ}


def podman(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `podman ARGS` and capture its output."""
    return subprocess.run(
        ["podman", *args], env=engine_env(), capture_output=True, text=True, timeout=timeout
    )


def env_options(env: Mapping[str, str]) -> list[str]:
    """`podman run` options that set `env` in the container."""
    return [option for name, value in env.items() for option in ("--env", f"{name}={value}")]


def image_config(image: str) -> dict[str, Any]:
    """The image's configuration: Labels, Env, User, Entrypoint, Cmd, ..."""
    return json.loads(podman("image", "inspect", image).stdout)[0]["Config"]

"""The image, built for real from the Dockerfile with podman, on a Debian base made here
with debootstrap (no registry can be reached) and with wheels gathered by this machine's pip.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .podman import REPO, engine_env, require_podman

BASE = "localhost/debian:bookworm"
TAG = "localhost/inat:test"
# Where scripts/container-base.sh keeps its tarball; the wheelhouse goes there too.
CACHE = Path(
    os.environ.get("INAT_CONTAINER_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inat-container"
)


def _script(name: str, *args: str) -> None:
    done = subprocess.run(
        ["bash", f"scripts/{name}", *args],
        cwd=REPO,
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode:
        pytest.fail(
            f"scripts/{name} failed ({done.returncode}):\n{done.stdout[-4000:]}\n"
            f"{done.stderr[-4000:]}"
        )


def _build(tag: str, *build_args: str) -> str:
    """Build the image as `tag` on the Debian base, passing `build_args` to podman build."""
    _script("container-base.sh", BASE)
    wheelhouse = str(CACHE / "wheelhouse")
    options = ["--engine", "podman", "--base", BASE, "--wheelhouse", wheelhouse, "--tag", tag]
    _script("build-image.sh", *options, "--", *build_args)
    return tag


@pytest.fixture(scope="session")
def build_image() -> Callable[..., str]:
    """build_image(TAG, *BUILD_ARGS) builds the image as TAG and returns TAG."""
    require_podman()
    return _build


@pytest.fixture(scope="session")
def image(build_image) -> str:
    """The image's tag, built once per session (podman's layer cache makes a rebuild quick)."""
    return build_image(TAG)

"""What produced a run: package versions, the git commit or image tag when known."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path

import accelerate
import torch

import inat


def git_commit() -> str | None:
    """The commit of the source tree inat runs from, or INAT_GIT_COMMIT (set in the image)."""
    if commit := os.environ.get("INAT_GIT_COMMIT"):
        return commit
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(inat.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def versions() -> dict[str, str | None]:
    """Versions recorded in result.json."""
    return {
        "inat": inat.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": version("torchvision"),  # not imported: it takes seconds
        "accelerate": accelerate.__version__,
        "git_commit": git_commit(),
        "image": os.environ.get("INAT_IMAGE"),
    }

"""The Dockerfile passes hadolint, the Dockerfile linter (from the test extra)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .podman import REPO


def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).with_name("hadolint")
    assert hadolint.is_file(), "hadolint comes with the test extra: pip install -e '.[test]'"

    done = subprocess.run(
        [str(hadolint), "Dockerfile"], cwd=REPO, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stdout + done.stderr

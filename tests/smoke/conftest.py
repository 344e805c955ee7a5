"""An nvidia-smi of the test's choosing, first on PATH: a real executable, no GPU needed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

QUERY = "--query-gpu=driver_version --format=csv,noheader"


@pytest.fixture
def nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, int], None]:
    """nvidia_smi(OUTPUT, STATUS) puts first on PATH an nvidia-smi that answers the driver
    query with OUTPUT and exits with STATUS; any other command line is an error (exit 2)."""
    folder = tmp_path / "fake-bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")

    def install(output: str, status: int = 0) -> None:
        (folder / "nvidia-smi.out").write_text(output)
        script = folder / "nvidia-smi"
        script.write_text(
            "#!/bin/sh\n"
            f'if [ "$*" != "{QUERY}" ]; then echo "unexpected arguments: $*" >&2; exit 2; fi\n'
            'cat "$(dirname "$0")/nvidia-smi.out"\n'
            f"exit {status}\n"
        )
        script.chmod(0o755)

    return install


@pytest.fixture
def no_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH holds only an empty folder: no nvidia-smi, whatever this machine has."""
    folder = tmp_path / "empty-bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))

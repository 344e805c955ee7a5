"""A real single-node Slurm cluster for this folder's tests, started and stopped by
scripts/slurm-cluster.sh (Debian's Slurm packages, installed by scripts/install-slurm.sh)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.slurm import REPO, SlurmCluster

CLUSTER_SCRIPT = REPO / "scripts" / "slurm-cluster.sh"
# The node offers more CPUs than this machine has: a controller, two array tasks and a
# preempting job fit side by side.
CPUS = 4


def _unavailable() -> str | None:
    """Why a Slurm cluster cannot start here, or None."""
    if os.geteuid() != 0:
        return "starting Slurm's daemons needs root"
    missing = [
        name
        for name in ("slurmctld", "slurmd", "munged", "sbatch")
        if not shutil.which(name) and not Path("/usr/sbin", name).exists()
    ]
    if missing:
        return f"Slurm is missing ({', '.join(missing)}): bash scripts/install-slurm.sh"
    return None


def _free_port_pair() -> int:
    """A port that nothing listens on, and the next one free too (slurmctld's and slurmd's):
    the test cluster runs beside one a developer may have started."""
    while True:
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A fresh single-node cluster for the session; skipped (failed in CI) where none can run."""
    reason = _unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Slurm tests must run in CI, but {reason}")
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("slurm-cluster")
    env = {
        **os.environ,
        "SLURM_CLUSTER_DIR": str(directory),
        "SLURM_CLUSTER_CPUS": str(CPUS),
        "SLURM_CLUSTER_PORT": str(_free_port_pair()),
    }
    start = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=180
    )
    assert start.returncode == 0, start.stdout + start.stderr
    try:
        yield SlurmCluster(conf=directory / "slurm.conf")
    finally:
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop"], env=env, timeout=120, check=True)

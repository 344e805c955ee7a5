"""Driving a real Slurm cluster from tests: submissions, job fields, polling with deadlines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}


@dataclass
class SlurmCluster:
    """The running test cluster and the commands the tests give it."""

    conf: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a submission: this cluster, the tests' Python (for slurm/*.sh),
        W&B off, and `extra`."""
        return {
            **os.environ,
            "SLURM_CONF": str(self.conf),
            "PYTHON": sys.executable,
            "WANDB_MODE": "disabled",
            **extra,
        }

    def run(self, *command: str) -> str:
        """Run a Slurm command against this cluster; its output."""
        done = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{command}: {done.stderr}"
        return done.stdout

    def sbatch(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
        """Submit a batch job; its id."""
        done = subprocess.run(
            ["sbatch", "--parsable", *args],
            cwd=cwd,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job`'s fields of one job (or array task, e.g. 12_3)."""
        return dict(re.findall(r"(\w+)=(\S*)", self.run("scontrol", "-o", "show", "job", job_id)))

    def jobs(self, name: str) -> list[dict[str, str]]:
        """The fields of every job (array task) named `name` that Slurm still knows."""
        lines = self.run("scontrol", "-o", "show", "job").splitlines()
        fields = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in lines]
        return [f for f in fields if f.get("JobName") == name]

    def wait_ended(self, job_id: str, timeout: float, log: Path | None = None) -> dict[str, str]:
        """Poll until the job has ended; its fields. On timeout, fail with its log's tail."""
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id))["JobState"] not in _ENDED:
            if time.monotonic() > deadline:
                tail = log.read_text()[-3000:] if log and log.exists() else ""
                pytest.fail(f"job {job_id} still {job['JobState']} after {timeout}s\n{tail}")
            time.sleep(0.5)
        return job


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout}s")
        time.sleep(0.2)

"""Driving a real Slurm cluster from tests: submissions, job fields, polling with deadlines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.runs import TINY_DATA, TINY_MODEL

REPO = Path(__file__).resolve().parents[2]
# A sweep's points: the tiny CNN with small batches, so that an epoch is long enough (a second
# or so) to be stopped in the middle.
SLOW_EPOCHS = [
    *(o for o in TINY_DATA if not o.startswith("data.batch_size=")),
    *TINY_MODEL,
    "data.batch_size=4",
    "model.batch_norm=false",
    "optimizer=adam",
    "optimizer.lr=0.003",
    "scheduler=constant",
]
# Array tasks of one CPU each; a time limit long enough that submitit counts the USR2 of a
# preemption as a preemption, not a time-out.
TASKS_ON_CPU = [
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=60",
]
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


def point_processes(index: int) -> list[int]:
    """The pids of the training processes of sweep point `index` that Slurm started on
    this machine (the tests beside these may run points of their own)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            flag = argv.index(b"--index") if b"--index" in argv and b"inat" in argv else -2
            if argv[flag + 1 : flag + 2] != [str(index).encode()]:
                continue
            if b"SLURM_JOB_ID=" in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:  # not a process, or it just ended
            continue
    return pids


def parent_of(pid: int) -> int:
    """The parent pid of process `pid`."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def epochs(run) -> list[int]:
    """The epochs in the metrics.jsonl of run directory `run` (a Storage), in order."""
    if not run.exists("metrics.jsonl"):
        return []
    return [json.loads(line)["epoch"] for line in run.read_text("metrics.jsonl").splitlines()]

"""How many DataLoader workers a training process gets: from the CPUs the job may really use.

os.cpu_count() is the host's count: a job given 8 of a node's 128 CPUs (Slurm
--cpus-per-task, a Kubernetes CPU limit) that starts 127 workers per process thrashes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

AUTO = "auto"
MAX_AUTO_WORKERS = 8  # beyond this, more workers rarely load faster and each holds memory


def _cgroup_quota(cgroup_root: Path, proc_cgroup: Path) -> float | None:
    """The CPU quota of this process's cgroup and its ancestors (v2 or v1), in CPUs; None: none."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: cpu.max holds "QUOTA PERIOD" or "max PERIOD"
            folders, files = [cgroup_root], ("cpu.max",)
        elif "cpu" in controllers.split(","):  # cgroup v1: cfs quota (-1: none) and period
            folders = [cgroup_root / "cpu", cgroup_root / controllers]
            files = ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        parts = Path(path.lstrip("/")).parts
        for folder in folders:
            for depth in range(len(parts), -1, -1):
                quota = _read_quota(folder.joinpath(*parts[:depth]), files)
                if quota is not None:
                    quotas.append(quota)
    return min(quotas, default=None)


def _read_quota(folder: Path, files: tuple[str, ...]) -> float | None:
    try:
        values = " ".join((folder / name).read_text() for name in files).split()
    except OSError:
        return None
    quota, period = values[0], values[1]
    if quota in ("max", "-1") or float(period) <= 0:
        return None
    return float(quota) / float(period)


def usable_cpus(
    environ: Mapping[str, str] | None = None,
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    proc_cgroup: Path = Path("/proc/self/cgroup"),
) -> int:
    """The CPUs this process may run on: the smallest of its CPU affinity, its cgroup's CPU
    quota (rounded up) and Slurm's SLURM_CPUS_PER_TASK."""
    environ = os.environ if environ is None else environ
    limits = [len(os.sched_getaffinity(0))]
    if (quota := _cgroup_quota(cgroup_root, proc_cgroup)) is not None:
        limits.append(max(1, math.ceil(quota)))
    if (slurm := environ.get("SLURM_CPUS_PER_TASK", "")).isdigit():
        limits.append(int(slurm))
    return max(1, min(limits))


def auto_workers(environ: Mapping[str, str] | None = None, **cgroup: Path) -> int:
    """Workers for one training process: its share of the usable CPUs, less one for itself.

    The share divides by LOCAL_WORLD_SIZE, the training processes on this node (set by
    `accelerate launch` and torchrun); at most MAX_AUTO_WORKERS.
    """
    environ = os.environ if environ is None else environ
    local = environ.get("LOCAL_WORLD_SIZE", "")
    per_process = usable_cpus(environ, **cgroup) // max(1, int(local) if local.isdigit() else 1)
    return max(0, min(MAX_AUTO_WORKERS, per_process - 1))


def resolve_workers(value: int | str) -> int:
    """data.num_workers (checked by the schema) as a number: `auto` becomes auto_workers()."""
    return auto_workers() if value == AUTO else int(value)

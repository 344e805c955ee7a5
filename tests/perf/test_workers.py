"""data.num_workers=auto: workers from the CPUs the job may use, not the host's count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inat.data.workers import MAX_AUTO_WORKERS, auto_workers, resolve_workers, usable_cpus


@pytest.fixture
def big_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 64-CPU host. Mocked: this machine has 2 CPUs, and the point is a host with more."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))


def _cgroup(tmp_path: Path, proc_line: str, files: dict[str, str]) -> dict[str, Path]:
    """A /proc/self/cgroup and a /sys/fs/cgroup tree holding `files` (relative path -> text)."""
    root = tmp_path / "sys-fs-cgroup"
    for relpath, text in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_text(text)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(proc_line + "\n")
    return {"cgroup_root": root, "proc_cgroup": proc}


def test_a_cgroup_v2_cpu_limit_bounds_the_cpus(tmp_path, big_host) -> None:
    # A Kubernetes pod limited to 2.5 CPUs, in a nested cgroup.
    paths = _cgroup(tmp_path, "0::/kubepods/pod1", {"kubepods/pod1/cpu.max": "250000 100000"})
    assert usable_cpus({}, **paths) == 3
    assert auto_workers({}, **paths) == 2


def test_an_unlimited_cgroup_leaves_the_affinity(tmp_path, big_host) -> None:
    paths = _cgroup(tmp_path, "0::/job", {"job/cpu.max": "max 100000"})
    assert usable_cpus({}, **paths) == 64
    assert auto_workers({}, **paths) == MAX_AUTO_WORKERS


def test_a_cgroup_v1_quota_of_a_parent_counts(tmp_path, big_host) -> None:
    paths = _cgroup(
        tmp_path,
        "4:cpu,cpuacct:/slurm/uid_0/job_7",
        {
            "cpu,cpuacct/slurm/cpu.cfs_quota_us": "400000",
            "cpu,cpuacct/slurm/cpu.cfs_period_us": "100000",
            "cpu,cpuacct/slurm/uid_0/job_7/cpu.cfs_quota_us": "-1",
            "cpu,cpuacct/slurm/uid_0/job_7/cpu.cfs_period_us": "100000",
        },
    )
    assert usable_cpus({}, **paths) == 4


def test_slurm_cpus_per_task_and_processes_per_node_share_the_cpus(tmp_path, big_host) -> None:
    paths = _cgroup(tmp_path, "0::/", {})
    assert auto_workers({"SLURM_CPUS_PER_TASK": "16"}, **paths) == MAX_AUTO_WORKERS
    # accelerate launch --num_processes 4 in a 16-CPU task: 4 CPUs each, 3 workers each.
    assert auto_workers({"SLURM_CPUS_PER_TASK": "16", "LOCAL_WORLD_SIZE": "4"}, **paths) == 3
    assert auto_workers({"SLURM_CPUS_PER_TASK": "1"}, **paths) == 0


def test_this_machine_gets_one_worker_per_spare_cpu() -> None:
    assert resolve_workers("auto") == max(0, min(MAX_AUTO_WORKERS, usable_cpus() - 1))
    assert resolve_workers(3) == 3

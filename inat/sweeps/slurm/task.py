"""One array task of a Slurm sweep: train one point in a child process, then requeue the task
when Slurm warned of a time limit or preemption before the point was done.

Slurm sends the warning signal (submitit's USR2, `--signal`) to every process of the task:
the training process checkpoints and exits with RETRY (75). This process only records the
signal while the child runs, so that submitit's own handler (checkpoint(), `scontrol
requeue`) runs once the checkpoint is published rather than at once. The requeued task runs
this function again with the same arguments, and the point resumes from its checkpoint.

The point's process dies with this one (PR_SET_PDEATHSIG): where Slurm tracks a task's
processes by their parent links (proctrack/linuxproc), a point whose wrapper was killed
would otherwise go on training outside the allocation. A point that did not end done ends
the task with a non-zero exit code (its own, or 128 + the signal that killed it), so that
Slurm's state (FAILED) and exit code tell the truth; the controller records them for a point
whose process was killed before it could say why.

The point's run directory records how it ended; the controller reads it.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import submitit
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from submitit.core.utils import UncompletedJobError

from inat.errors import ExitCode
from inat.processes import die_with_parent
from inat.sweeps.jobs import load_job
from inat.sweeps.run import is_adaptive
from inat.sweeps.slurm.submit import Container, point_command, processes_per_point

log = logging.getLogger(__name__)

# The torch launcher of a multi-GPU point passes these on to its workers and waits for them.
_LAUNCHER_SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR2"


@contextmanager
def _recording(signum: int) -> Iterator[list[int]]:
    """While the block runs, record `signum` instead of acting on it; the previous handler
    comes back after it."""
    received: list[int] = []
    previous = signal.signal(signum, lambda sig, _frame: received.append(sig))
    try:
        yield received
    finally:
        signal.signal(signum, previous)


def _child_env(processes: int) -> dict[str, str]:
    """The task's environment, plus what the point's processes need to share the task well."""
    env = {**os.environ, "PET_SIGNALS_TO_HANDLE": _LAUNCHER_SIGNALS}
    # Torch starts a thread per core of the node, not per CPU of the task: on a shared node
    # that oversubscribes the cores many times over (and spinning threads starve each other).
    cpus = int(os.environ.get("SLURM_CPUS_PER_TASK", processes))
    env.setdefault("OMP_NUM_THREADS", str(max(1, cpus // processes)))
    return env


def _death_signal(processes: int) -> signal.Signals:
    """What the point's process gets when the task dies: SIGKILL, as a cgroup kills the
    task's processes; under `inat launch` SIGTERM, which the launcher passes on to its
    training processes (they would outlive a launcher killed outright)."""
    return signal.SIGKILL if processes == 1 else signal.SIGTERM


def exit_status(code: int) -> int:
    """The task's exit status for a child's return code: the same, or 128 + N for a child
    killed by signal N (as a shell reports it)."""
    return 128 - code if code < 0 else code


def describe(code: int) -> str:
    """A child's return code in words: `exit code 65`, `signal SIGKILL`."""
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def run_task(cfg: DictConfig) -> dict[str, Any]:
    """Train point `cfg.point` of the job `cfg.job_file` with `cfg.overrides`; returns how its
    process ended when it ended done (or pruned). Requeues the task when Slurm warned in
    time; otherwise exits with the point's exit status (SystemExit)."""
    launcher = HydraConfig.get().launcher
    job_file = str(cfg.job_file)
    processes = processes_per_point(launcher.gpus_per_node)
    command = point_command(
        job_file,
        cfg.point,
        [str(o) for o in OmegaConf.to_container(cfg.overrides, resolve=False)],
        processes,
        Container.from_config(launcher.container),
        mounts=[os.getcwd(), str(Path(job_file).parent)],
        selector="--task" if is_adaptive(load_job(job_file)) else "--index",
    )
    warning = getattr(signal, f"SIG{submitit.JobEnvironment.USR_SIG}")
    log.info("point %d: %s", cfg.point, shlex.join(command))
    with _recording(warning) as warned:
        code = subprocess.call(
            command,
            env=_child_env(processes),
            preexec_fn=lambda: die_with_parent(_death_signal(processes)),
        )
    log.info("point %d ended with %s", cfg.point, describe(code))
    if warned and code not in (ExitCode.OK, ExitCode.BAD_INPUT):
        log.warning("Slurm warned of a time limit or preemption: requeueing point %d", cfg.point)
        try:
            signal.raise_signal(warning)  # submitit's handler: checkpoint(), requeue, exit
        except UncompletedJobError as e:
            log.error("point %d is not requeued: %s", cfg.point, e)
    if code != ExitCode.OK:
        raise SystemExit(exit_status(code))
    return {"point": cfg.point, "exit_code": code, "ended_by": describe(code)}

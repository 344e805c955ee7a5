"""What Slurm says about a sweep's array tasks, and waiting until they have left the queue.

A task is part of the sweep while Slurm queues, runs or requeues it: a requeued task (by
`scontrol requeue`, a preemption, its own requeue after a time-limit warning) stays in the
queue, so waiting goes on. A task has ended once squeue shows it in a final state or no
longer lists it (a node lost, the wrapper killed): waiting never depends on the task's own
result file, which a task that died never writes and a requeued one wrote too early.

How it ended comes from `scontrol show job` while Slurm remembers the job (MinJobAge), then
from `sacct` where the cluster keeps accounting.
"""

from __future__ import annotations

import functools
import logging
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Final states. PREEMPTED is not one: a preempted task that is requeued shows it on its way
# back to PENDING (one cancelled by preemption leaves the queue after MinJobAge).
ENDED = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "REVOKED",
        "TIMEOUT",
    }
)
TASKS = "tasks.json"  # in the sweep's log folder: each submitted task, in order, and its end
POLL_S = 2.0  # the first polls; then slower, up to MAX_POLL_S, as the wait goes on
MAX_POLL_S = 30.0
_TIMEOUT_S = 60  # one Slurm command


@dataclass(frozen=True)
class Task:
    """One array task as squeue lists it."""

    job_id: str  # ARRAYJOBID_TASKID
    state: str  # PENDING, RUNNING, COMPLETED, ...

    @property
    def ended(self) -> bool:
        """Whether the task is in a final state."""
        return self.state.split()[0] in ENDED


@functools.cache
def _warn_once(message: str) -> None:
    log.warning(message)


def _slurm(*command: str) -> str | None:
    """The output of a Slurm command; None (with one warning per kind of failure) if it
    failed."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        _warn_once(f"{command[0]} failed: {e}")
        return None
    if done.returncode != 0:
        _warn_once(f"{command[0]} failed: {done.stderr.strip() or done.returncode}")
        return None
    return done.stdout


def tasks_named(name: str) -> list[Task] | None:
    """This user's jobs and array tasks called `name` that Slurm still knows, ended ones
    included; None when squeue cannot answer (the controller daemon restarting)."""
    out = _slurm(
        *("squeue", "--me", "--noheader", "--array", "--states=all"),
        *(f"--name={name}", "--format=%i|%T"),
    )
    if out is None:
        return None
    rows = (line.split("|", 1) for line in out.splitlines() if "|" in line)
    return [Task(job_id.strip(), state.strip()) for job_id, state in rows]


def live(tasks: Sequence[Task]) -> list[Task]:
    """The tasks still queued, running or on their way back to the queue."""
    return [t for t in tasks if not t.ended]


def exit_code_in_words(exit_code: str) -> str:
    """Slurm's EXIT:SIGNAL in words: `exit code 65`, `signal SIGKILL` (also for an exit code
    of 128 + N, as a task whose process was killed by signal N reports it)."""
    status, _, number = exit_code.partition(":")
    if not status.isdigit():
        return f"exit code {exit_code}"
    sig = int(number) if number.isdigit() and int(number) else int(status) - 128
    try:
        return f"exit code {status}, signal {signal.Signals(sig).name}"
    except ValueError:  # not a signal
        return f"exit code {status}"


def how_it_ended(job_id: str) -> str:
    """How a task that left the queue ended, as far as Slurm can tell: `state FAILED, exit
    code 137, signal SIGKILL`; from scontrol while Slurm remembers it, else from sacct."""
    shown = _slurm("scontrol", "--oneliner", "show", "job", job_id)
    if shown:
        fields = dict(re.findall(r"(\w+)=(\S*)", shown))
        reason = fields.get("Reason", "None")
        because = f", reason {reason}" if reason not in ("None", "") else ""
        code = exit_code_in_words(fields.get("ExitCode", "?"))
        return f"state {fields.get('JobState')}, {code}{because}"
    accounted = _slurm(
        *("sacct", "--noheader", "--parsable2", "--allocations"),
        *(f"--jobs={job_id}", "--format=State,ExitCode"),
    )
    if accounted and accounted.strip():
        state, code = accounted.splitlines()[0].split("|")[:2]
        return f"state {state}, {exit_code_in_words(code)}"
    return "Slurm keeps no record of it (no accounting on this cluster)"


def wait_until_ended(name: str, job_ids: Sequence[str]) -> dict[str, str]:
    """Poll squeue until every task of `job_ids` (array tasks called `name`) has ended or
    left the queue; how each ended, by job id.

    A task is asked about once, when it is first seen ended; squeue failing (the controller
    daemon restarting) only delays the wait.
    """
    ends: dict[str, str] = {}
    started = time.monotonic()
    while len(ends) < len(job_ids):
        listed = tasks_named(name)
        if listed is not None:
            waiting = {t.job_id for t in live(listed)}
            for job_id in job_ids:
                if job_id not in ends and job_id not in waiting:
                    ends[job_id] = how_it_ended(job_id)
                    log.info("task %s has ended: %s", job_id, ends[job_id])
        if len(ends) < len(job_ids):
            time.sleep(min(MAX_POLL_S, POLL_S + (time.monotonic() - started) / 30))
    return ends

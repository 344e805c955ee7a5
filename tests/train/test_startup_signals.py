"""A stop signal that arrives while a command starts (before it trains, before the
launcher starts its processes) ends it with exit code 75, which schedulers retry, and no
traceback: a preemption can come at any moment.

The commands are held at a known point of their start by a named pipe they read (a job
file): the test's open of the pipe for writing returns once the
command has opened it, so the signal lands while the command waits there."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
from pathlib import Path

import pytest
from helpers.runs import inat_command

from inat.errors import ExitCode, Interrupted
from inat.rundir import RunLog
from inat.stop_signals import ConsoleHandler
from inat.storage import LocalStorage


def _signal_while_reading(tmp_path: Path, pipe: Path, args: list[str], sig: int) -> str:
    """Start `inat ARGS`, send `sig` once it has opened `pipe`; its output."""
    os.mkfifo(pipe)
    proc = subprocess.Popen(
        inat_command(*args),
        cwd=tmp_path,
        env={**os.environ, "WANDB_MODE": "disabled"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with pipe.open("w"):  # returns once the command opened the pipe to read it
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.RETRY, output
    return output


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR2, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_while_a_command_starts_exits_75(tmp_path: Path, sig: int) -> None:
    job = tmp_path / "job.yaml"
    output = _signal_while_reading(tmp_path, job, ["sweep", str(job)], sig)

    assert f"stopped by {signal.Signals(sig).name} while starting" in output
    assert "Traceback" not in output


@pytest.mark.slow
def test_sigterm_to_the_launcher_while_its_process_starts_exits_75(tmp_path: Path) -> None:
    # One process: Accelerate runs it as a plain child, which gets the signal from inat's
    # launcher. (Several go through the elastic agent: tests/train/test_launch.py.)
    job = tmp_path / "job.yaml"
    launch = ["launch", "--cpu", "--num_processes", "1"]
    output = _signal_while_reading(tmp_path, job, [*launch, "sweep", str(job)], signal.SIGTERM)

    assert "received SIGTERM: passed on to 1 process(es)" in output
    assert "stopped by SIGTERM while starting" in output
    assert "Traceback" not in output


class _Interrupting(io.StringIO):
    """A stream whose write is where a stop signal's Interrupted comes up."""

    def write(self, text: str) -> int:
        raise Interrupted("stopped by SIGTERM while starting; nothing to save yet")


@pytest.mark.parametrize("handler", ["console", "train.log"])
def test_a_stop_signal_while_a_line_is_logged_stops_the_code_that_logged(
    tmp_path: Path, handler: str
) -> None:
    # Logging prints an exception raised while it writes as a "Logging error" traceback
    # and goes on: a stop signal landing there would be lost.
    if handler == "console":
        written = ConsoleHandler(_Interrupting())
    else:
        written = RunLog(LocalStorage(tmp_path))
        written._file = _Interrupting()
    logger = logging.getLogger(f"test-{handler}")
    logger.addHandler(written)
    logger.propagate = False
    with pytest.raises(Interrupted):
        logger.warning("a line")

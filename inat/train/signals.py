"""Signals that ask the run to checkpoint and stop with the RETRY exit code (75):
SIGTERM (Kubernetes eviction, scancel), SIGUSR2 (Slurm's warning before a time limit or
preemption), SIGINT (Ctrl-C) and SIGHUP (the terminal or SSH session closed). Only the
first counts (inat.stop_signals): a second one while the run checkpoints is ignored."""

from __future__ import annotations

import logging
import os
import signal
from contextlib import ExitStack
from types import FrameType

from inat import stop_signals
from inat.errors import Interrupted

log = logging.getLogger(__name__)


class StopRequest:
    """A flag raised by a stop signal; the training loop checks it between steps.

    Before `training()` (downloading and preparing the data, building the model) there is
    nothing to checkpoint: a signal then stops the run at once, raising Interrupted where
    it arrives (a download keeps what it fetched, for the next start to resume). A signal
    that came before the request was made (while a sweep set up the point) stops it as it
    starts.

    Use as a context manager: the previous handlers come back on exit. DataLoader workers
    forked meanwhile inherit the handler; there it does nothing (Ctrl-C reaches the whole
    process group), so a worker neither dies of SIGINT nor logs a second line.
    """

    def __init__(self) -> None:
        self.preparing = True
        self._pid = os.getpid()
        self._handlers = ExitStack()

    def __enter__(self) -> StopRequest:
        if signum := stop_signals.requested():
            raise Interrupted(f"stopped by {signum.name} before training started; nothing to save")
        self._pid = os.getpid()
        self._handlers.enter_context(stop_signals.handled(self._handle))
        return self

    def __exit__(self, *exc: object) -> None:
        self._handlers.close()

    def __bool__(self) -> bool:
        return stop_signals.requested() is not None

    def training(self) -> None:
        """From now on a signal is a request to checkpoint and stop between steps."""
        self.preparing = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:
            return
        name = signal.Signals(signum).name
        if self.preparing:
            log.warning("received %s while preparing the run: stopping", name)
            raise Interrupted(f"stopped by {name} before training started; nothing to save")
        log.warning("received %s: checkpointing and stopping", name)

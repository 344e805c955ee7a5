"""SIGTERM (Kubernetes eviction, scancel) and SIGUSR2 (Slurm's warning before a time
limit or preemption) ask the run to checkpoint and stop with the RETRY exit code."""

from __future__ import annotations

import logging
import signal
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)


class StopRequest:
    """A flag raised by a stop signal; the training loop checks it between steps.

    Use as a context manager: the previous handlers come back on exit.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def __bool__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        log.warning("received %s: checkpointing and stopping", signal.Signals(signum).name)
        self.signum = signum

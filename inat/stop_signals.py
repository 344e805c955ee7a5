"""The signals that stop inat, and how every command answers them.

SIGTERM (Kubernetes eviction, scancel), SIGUSR2 (Slurm's warning before a time limit or
preemption), SIGINT (Ctrl-C) and SIGHUP (the terminal or SSH session closed) ask every
command to stop with the RETRY exit code (75), whatever moment they arrive at: a
preemption can come while Python imports, while a config is composed, while the launcher
starts its processes, while a sweep sets up its next point.

The first stop signal is the one that counts. Until a command installs finer handlers
(the trainer's checkpoint and stop, a sweep's check between points, the launcher's and a
sweep's forwarding to their processes) it raises Interrupted where it arrives; there is
nothing to save yet. Every later one (a second Ctrl-C while the run checkpoints, or while
the process exits) is logged and ignored: it changes neither what is saved nor the exit
code. A command asks `requested()` where it could start new work.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType

import psutil

from inat.errors import Interrupted

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT, signal.SIGHUP)

Handler = Callable[[int, FrameType | None], None]

_first: list[signal.Signals] = []  # the first stop signal of this command; empty: none yet


class PassStops:
    """For logging handlers: Interrupted, raised by a stop signal while a record is being
    written, goes on to the code that logged, which stops. (Logging would print it as a
    "Logging error" with a traceback, and carry on.)"""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], Interrupted):
            raise  # the Interrupted being handled
        super().handleError(record)  # type: ignore[misc]


class ConsoleHandler(PassStops, logging.StreamHandler):
    """The console's log handler (Hydra's job logging, inat's other commands)."""


def requested() -> signal.Signals | None:
    """The first stop signal this command got; None while none came."""
    return _first[0] if _first else None


def _first_only(handler: Handler) -> Handler:
    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if _first:
            log.warning("received %s while stopping: ignored, the stop goes on", name)
            return
        _first.append(signal.Signals(signum))
        handler(signum, frame)

    return handle


@contextmanager
def handled(handler: Handler) -> Iterator[None]:
    """A context: within it the first stop signal goes to `handler` (unless one came
    before), later ones are ignored; the previous handlers come back after it."""
    wrapped = _first_only(handler)
    previous = {signum: signal.signal(signum, wrapped) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _stop_at_once(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    raise Interrupted(f"stopped by {name} while starting; nothing to save yet")


def _record(signum: int, frame: FrameType | None) -> None:
    log.warning("received %s: stopping; no new point is taken", signal.Signals(signum).name)


def _pass_to_children(signum: int, frame: FrameType | None) -> None:
    children = psutil.Process().children()
    if not children:
        _stop_at_once(signum, frame)
    log.warning(
        "received %s: passed on to %d process(es)", signal.Signals(signum).name, len(children)
    )
    for child in children:
        child.send_signal(signum)


@contextmanager
def command() -> Iterator[None]:
    """The context of one command (`main()`): no stop requested yet; within it a stop signal
    raises Interrupted until the command installs handlers of its own."""
    _first.clear()
    with handled(_stop_at_once):
        yield


def recorded() -> AbstractContextManager[None]:
    """A context: within it a stop signal is only recorded (see `requested()`), for a loop
    that stops between its steps (a sweep between points, while it sets one up)."""
    return handled(_record)


def passed_to_children() -> AbstractContextManager[None]:
    """A context: within it a stop signal goes on to this process's children, which
    checkpoint and stop (their exit code then ends this process); before it has any, it
    raises Interrupted."""
    return handled(_pass_to_children)


def _ignore(signum: int, frame: FrameType | None) -> None:
    log.warning("received %s while exiting: ignored", signal.Signals(signum).name)


def ignored() -> None:
    """From now on every stop signal is logged and ignored: the process is ending, with its
    exit code decided and its results published."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _ignore)

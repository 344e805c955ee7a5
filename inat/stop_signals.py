"""The signals that stop inat, and what they do before a command can checkpoint.

SIGTERM (Kubernetes eviction, scancel), SIGUSR2 (Slurm's warning before a time limit or
preemption), SIGINT (Ctrl-C) and SIGHUP (the terminal or SSH session closed) ask every
command to stop with the RETRY exit code (75), whatever moment they arrive at: a
preemption can come while Python imports, while a config is composed, while the launcher
starts its processes. Until a command installs finer handlers (the trainer's checkpoint
and stop, a sweep's forwarding to its workers, the launcher's to its processes), a stop
signal raises Interrupted where it arrives; there is nothing to save yet.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType

import psutil

from inat.errors import Interrupted

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT, signal.SIGHUP)


def _stop_at_once(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    raise Interrupted(f"stopped by {name} while starting; nothing to save yet")


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
def _handled(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def stopped_at_once() -> AbstractContextManager[None]:
    """A context: within it a stop signal raises Interrupted; the previous handlers come
    back after it."""
    return _handled(_stop_at_once)


def passed_to_children() -> AbstractContextManager[None]:
    """A context: within it a stop signal goes on to this process's children, which
    checkpoint and stop (their exit code then ends this process); before it has any, it
    raises Interrupted."""
    return _handled(_pass_to_children)

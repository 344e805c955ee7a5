"""Child processes that die with the process that started them."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here, not in the forked child


def die_with_parent(sig: signal.Signals) -> None:
    """In a child, before it runs (a `preexec_fn`): get `sig` when its parent dies, and at
    once if the parent already died. Where a scheduler tracks processes by parent links
    only, nothing else stops a child whose parent was killed with -9."""
    parent = os.getppid()
    _LIBC.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)

"""A lease on a run directory: one process at a time trains it, on any backend and storage.

    <run>/leases/0000.json   generation 0: {holder, heartbeat_at, timeout_s, released}
    <run>/leases/0001.json   generation 1: taken over after generation 0 went stale

A lease is taken by creating the next generation's file (`Storage.create`: one winner
among racing takers), only when no generation is live: the newest is released, its holder
was a process of this machine that no longer exists, or its heartbeat is older than its
timeout (a holder on another machine killed with -9, or that machine lost). Each file has
one writer, its holder, which rewrites it with a fresh heartbeat from a background thread
and checks, each time, that no newer generation exists (if one does, the lease was taken
over: the holder must stop without writing). Heartbeats are the holders' clocks: nodes'
clocks must agree to well within the timeout (NTP does).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from inat.errors import InatError, TransientError
from inat.rundir import read_file
from inat.storage import Storage

log = logging.getLogger(__name__)

LEASES = "leases"
DEFAULT_TIMEOUT_S = 600.0  # a holder silent this long is taken for dead (kill -9, node lost)


class LeaseHeld(TransientError):
    """Another live process holds the lease: try again later (exit 75)."""


class LeaseLost(TransientError):
    """The lease went to another process (this one was taken for dead): stop, write nothing.

    Exit 75 like LeaseHeld: a retry finds the run held, or ended, or its holder gone.
    """


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _gone(record: dict[str, Any]) -> bool:
    """Whether the holder was a process of this machine that no longer exists (kill -9)."""
    if record.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError):
        return False
    return False


def holder_id() -> str:
    """Who holds a lease, for people reading it: host, process, and a unique part."""
    return f"{socket.gethostname()}:{os.getpid()}/{uuid.uuid4().hex[:8]}"


class Lease:
    """The lease on the run directory `run`, taken and renewed by `holder`."""

    def __init__(self, run: Storage, holder: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.storage = run.child(LEASES)
        self.holder = holder
        self.timeout_s = timeout_s
        self.generation: int | None = None  # the generation held, once acquired

    def _name(self, generation: int) -> str:
        return f"{generation:04d}.json"

    def newest(self) -> tuple[int, dict[str, Any]] | None:
        """The newest generation and its record, or None when no lease was ever taken.
        DamagedFile (exit 65) when its record is not a JSON object: who holds the run is
        unknown, so it is neither trained nor taken over until a person sees to it."""
        names = [n for n in self.storage.list() if n.endswith(".json") and n[:4].isdigit()]
        if not names:
            return None
        newest = max(int(n[:4]) for n in names)
        advice = "delete it once no process trains the run (the next start takes the lease anew)"
        return newest, read_file(self.storage, self._name(newest), advice, dict)

    def _record(self, released: bool = False) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "generation": self.generation,
            "heartbeat_at": _now().isoformat(),
            "timeout_s": self.timeout_s,
            "released": released,
        }

    @staticmethod
    def is_live(record: dict[str, Any]) -> bool:
        """Whether a lease record still holds: not released, its holder not gone from this
        machine, its heartbeat within its timeout."""
        if record.get("released") or _gone(record):
            return False
        beat = datetime.fromisoformat(record["heartbeat_at"])
        return _now() - beat < timedelta(seconds=float(record["timeout_s"]))

    def acquire(self) -> None:
        """Take the lease; LeaseHeld naming the holder if another live one has it."""
        newest = self.newest()
        if newest is not None and self.is_live(newest[1]):
            generation, record = newest
            raise LeaseHeld(
                f"{self.storage.uri}/{self._name(generation)}: the run is being trained by "
                f"{record['holder']} (heartbeat at {record['heartbeat_at']}, taken for dead "
                f"after {record['timeout_s']:.0f} s of silence). Not training it twice: try "
                "again later."
            )
        self.generation = 0 if newest is None else newest[0] + 1
        if newest is not None and not newest[1].get("released"):
            log.warning("taking over %s from %s: it is gone", self.storage.uri, newest[1]["holder"])
        if not self.storage.create_json(self._name(self.generation), self._record()):
            taken = self.generation
            self.generation = None
            raise LeaseHeld(
                f"{self.storage.uri}/{self._name(taken)}: another process took the lease at "
                "the same moment. Not training the run twice: try again later."
            )

    def check(self) -> None:
        """Raise LeaseLost if the lease went to another process (call before writing)."""
        newest = self.newest()
        if newest is None or newest[0] != self.generation:
            raise LeaseLost(
                f"{self.storage.uri}: the lease of {self.holder} (generation {self.generation}) "
                "was taken over: this process was taken for dead. Stopping without writing."
            )

    def renew(self) -> None:
        """Rewrite the heartbeat; LeaseLost if a newer generation took the run over."""
        self.check()
        self.storage.write_json(self._name(self.generation), self._record())

    def release(self) -> None:
        """Give the lease up, so that the next start (a requeue, a retry) takes it at once;
        a lease already taken over is left to its new holder."""
        newest = self.newest()
        if self.generation is not None and newest is not None and newest[0] == self.generation:
            self.storage.write_json(self._name(self.generation), self._record(released=True))
        self.generation = None

    @contextmanager
    def held(self) -> Iterator[Lease]:
        """Acquire, renew from a background thread every third of the timeout, release."""
        self.acquire()
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.timeout_s / 3):
                try:
                    self.renew()
                except LeaseLost as e:  # the holder's own check() stops its writes
                    log.error("%s", e)
                    return
                except (InatError, OSError) as e:  # storage out for a while: the next beat
                    log.warning("could not renew the lease of %s: %s", self.storage.uri, e)

        thread = threading.Thread(target=beat, name="lease-heartbeat", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.release()

"""Progress of long work: a bar on a terminal, periodic plain lines in a batch log.

`Progress` wraps a loop (training steps); `TransferProgress` counts bytes (downloads,
uploads, extraction) and may be called from several threads.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

log = logging.getLogger("inat.progress")

LOG_EVERY_S = 30.0  # seconds between log lines of a transfer in a batch log


def byte_size(nbytes: int) -> str:
    """A size for people: "3.1 kB", "12.3 MB" or "1.84 GB"."""
    if nbytes >= 1e9:
        return f"{nbytes / 1e9:.2f} GB"
    return f"{nbytes / 1e6:.1f} MB" if nbytes >= 1e6 else f"{nbytes / 1e3:.1f} kB"


def on_terminal() -> bool:
    """Whether progress goes to a person watching (stderr is a TTY) rather than a log file."""
    return sys.stderr.isatty()


class Progress:
    """Wraps an iterable; `set(**values)` updates what is shown.

    On a terminal it draws a tqdm bar; otherwise it logs one line every
    `every` items, so a Slurm or Kubernetes log shows the run is alive.
    """

    def __init__(
        self, items: Iterable[T], total: int, desc: str, every: int, enabled: bool = True
    ) -> None:
        self.items = items
        self.total = total
        self.desc = desc
        self.every = max(1, every)
        self.enabled = enabled
        self.values: dict[str, Any] = {}
        self.bar = tqdm(total=total, desc=desc, leave=False) if enabled and on_terminal() else None

    def set(self, **values: Any) -> None:
        """Values shown next to the bar or in the next log line."""
        self.values.update(values)
        if self.bar is not None:
            self.bar.set_postfix(self.values, refresh=False)

    def __iter__(self) -> Iterator[T]:
        start = time.perf_counter()
        try:
            for i, item in enumerate(self.items, 1):
                yield item
                if self.bar is not None:
                    self.bar.update()
                elif self.enabled and (i % self.every == 0 or i == self.total):
                    shown = " ".join(f"{k}={_fmt(v)}" for k, v in self.values.items())
                    rate = i / max(time.perf_counter() - start, 1e-9)
                    log.info("%s %d/%d %s (%.1f it/s)", self.desc, i, self.total, shown, rate)
        finally:
            if self.bar is not None:
                self.bar.close()


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class TransferProgress:
    """A byte-count callback for boto3 transfers; safe to call from the transfer threads.

    Use as a context manager: leaving it closes the bar or logs the final line.
    """

    def __init__(self, description: str, total: int) -> None:
        self.description = description
        self.total = total
        self._done = 0
        self._lock = threading.Lock()
        self._start = self._last_log = time.monotonic()
        self._bar = (
            tqdm(total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1024)
            if on_terminal()
            else None
        )

    def __call__(self, nbytes: int) -> None:
        with self._lock:
            self._done += nbytes
            if self._bar is not None:
                self._bar.update(nbytes)
            elif time.monotonic() - self._last_log >= LOG_EVERY_S:
                self._last_log = time.monotonic()
                self._log(f"{100 * self._done / max(self.total, 1):.0f}%")

    def __enter__(self) -> TransferProgress:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self._bar is not None:
            self._bar.close()
        elif exc_type is None:
            self._log("done")

    def _log(self, state: str) -> None:
        elapsed = time.monotonic() - self._start
        rate = self._done / max(elapsed, 1e-9) / 2**20
        log.info(
            "%s: %s, %.1f of %.1f MiB in %.0f s (%.1f MiB/s)",
            self.description,
            state,
            self._done / 2**20,
            self.total / 2**20,
            elapsed,
            rate,
        )

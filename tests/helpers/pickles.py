"""A malicious pickle for tests of loaders that must refuse it."""

from __future__ import annotations

import os
from pathlib import Path


class Payload:
    """An object whose unpickling creates the file `marker`: what a malicious checkpoint holds."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))

"""`python -m inat` is the `inat` command (and what `inat launch` runs in each process)."""

from inat.cli import run

run()

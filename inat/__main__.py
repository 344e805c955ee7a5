"""`python -m inat` is the `inat` command (and what `inat launch` runs in each process)."""

import sys

from inat.cli import main

sys.exit(main())

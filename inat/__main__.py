"""`python -m inat` is the `inat` command (and what `accelerate launch -m inat` runs)."""

import sys

from inat.cli import main

sys.exit(main())

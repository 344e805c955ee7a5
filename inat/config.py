"""Transitional names for inat/train until it moves to `inat.compose` (then delete this file).

Config values are checked once, when the config is composed (`inat.compose`); the
trainer's own `validate(cfg)` call runs that same pass again.
"""

from inat.compose import validate
from inat.schema import SCHEDULES

__all__ = ["SCHEDULES", "validate"]

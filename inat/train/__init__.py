"""The Accelerate trainer: one composed config in, one finished run directory out."""

from inat.train.trainer import train

__all__ = ["train"]

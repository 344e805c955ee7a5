"""The Accelerate trainer: one composed config in, one finished run directory out."""

from inat.train.callbacks import Callback, EarlyStopping, StopRun
from inat.train.state import TrainState
from inat.train.trainer import Trainer, train

__all__ = ["Callback", "EarlyStopping", "StopRun", "TrainState", "Trainer", "train"]

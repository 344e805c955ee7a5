"""Epoch-end callbacks: rules that see each epoch's metrics and may end the run.

    class Prune:
        def on_epoch_end(self, row, state):
            if row["epoch"] >= 3 and row["val_accuracy"] < 0.2:
                return StopRun(Status.PRUNED, "val_accuracy below 0.2 after 3 epochs")
            return None

    train(cfg, callbacks=[Prune()])

Callbacks run on the main process only, after validation and before the epoch's
checkpoint; when one returns a StopRun, every process stops after that epoch, the best
checkpoint is tested and result.json ends with the StopRun's status and reason. The
decision is checkpointed: a resumed run that was stopped goes straight to its test.
A callback that needs to remember something across epochs must derive it from
`state` (which a checkpoint restores), not keep it in the object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from inat.rundir import Status
from inat.train.state import TrainState


@dataclass(frozen=True)
class StopRun:
    """A callback's request to end the run after this epoch, as `status` (DONE, PRUNED)."""

    status: Status
    reason: str


class Callback(Protocol):
    """What `train(cfg, callbacks=[...])` calls at the end of every epoch."""

    def on_epoch_end(self, row: dict[str, Any], state: TrainState) -> StopRun | None:
        """See the epoch's metrics row (as metrics.jsonl gets it); return a StopRun to stop."""
        ...


@dataclass(frozen=True)
class EarlyStopping:
    """trainer.early_stopping_patience: stop (done) after `patience` epochs without a better
    validation accuracy."""

    patience: int

    def on_epoch_end(self, row: dict[str, Any], state: TrainState) -> StopRun | None:
        """Stop once the best validation accuracy is `patience` epochs old."""
        if state.epochs_since_best < self.patience:
            return None
        return StopRun(
            Status.DONE, f"early stop: no better validation accuracy for {self.patience} epochs"
        )

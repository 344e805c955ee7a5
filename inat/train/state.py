"""TrainState: exactly what a checkpoint resumes of the loop, besides weights and generators."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class TrainState:
    """The loop's position and record; a checkpoint stores it as a plain dict."""

    epoch: int = 0  # epochs finished
    batches_done: int = 0  # micro-batches of the unfinished epoch (after a stop signal)
    train_sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    """loss x samples, correct, samples of the unfinished epoch (global sums)."""
    step: int = 0  # optimizer steps
    best_val_accuracy: float = -1.0
    best_epoch: int | None = None
    epochs_since_best: int = 0
    stopped_early: bool = False  # an epoch-end callback ended the run (see stop_status)
    stop_status: str | None = None  # the Status it ended with, e.g. "done" or "pruned"
    stop_reason: str | None = None
    skipped_steps: int = 0  # optimizer steps the fp16 loss scaler skipped (inf/NaN gradients)
    nonfinite_steps: int = 0  # optimizer steps with a loss that was not finite
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl's rows
    resumes: list[dict[str, Any]] = field(default_factory=list)  # one entry per resume

    def state_dict(self) -> dict[str, Any]:
        """A plain dict of numbers, strings and lists, for the checkpoint's `train_state`."""
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take the values of a checkpoint's `train_state`; keys it lacks keep their default."""
        known = {f.name for f in fields(self)}
        for key, value in state.items():
            if key in known:
                setattr(self, key, value)

    def end_epoch(self, val_accuracy: float) -> bool:
        """Count a finished epoch with its validation accuracy; returns whether it is the best."""
        self.epoch += 1
        self.batches_done, self.train_sums = 0, [0.0, 0.0, 0.0]
        improved = val_accuracy > self.best_val_accuracy
        if improved:
            self.best_val_accuracy, self.best_epoch = val_accuracy, self.epoch
            self.epochs_since_best = 0
        else:
            self.epochs_since_best += 1
        return improved

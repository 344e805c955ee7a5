"""The optimizer and the learning-rate schedule, built from their config groups."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from inat.errors import ConfigError
from inat.schema import SCHEDULES


def build_optimizer(cfg: DictConfig, param_groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """The optimizer of `cfg` (a `_partial_` target) over the model's parameter groups.

    Each group's learning rate is `cfg.lr * group["lr_scale"]`.
    """
    groups = [{**g, "lr": cfg.lr * g.get("lr_scale", 1.0)} for g in param_groups]
    try:
        return instantiate(cfg)(groups)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"optimizer: {e}. Check the optimizer.* values.") from e


def _warmup_cosine(warmup: int, total: int, min_ratio: float) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _warmup_constant(warmup: int) -> Callable[[int], float]:
    return lambda step: (step + 1) / warmup if step < warmup else 1.0


def build_scheduler(
    cfg: DictConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A schedule stepped once per optimizer step."""
    total = steps_per_epoch * epochs
    warmup = round(cfg.get("warmup_epochs", 0) * steps_per_epoch)
    if cfg.name == "cosine":
        factor = _warmup_cosine(warmup, total, cfg.min_lr_ratio)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if cfg.name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_constant(max(1, warmup)))
    if cfg.name == "onecycle":
        peaks = [g["lr"] for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peaks, total_steps=total, pct_start=cfg.pct_start
        )
    raise ConfigError(f"scheduler.name={cfg.name!r} is not allowed; choose one of {SCHEDULES}")


# A schedule's position; the rest of its state follows from the config and the total.
_POSITION = ("last_epoch", "_step_count", "_last_lr", "_is_initial")


def resume_scheduler(
    scheduler: torch.optim.lr_scheduler.LRScheduler, saved: dict[str, Any]
) -> None:
    """Continue a checkpoint's schedule at its step, on this run's total number of steps.

    `scheduler` is built for this run (`build_scheduler`); only the checkpoint's position
    is taken from `saved`. With the run's trainer.epochs unchanged that is the saved
    schedule exactly; with more epochs the schedule is the one of the new total, from the
    current step on (a cosine decays more slowly from there, one-cycle moves its phases).
    """
    position = {key: saved[key] for key in _POSITION if key in saved}
    scheduler.load_state_dict({**scheduler.state_dict(), **position})

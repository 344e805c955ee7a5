"""The exponential moving average of a model's weights (trainer.ema_decay), timm's ModelEmaV3."""

from __future__ import annotations

from omegaconf import DictConfig
from timm.utils import ModelEmaV3
from torch import nn


def build_ema(cfg: DictConfig, model: nn.Module) -> ModelEmaV3 | None:
    """A moving average of `model`'s parameters and buffers, on their device, or None where
    trainer.ema_decay is null.

    With trainer.ema_warmup the decay grows with the optimizer step as timm's warm-up says,
    1 - (1 + step)^(-3/4), up to ema_decay, so that the average of a short run is not
    dominated by its random initial weights; without it the decay is ema_decay from the
    first step. Update it after each optimizer step: `ema.update(model, step=step)`.
    """
    if cfg.ema_decay is None:
        return None
    return ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=cfg.ema_warmup, warmup_power=3 / 4)

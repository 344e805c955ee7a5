"""Checks of a composed config that fail fast, before any data is touched.

Model-specific values are checked by the model's constructor, which the trainer
also calls before loading data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from inat.errors import ConfigError

MIXED_PRECISION = ("no", "fp16", "bf16")
SCHEDULES = ("cosine", "onecycle", "constant")
PIPELINES = ("prepared", "images")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_int(v: Any) -> bool:
    return _is_int(v) and v >= 1


# key -> (test, what is allowed)
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "trainer.epochs": (_positive_int, "an integer >= 1"),
    "trainer.mixed_precision": (lambda v: v in MIXED_PRECISION, f"one of {MIXED_PRECISION}"),
    "trainer.grad_accum_steps": (_positive_int, "an integer >= 1"),
    "trainer.grad_clip_norm": (lambda v: v is None or v > 0, "null or a number > 0"),
    "trainer.max_nonfinite_steps": (_positive_int, "an integer >= 1"),
    "trainer.label_smoothing": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "trainer.early_stopping_patience": (
        lambda v: v is None or _positive_int(v),
        "null or an integer >= 1",
    ),
    "trainer.keep_checkpoints": (_positive_int, "an integer >= 1"),
    "trainer.log_every_n_steps": (_positive_int, "an integer >= 1"),
    "trainer.channels_last": (lambda v: isinstance(v, bool), "true or false"),
    "trainer.compile": (lambda v: isinstance(v, bool), "true or false"),
    "trainer.cache_features": (
        lambda v: v == "auto" or isinstance(v, bool),
        "auto, true or false",
    ),
    "data.val_fraction": (lambda v: 0 < v < 1, "a number in (0, 1)"),
    "data.batch_size": (_positive_int, "an integer >= 1"),
    "data.num_workers": (
        lambda v: v == "auto" or (_is_int(v) and v >= 0),
        "auto or an integer >= 0",
    ),
    "data.pipeline": (lambda v: v in PIPELINES, f"one of {PIPELINES}"),
    "data.num_classes": (lambda v: _is_int(v) and v >= 2, "an integer >= 2"),
    "data.image_size": (_positive_int, "an integer >= 1"),
    "optimizer.lr": (lambda v: isinstance(v, int | float) and v > 0, "a number > 0"),
    "scheduler.name": (lambda v: v in SCHEDULES, f"one of {SCHEDULES}"),
    "output": (lambda v: isinstance(v, str) and v.strip() != "", "a local folder or s3:// URI"),
}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first key whose value is not allowed."""
    for key, (ok, allowed) in _RULES.items():
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
        try:
            good = ok(value)
        except TypeError:
            good = False
        if not good:
            raise ConfigError(f"{key}={value!r} is not allowed: use {allowed}.")

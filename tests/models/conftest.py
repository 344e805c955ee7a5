"""The repo's model configs, composed through the typed schema, and models built from them
with overrides per test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from inat.compose import compose
from inat.models import FineTuneModel, ScratchCNN


def load_model_config(name: str) -> DictConfig:
    """The model group of `inat train model=<name>`, composed and validated."""
    return compose([f"model={name}"]).model


def config_kwargs(name: str) -> dict[str, Any]:
    """The keyword arguments the config gives its model."""
    kwargs = OmegaConf.to_container(load_model_config(name))
    del kwargs["_target_"]
    return kwargs


@pytest.fixture
def model_config() -> Callable[[str], DictConfig]:
    """Load a model config by name."""
    return load_model_config


@pytest.fixture
def make_scratch() -> Callable[..., ScratchCNN]:
    """Build a ScratchCNN from scratch_cnn.yaml for 10 classes at 64 px, with overrides."""
    defaults = {**config_kwargs("scratch_cnn"), "num_classes": 10, "image_size": 64}
    return lambda **overrides: ScratchCNN(**{**defaults, **overrides})


@pytest.fixture
def make_finetune() -> Callable[..., FineTuneModel]:
    """Build a random-init FineTuneModel from finetune.yaml at 64 px, with overrides.

    The backbone is resnet18 unless overridden: the quickest to build.
    """
    defaults = {
        **config_kwargs("finetune"),
        "backbone": "resnet18",
        "weights": None,
        "num_classes": 10,
        "image_size": 64,
    }
    return lambda **overrides: FineTuneModel(**{**defaults, **overrides})

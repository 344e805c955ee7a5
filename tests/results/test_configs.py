"""A run's resolved config as `inat train` overrides: they compose back into that very config,
whatever groups it was composed from."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from inat.results.configs import LOCATION_KEYS, flatten, overrides_for


def _resolved(overrides: list[str]) -> dict:
    with initialize_config_module("inat.configs", version_base="1.3"):
        return OmegaConf.to_container(compose("train", overrides), resolve=True)


def _what(config: dict) -> dict:
    return {k: v for k, v in flatten(config).items() if k not in LOCATION_KEYS}


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["experiment=original_scratch", "data.source=s3://bucket/nature_12K.zip"],
        ["experiment=original_finetune", "logger=wandb", "model.strategy=last_k"],
        ["model=finetune", "optimizer=adamw", "+trainer.note='a b'", "model.weights=null"],
    ],
)
def test_the_overrides_of_a_config_compose_back_into_it(overrides):
    config = _resolved([*overrides, "output=/elsewhere", "name=run"])
    derived = overrides_for(config)
    assert not any(o.lstrip("+~").split("=")[0] in LOCATION_KEYS for o in derived)
    assert _what(_resolved(derived)) == _what(config)


def test_a_config_with_other_groups_adds_and_deletes_keys():
    derived = overrides_for(_resolved(["model=finetune"]))
    assert "~model.filters" in derived and "+model.backbone=resnet50" in derived
    assert "model._target_=inat.models.FineTuneModel" in derived

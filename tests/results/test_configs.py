"""A run's resolved config as `inat train` overrides: they compose back into that very config,
whatever groups it was composed from."""

from __future__ import annotations

import shutil

import pytest
from hydra import compose, initialize_config_dir, initialize_config_module
from omegaconf import OmegaConf

from inat.compose import validate
from inat.results.configs import (
    CONFIG_DIR,
    LOCATION_KEYS,
    config_file,
    group_options,
    overrides_for,
)
from inat.rundir import flatten


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
        ["logger=[mlflow,csv]", "logger.mlflow.experiment=mine"],
        ["model=finetune", "optimizer=adamw", "data.source='/data/my photos.zip'"],
        ["scheduler=onecycle", "optimizer=sgd", "model.weights=null", "model=finetune"],
    ],
)
def test_the_overrides_of_a_config_compose_back_into_it(overrides):
    config = _resolved([*overrides, "output=/elsewhere", "name=run"])
    derived = overrides_for(config)
    assert not any(o.lstrip("+~").split("=")[0] in LOCATION_KEYS for o in derived)
    assert _what(_resolved(derived)) == _what(config)


def test_a_config_with_other_groups_names_them():
    derived = overrides_for(_resolved(["model=finetune", "model.dropout=0.5", "logger=wandb"]))
    assert derived == ["model=finetune", "logger=wandb", "model.dropout=0.5"]


def test_an_older_run_with_the_flat_wandb_section_logged_to_wandb():
    config = _resolved(["logger=wandb", "logger.wandb.project=p", "name=run"])
    config["logger"] = config["logger"]["wandb"]  # logger: {project: p, entity: null, ...}
    assert group_options(config)["logger"] == "wandb"
    assert overrides_for(config) == ["logger=wandb", "logger.wandb.project=p"]


def test_the_config_file_composes_back_into_the_config(tmp_path):
    config = _resolved(["experiment=original_finetune", "optimizer=adamw", "name=run"])
    # Beside inat's own configs, as `inat train --config-dir DIR --config-name best` sees it.
    folder = shutil.copytree(CONFIG_DIR, tmp_path / "configs")
    (folder / "best.yaml").write_text(config_file(config, "run-best", "the best point"))
    with initialize_config_dir(str(folder), version_base="1.3"):
        cfg = compose("best")
    validate(cfg)
    assert OmegaConf.get_type(cfg.optimizer).__name__ == "AdamConfig"
    assert _what(OmegaConf.to_container(cfg, resolve=True)) == _what(config)

"""A run's resolved config (its config.yaml) as something `inat train` accepts again:
Hydra overrides of the default config, or a complete config file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import yaml
from omegaconf import OmegaConf

from inat.compose import CONFIG_DIR, compose
from inat.rundir import flatten
from inat.schema import TRACKERS, WandbConfig
from inat.sweeps.jobs import override_value

# Keys that say where a run reads and writes, not what it trains: not part of what a
# point is, so left out of point names and of the overrides that reproduce a run.
LOCATION_KEYS = frozenset({"output", "name", "run_dir", "data.cache_dir"})
# The key whose value tells which option of a group a resolved config was composed from.
_IDENTITY = {"model": "_target_", "optimizer": "_target_", "scheduler": "name"}
# The keys of a logger section written before logger= took several trackers: W&B's, flat.
_FLAT_WANDB_KEYS = frozenset(f.name for f in dataclasses.fields(WandbConfig))


def default_config() -> dict[str, Any]:
    """`inat train`'s config with no overrides, resolved."""
    return OmegaConf.to_container(compose(), resolve=True)


def upgraded(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """`config` with its logger section in today's shape: an older run directory's
    config.yaml has W&B's keys flat in it (logger: {project: ..., entity: ...}), which
    are now those of logger.wandb."""
    logger = config.get("logger") or {}
    if not _FLAT_WANDB_KEYS & set(logger):
        return config
    return {**config, "logger": {"wandb": dict(logger)}}


def group_options(config: Mapping[str, Any]) -> dict[str, str | None]:
    """The option of each group that holds classes (model, optimizer, scheduler, logger)
    that a resolved `config` was composed from; a group none of whose options fits is left
    out. None: the group is not used (logger=null)."""
    config = upgraded(config)
    options: dict[str, str | None] = {}
    for group, key in _IDENTITY.items():
        value = (config.get(group) or {}).get(key)
        for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
            if OmegaConf.load(path).get(key) == value:
                options[group] = path.stem
                break
    options["logger"] = _trackers(config.get("logger") or {})
    return options


def _trackers(logger: Mapping[str, Any]) -> str | None:
    """The logger choice of a resolved config's `logger` section: wandb, [wandb,mlflow] or
    None for none."""
    chosen = [name for name in TRACKERS if logger.get(name) is not None]
    if len(chosen) > 1:
        return f"[{','.join(chosen)}]"
    return chosen[0] if chosen else None


def overrides_for(config: Mapping[str, Any]) -> list[str]:
    """Hydra overrides that turn `inat train`'s default config into `config`, locations aside.

    The groups `config` was composed from come first (model=finetune, ...), then the keys
    whose values differ; a key no schema has is added (+key=...), which the config's
    validation then refuses by name.
    """
    config = upgraded(config)
    default = default_config()
    choices = [
        f"{group}={option or 'null'}"
        for group, option in group_options(config).items()
        if group_options(default).get(group) != option
    ]
    base = OmegaConf.to_container(compose(choices), resolve=True) if choices else default
    want = {k: v for k, v in flatten(config).items() if k not in LOCATION_KEYS}
    have = {k: v for k, v in flatten(base).items() if k not in LOCATION_KEYS}
    changed = [
        f"{key}={override_value(value)}"
        for key, value in want.items()
        if key in have and have[key] != value
    ]
    added = [f"+{key}={override_value(value)}" for key, value in want.items() if key not in have]
    return [*choices, *changed, *added]


def config_file(config: Mapping[str, Any], name: str, header: str) -> str:
    """A primary config file for `inat train --config-dir DIR --config-name FILE_STEM`.

    It holds the whole resolved `config` under a new run `name`, so a retrain writes to
    `${output}/<name>` instead of the original run directory; `header` is its comment.
    Its defaults list types it with the schemas of the groups it was composed from.
    """
    config = upgraded(config)
    schemas = [
        f"/schema/{group}/{_schema_of(group, option)}@{group}"
        for group, option in group_options(config).items()
        if option is not None and group != "logger"  # typed by the train schema itself
    ]
    document = {
        "defaults": [
            {"hydra": "default"},
            "/schema/train@_here_",
            "/schema/data/nature12k@data",
            "/schema/trainer/default@trainer",
            "/schema/storage/default@storage",
            *schemas,
            "_self_",
        ],
        **config,
        "name": name,
        "run_dir": "${output}/${name}",
    }
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + yaml.safe_dump(document, sort_keys=False)


def _schema_of(group: str, option: str) -> str:
    """The schema an option's YAML file extends (`/schema/optimizer/adam@_here_` -> adam)."""
    first = OmegaConf.load(CONFIG_DIR / group / f"{option}.yaml").defaults[0]
    return str(first).split("@")[0].rpartition("/")[2]

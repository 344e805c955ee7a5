"""A run's resolved config (its config.yaml) as something `inat train` accepts again:
Hydra overrides of the default config, or a complete config file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from omegaconf import OmegaConf

from inat.compose import compose
from inat.sweeps.jobs import override_value

# Keys that say where a run reads and writes, not what it trains: not part of what a
# point is, so left out of point names and of the overrides that reproduce a run.
LOCATION_KEYS = frozenset({"output", "name", "run_dir", "data.cache_dir"})


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values (lists and empty mappings are leaves), in document order."""
    leaves: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            leaves.update(flatten(value, f"{dotted}."))
        else:
            leaves[dotted] = value
    return leaves


def default_config() -> dict[str, Any]:
    """`inat train`'s config with no overrides, resolved."""
    return OmegaConf.to_container(compose(), resolve=True)


def overrides_for(config: Mapping[str, Any]) -> list[str]:
    """Hydra overrides that turn `inat train`'s default config into `config`, locations aside.

    Keys the default lacks are added (+key=...), keys `config` lacks are deleted (~key),
    so the list holds whatever groups the run was composed from.
    """
    want = {k: v for k, v in flatten(config).items() if k not in LOCATION_KEYS}
    have = {k: v for k, v in flatten(default_config()).items() if k not in LOCATION_KEYS}
    deleted = [f"~{key}" for key in have if key not in want]
    changed = [
        f"{key}={override_value(value)}"
        for key, value in want.items()
        if key in have and have[key] != value
    ]
    added = [f"+{key}={override_value(value)}" for key, value in want.items() if key not in have]
    return [*deleted, *changed, *added]


def config_file(config: Mapping[str, Any], name: str, header: str) -> str:
    """A primary config file for `inat train --config-dir DIR --config-name FILE_STEM`.

    It holds the whole resolved `config` under a new run `name`, so a retrain writes to
    `${output}/<name>` instead of the original run directory; `header` is its comment.
    """
    document = {
        "defaults": [{"hydra": "default"}, "_self_"],
        **config,
        "name": name,
        "run_dir": "${output}/${name}",
    }
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + yaml.safe_dump(document, sort_keys=False)

"""The settings of object storage, the `storage` config group, passed to `open_storage`.

    settings = storage_settings(cfg.storage)               # checked by the schema
    run = open_storage("s3://bucket/runs/exp1", settings)

No settings (None) are the defaults, which defer to boto3's own chain (AWS_* variables,
the AWS config files) wherever a default is null: what `inat results`, `evaluate` and
`predict` use, having no config. The keys, defaults and allowed values are the schema's
(`inat.schema.S3Settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from inat.schema import S3Settings


def storage_settings(storage: Mapping[str, Any] | None) -> S3Settings:
    """The S3Settings of a `storage` group (cfg.storage or a plain mapping); None: defaults."""
    if storage is None:
        return S3Settings()
    if isinstance(storage, DictConfig):
        storage = OmegaConf.to_container(storage, resolve=True)
    return S3Settings(**storage)

"""One storage layer for data, checkpoints and results: local paths and s3:// URIs.

    settings = storage_settings(cfg.storage)                     # the storage config group
    storage = open_storage("s3://bucket/runs/exp1", settings)   # or a local path
    storage.write_json("result.json", {...})

No other module talks to boto3 directly.
"""

from __future__ import annotations

from inat.storage.base import Storage
from inat.storage.local import LocalStorage, atomic_folder, atomic_write
from inat.storage.settings import S3Settings, storage_settings


def is_s3(uri: str) -> bool:
    """Whether `uri` names an S3 location."""
    return str(uri).startswith("s3://")


def open_storage(uri: str, settings: S3Settings | None = None) -> Storage:
    """The storage for a local path or an s3://bucket/prefix URI.

    `settings` configure S3 (the `storage` config group); None: the defaults, which defer
    to the environment.
    """
    if is_s3(uri):
        from inat.storage.s3 import S3Storage

        return S3Storage(uri, settings)
    return LocalStorage(uri)


__all__ = [
    "LocalStorage",
    "S3Settings",
    "Storage",
    "atomic_folder",
    "atomic_write",
    "is_s3",
    "open_storage",
    "storage_settings",
]

"""One storage layer for data, checkpoints and results: local paths and s3:// URIs.

    configure(cfg.storage)                             # once, at start
    storage = open_storage("s3://bucket/runs/exp1")   # or a local path
    storage.write_json("result.json", {...})

No other module talks to boto3 directly.
"""

from __future__ import annotations

from inat.storage.base import Storage
from inat.storage.local import LocalStorage, atomic_write
from inat.storage.settings import configure


def is_s3(uri: str) -> bool:
    """Whether `uri` names an S3 location."""
    return str(uri).startswith("s3://")


def open_storage(uri: str) -> Storage:
    """The storage for a local path or an s3://bucket/prefix URI."""
    if is_s3(uri):
        from inat.storage.s3 import S3Storage

        return S3Storage(uri)
    return LocalStorage(uri)


__all__ = ["LocalStorage", "Storage", "atomic_write", "configure", "is_s3", "open_storage"]

"""The iNaturalist-12K data: sources, local cache, splits, transforms and DataLoaders.

root = resolve_source("nature_12K.zip")      # a folder holding train/ and val/
loaders = build_dataloaders(cfg.data, seed)  # train / val (held out of train/) / test (val/)
"""

from inat.data.loaders import DataLoaders, build_dataloaders
from inat.data.sources import DEFAULT_URL, check_source, download_command, resolve_source
from inat.data.synthetic import CLASS_NAMES

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_URL",
    "DataLoaders",
    "build_dataloaders",
    "check_source",
    "download_command",
    "resolve_source",
]

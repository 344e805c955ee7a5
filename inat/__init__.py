"""inat: train image classifiers on iNaturalist-12K as batch jobs on real clusters."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("inat")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

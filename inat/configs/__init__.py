"""Hydra configs of inat, installed with the package (hydra finds them as `inat.configs`)."""

"""Hydra configs of inat, installed with the package (hydra finds them as `inat.configs`).

Importing the package registers the schemas the YAML files extend (inat/schema.py).
"""

from inat import schema as _schema  # noqa: F401

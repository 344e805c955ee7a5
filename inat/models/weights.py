"""What `model.weights` names: pretrained weights by name, a state-dict file or an s3:// URI."""

from __future__ import annotations

from pathlib import Path

from inat.errors import ConfigError
from inat.models.backbones import find_backbone
from inat.models.state_dicts import StateDict, read_state_dict
from inat.storage import S3Settings, is_s3


def read_weights(backbone: str, weights: str, settings: S3Settings | None = None) -> StateDict:
    """The ImageNet state dict (its head included) that model.weights=`weights` names for
    model.backbone=`backbone`.

    `weights` is a name of the backbone's pretrained weights (torchvision's DEFAULT,
    IMAGENET1K_V1, ...; timm's DEFAULT or pretrained), downloaded unless cached (torchvision:
    into $TORCH_HOME, timm: the Hugging Face cache), or a local file or s3:// URI of a state
    dict (see inat.models.state_dicts), read with the storage `settings`.
    """
    spec = find_backbone(backbone)
    if is_s3(weights):
        return read_state_dict(weights, settings)
    names = spec.weights_names()
    if weights in names:
        return spec.hub_state(weights)
    if Path(weights).expanduser().is_file():
        return read_state_dict(weights, settings)
    raise ConfigError(
        f"model.weights={weights!r} is neither a {spec.library} weights name of {backbone} "
        f"({', '.join(names)}) nor an existing file; pass a name, a state-dict file "
        "or an s3:// URI, or null for random initialisation"
    )

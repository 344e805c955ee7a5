"""`inat weights download NAME DEST`: pretrained ImageNet weights fetched once, where there is
internet, into a file that model.weights then reads on any machine.

NAME is what model.backbone takes: torchvision's DEFAULT weights of its models, timm's
pretrained weights of any other (its tag's, or its default tag's). A torchvision model may
name other weights after a dot: resnet50.IMAGENET1K_V1, torchvision/vgg11.IMAGENET1K_V1.
DEST is a local file or an s3:// URI; `.safetensors` at its end writes safetensors, any
other name torch.save's format. Its checksum record DEST.sha256 is written beside it (see
inat.models.state_dicts).
"""

from __future__ import annotations

from dataclasses import dataclass

from inat.models.backbones import BACKBONES, TORCHVISION_PREFIX, Backbone, find_backbone
from inat.models.state_dicts import RECORD_SUFFIX, write_state_dict
from inat.storage import S3Settings


@dataclass(frozen=True)
class Downloaded:
    """What `inat weights download` wrote."""

    dest: str
    sha256: str
    backbone: str  # the model.backbone the weights are for


def download_weights(name: str, dest: str, settings: S3Settings | None = None) -> Downloaded:
    """Download the pretrained weights `name` names (see the module's docstring) and write
    their state dict to `dest` with its sha256 record, using the storage `settings`."""
    spec, weights = _resolve(name)
    state = spec.hub_state(weights)
    return Downloaded(dest, write_state_dict(state, dest, settings), spec.name)


def _resolve(name: str) -> tuple[Backbone, str]:
    """The backbone and the name of its weights that NAME names."""
    architecture, _, tag = name.partition(".")
    torchvision = (
        find_backbone(architecture)
        if architecture.startswith(TORCHVISION_PREFIX)
        else BACKBONES.get(architecture)
    )
    if torchvision is not None and tag in torchvision.weights_names():
        return torchvision, tag
    spec = find_backbone(name)
    return spec, "DEFAULT"


def report(downloaded: Downloaded) -> str:
    """What was written, and how a run uses it."""
    return (
        f"wrote {downloaded.dest} (sha256 {downloaded.sha256}) and its checksum record "
        f"{downloaded.dest}{RECORD_SUFFIX}\n"
        f"train with: model=finetune model.backbone={downloaded.backbone} "
        f"model.weights={downloaded.dest}"
    )

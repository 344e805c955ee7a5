"""The torchvision architectures FineTuneModel can use, and what a "stage" is in each.

Adding an architecture is one `Backbone` entry in `BACKBONES`: its torchvision
name, where its ImageNet classifier sits, and its stages, shallow to deep.
`last_k` unfreezes the last k stages; the stem before the first stage is
trained only by the `full` strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from inat import schema
from inat.models.weights import StateDict


@dataclass(frozen=True)
class Backbone:
    """How one torchvision architecture is built, beheaded and split into stages."""

    name: str
    head: str  # the module holding the ImageNet classifier, replaced by the new head
    stages: Callable[[nn.Module], list[list[nn.Module]]]  # shallow to deep; the unit of last_k
    patch_size: int | None = None  # ViTs: image_size must be a multiple of it (the schema checks)

    def build(self, image_size: int) -> nn.Module:
        """The ImageNet architecture, randomly initialised, for images of this side."""
        # A ViT is built for the image size; pretrained position embeddings are
        # resized to it by `adapt_state_dict`. CNNs take any size.
        from torchvision.models import get_model  # seconds to import: only when fine-tuning

        kwargs = {"image_size": image_size} if self.patch_size else {}
        return get_model(self.name, weights=None, **kwargs)

    def adapt_state_dict(self, state: StateDict, image_size: int) -> StateDict:
        """`state` made loadable into `build(image_size)`: ViT position embeddings resized."""
        if self.patch_size and "encoder.pos_embedding" in state:
            from torchvision.models.vision_transformer import interpolate_embeddings

            return interpolate_embeddings(image_size, self.patch_size, state)
        return state

    def remove_head(self, model: nn.Module) -> int:
        """Replace the ImageNet classifier by an identity; return its input width."""
        classifier = model.get_submodule(self.head)
        in_features = next(m for m in classifier.modules() if isinstance(m, nn.Linear)).in_features
        parent, _, child = self.head.rpartition(".")
        setattr(model.get_submodule(parent), child, nn.Identity())
        return in_features


def _resnet_stages(model: nn.Module) -> list[list[nn.Module]]:
    return [[model.layer1], [model.layer2], [model.layer3], [model.layer4]]


def _efficientnet_stages(model: nn.Module) -> list[list[nn.Module]]:
    # features[0] is the stem; the last entry is the final 1x1 convolution.
    return [[block] for block in model.features[1:]]


def _vit_stages(model: nn.Module) -> list[list[nn.Module]]:
    # One encoder block per stage; the final LayerNorm belongs with the last block.
    stages = [[layer] for layer in model.encoder.layers]
    stages[-1].append(model.encoder.ln)
    return stages


def _convnext_stages(model: nn.Module) -> list[list[nn.Module]]:
    # features: stem, stage, then 3 x (downsample, stage); the LayerNorm before
    # the classifier belongs with the last stage.
    f = model.features
    return [[f[1]], [f[2], f[3]], [f[4], f[5]], [f[6], f[7], model.classifier[0]]]


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("resnet18", "fc", _resnet_stages),
        Backbone("resnet50", "fc", _resnet_stages),
        Backbone("efficientnet_b0", "classifier", _efficientnet_stages),
        Backbone("efficientnet_v2_s", "classifier", _efficientnet_stages),
        Backbone("convnext_tiny", "classifier.2", _convnext_stages),
        Backbone("vit_b_16", "heads", _vit_stages, patch_size=16),
    )
}
assert tuple(BACKBONES) == schema.BACKBONES, "the schema's choices and the backbones differ"
assert {b.name: b.patch_size for b in BACKBONES.values() if b.patch_size} == schema.PATCH_SIZES

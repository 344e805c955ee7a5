"""A torchvision backbone with a new classification head, trained in part or in full."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from inat.errors import ConfigError
from inat.models.backbones import BACKBONES
from inat.models.params import ParamGroup, trainable_groups
from inat.models.weights import load_weights, read_weights
from inat.storage import S3Settings


class FineTuneModel(nn.Module):
    """An ImageNet backbone from torchvision whose classifier is replaced by dropout -> linear.

    Strategies: `head` trains the new head only; `last_k` also the backbone's last
    `last_k` stages (see `inat.models.backbones`); `full` everything. Trained
    backbone parameters get their own param group at `backbone_lr_scale`.

    `weights`: a torchvision weights name (DEFAULT, IMAGENET1K_V2, ...), a local
    file or s3:// URI of the ImageNet model's state dict, or None for random
    initialisation, read with the storage `settings`. The values come checked from the
    config's schema (`inat.schema.FineTuneConfig`); `last_k` is checked against the
    backbone's stages before any weights are read.
    """

    def __init__(
        self,
        *,
        backbone: str,
        strategy: str,
        last_k: int,
        weights: str | None,
        backbone_lr_scale: float,
        dropout: float,
        num_classes: int,
        image_size: int,
        settings: S3Settings | None = None,
    ) -> None:
        super().__init__()
        spec = BACKBONES[backbone]
        self.backbone_lr_scale = float(backbone_lr_scale)

        net = spec.build(image_size)
        stages = spec.stages(net)
        # The one value checked here, not by the schema: the stage count is the network's.
        if strategy == "last_k" and last_k > len(stages):
            raise ConfigError(
                f"model.last_k={last_k!r} is not allowed; {backbone} has {len(stages)} stages, "
                f"choose 1 to {len(stages)} (or model.strategy=full)"
            )
        if weights is not None:
            state = read_weights(backbone, str(weights), settings)
            load_weights(net, spec.adapt_state_dict(state, image_size), str(weights), backbone)
        in_features = spec.remove_head(net)

        if strategy != "full":
            net.requires_grad_(False)
        if strategy == "last_k":
            for stage in stages[-last_k:]:
                for module in stage:
                    module.requires_grad_(True)
        self.backbone = net
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of images (N, 3, image_size, image_size)."""
        return self.head(self.backbone(x))

    def train(self, mode: bool = True) -> FineTuneModel:
        """Set training mode, keeping frozen BatchNorm layers in eval mode.

        A frozen BatchNorm in training mode would still normalise with the
        statistics of each batch and overwrite its ImageNet running statistics,
        so the frozen features would drift under the trained layers; in eval
        mode it is the fixed function the pretrained network computed.
        """
        super().train(mode)
        if mode:
            # Only BatchNorms with parameters can be told frozen; torchvision's all have them.
            for module in self.backbone.modules():
                if (
                    isinstance(module, _BatchNorm)
                    and module.affine
                    and not module.weight.requires_grad
                ):
                    module.eval()
        return self

    def param_groups(self) -> list[ParamGroup]:
        """The head at the base lr; the trained backbone parameters at `backbone_lr_scale`."""
        return trainable_groups(
            ("head", self.head, 1.0), ("backbone", self.backbone, self.backbone_lr_scale)
        )

"""An ImageNet backbone (torchvision's or timm's) with a new head, trained in part or in full."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from inat.errors import ConfigError
from inat.models.backbones import find_backbone
from inat.models.params import ParamGroup
from inat.models.stages import Part, UnfreezeSchedule, backbone_parts
from inat.models.weights import read_weights
from inat.storage import S3Settings


class FineTuneModel(nn.Module):
    """An ImageNet backbone whose classifier is replaced by dropout -> linear.

    `backbone`: a torchvision or timm model name (see inat.models.backbones). Strategies:
    `head` trains the new head only; `last_k` also the backbone's last `last_k` stages;
    `full` everything. The trained backbone parameters learn at `backbone_lr_scale` times the
    head's rate, stage by stage `layer_decay` times less towards the stem where it is given
    (see inat.models.stages).

    `unfreeze_schedule` ({head_epochs, every}; off if None or head_epochs is None)
    unfreezes what the strategy trains gradually: `set_epoch(epoch)` before each epoch sets
    what trains in it. Until then every parameter the strategy trains is trainable, and
    `param_groups()` always holds them all.

    `weights`: a name of the backbone's pretrained weights (torchvision: DEFAULT,
    IMAGENET1K_V2, ...; timm: DEFAULT, pretrained), a local file or s3:// URI of the ImageNet
    model's state dict, or None for random initialisation, read with the storage
    `settings`. The values come checked from the config's schema
    (`inat.schema.FineTuneConfig`); what only the network knows (its stages, its patch
    size) is checked here.
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
        layer_decay: float | None = None,
        unfreeze_schedule: Mapping[str, int | None] | None = None,
        settings: S3Settings | None = None,
    ) -> None:
        super().__init__()
        spec = find_backbone(backbone)
        self.backbone_lr_scale = float(backbone_lr_scale)
        self.layer_decay = layer_decay
        unfreeze = unfreeze_schedule or {}
        self.schedule = (
            None
            if unfreeze.get("head_epochs") is None
            else UnfreezeSchedule(unfreeze["head_epochs"], unfreeze["every"])
        )

        weights = None if weights is None else str(weights)
        state = None if weights is None else read_weights(backbone, weights, settings)
        net = spec.create(image_size, state, weights)
        del state  # loaded: its memory is free for what follows
        by_stage = strategy != "head" and (
            strategy == "last_k" or layer_decay is not None or self.schedule is not None
        )
        stages = spec.stages(net) if by_stage else []
        if strategy == "last_k" and last_k > len(stages):
            raise ConfigError(
                f"model.last_k={last_k!r} is not allowed; {backbone} has {len(stages)} stages, "
                f"choose 1 to {len(stages)} (or model.strategy=full)"
            )
        in_features = spec.remove_head(net)
        self.backbone = net
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))

        names = {id(p): f"backbone.{name}" for name, p in net.named_parameters()}
        # Named, not held: the names stay right when the parameters are moved or copied.
        staged = [tuple(names[id(p)] for p in stage if id(p) in names) for stage in stages]
        in_stages = {name for stage in staged for name in stage}
        stem = tuple(name for name in names.values() if name not in in_stages)
        if by_stage:
            self.parts = backbone_parts(
                staged,
                stem,
                strategy=strategy,
                last_k=last_k,
                backbone_lr_scale=self.backbone_lr_scale,
                layer_decay=layer_decay,
            )
        elif strategy == "full":  # trained as one: all of it, from the first epoch
            self.parts = [Part("backbone", tuple(names.values()), self.backbone_lr_scale)]
        else:
            self.parts = []
        net.requires_grad_(False)
        for param in self._params(len(self.parts)):
            param.requires_grad_(True)

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
            # Only affine BatchNorms can be told frozen: torchvision's all are, timm's nearly.
            for module in self.backbone.modules():
                if (
                    isinstance(module, _BatchNorm)
                    and module.affine
                    and not module.weight.requires_grad
                ):
                    module.eval()
        return self

    def param_groups(self) -> list[ParamGroup]:
        """The head at the base lr; every backbone parameter the strategy trains, in any epoch
        of the unfreeze schedule: at `backbone_lr_scale` in one group named backbone, or with
        layer_decay one group per stage (stageN ... stage1, stem) at its own scale."""
        groups = [ParamGroup(params=list(self.head.parameters()), lr_scale=1.0, name="head")]
        named = dict(self.named_parameters())
        if self.layer_decay is None:
            trained = {name for part in self.parts for name in part.params}
            params = [
                p
                for name, p in self.backbone.named_parameters(prefix="backbone")
                if name in trained
            ]
            if params:
                groups.append(
                    ParamGroup(params=params, lr_scale=self.backbone_lr_scale, name="backbone")
                )
            return groups
        for part in self.parts:
            params = [named[name] for name in part.params]
            groups.append(ParamGroup(params=params, lr_scale=part.lr_scale, name=part.name))
        return groups

    def set_epoch(self, epoch: int) -> bool:
        """Make trainable what the unfreeze schedule trains in the 0-based `epoch`, and freeze
        the rest; return whether that changed which parameters are trainable (a DDP wrapper
        must then be rebuilt). Without a schedule: what the strategy trains, in every epoch.
        Frozen BatchNorms go to eval mode, unfrozen ones back to training (see `train`)."""
        unfrozen = self._unfrozen(epoch)
        wanted = {id(p) for p in self._params(unfrozen)}
        changed = False
        for param in self._params(len(self.parts)):
            trainable = id(param) in wanted
            changed |= param.requires_grad != trainable
            param.requires_grad_(trainable)
        self.train(self.training)
        return changed

    def trainable_parameters(self, epoch: int) -> int:
        """The number of parameter elements trained in the 0-based `epoch` (see set_epoch)."""
        head = sum(p.numel() for p in self.head.parameters())
        return head + sum(p.numel() for p in self._params(self._unfrozen(epoch)))

    def _unfrozen(self, epoch: int) -> int:
        """How many parts (deepest first) train in `epoch`."""
        if self.schedule is None:
            return len(self.parts)
        return self.schedule.unfrozen(epoch, len(self.parts))

    def _params(self, parts: int) -> list[nn.Parameter]:
        """The parameters of the first `parts` parts."""
        named = dict(self.named_parameters())
        return [named[name] for part in self.parts[:parts] for name in part.params]

"""The image classifiers inat trains, built from `configs/model/*.yaml`.

model = build_model(cfg.model, num_classes=10, image_size=cfg.data.image_size)
optimizer = AdamW([{**g, "lr": lr * g["lr_scale"]} for g in model.param_groups()])
model.set_epoch(epoch)  # a FineTuneModel, before each epoch: what its unfreeze schedule trains
"""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from inat.errors import ConfigError, InatError
from inat.models.finetune import FineTuneModel
from inat.models.params import ParamGroup, count_parameters
from inat.models.scratch import ScratchCNN
from inat.storage import S3Settings


def build_model(
    cfg: DictConfig, num_classes: int, image_size: int, settings: S3Settings | None = None
) -> nn.Module:
    """The model of the `model` config group (its `_target_`).

    A model that reads weights (`model.weights`) gets the storage `settings` for them.
    A bad value raises the model's own ConfigError, not Hydra's wrapper around it.
    """
    reads_weights = {"settings": settings} if "weights" in cfg else {}
    try:
        # A partial, called here: instantiate would turn the settings into a DictConfig.
        build = instantiate(cfg, _partial_=True)
        return build(num_classes=num_classes, image_size=image_size, **reads_weights)
    except InstantiationException as e:
        if isinstance(e.__cause__, InatError):
            raise e.__cause__ from None
        raise ConfigError(f"model: {e}") from e


__all__ = ["FineTuneModel", "ParamGroup", "ScratchCNN", "build_model", "count_parameters"]

"""Head-only fine-tuning on cached features: the frozen backbone runs once, not every epoch.

With model.strategy=head and no augmentation, every epoch feeds the same images through
the same frozen backbone; only the head learns. Its outputs are computed once (in eval
mode, as FineTuneModel keeps its frozen BatchNorms) and the head trains on them, in the
same order, with the same batches: the same result, at the cost of about one epoch of
the backbone instead of one per epoch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from inat.data import DataLoaders
from inat.data.batch_transform import unchanged
from inat.errors import ConfigError
from inat.models import FineTuneModel
from inat.schema import augmentation
from inat.train.checkpoint import rng_state, set_rng_state

log = logging.getLogger(__name__)


def use_cached_features(
    setting: str | bool, model: nn.Module, augment: str | bool, mixing: bool
) -> bool:
    """Whether trainer.cache_features (`auto`, true or false) applies to this run.

    auto: when it gives the same result, a FineTuneModel whose backbone is frozen
    (strategy=head) trained on fixed inputs: without augmentation (data.augment `augment`
    none, which rules out random erasing too) and without `mixing` (mixup or CutMix mix
    images, not features). true: the same, or a ConfigError saying why not.
    """
    applies = (
        isinstance(model, FineTuneModel)
        and not any(p.requires_grad for p in model.backbone.parameters())
        and augmentation(augment) == "none"
        and not mixing
    )
    if setting is True and not applies:
        raise ConfigError(
            "trainer.cache_features=true needs a frozen backbone and fixed inputs: "
            "model=finetune with model.strategy=head, data.augment=none, and "
            "trainer.mixup_alpha=0 and trainer.cutmix_alpha=0. "
            "Set trainer.cache_features=auto to use it only where it applies."
        )
    return applies if setting == "auto" else bool(setting)


@torch.no_grad()
def _features(
    backbone: nn.Module,
    loader: DataLoader,
    transform: Callable[[torch.Tensor], torch.Tensor],
    accelerator: Accelerator,
) -> TensorDataset:
    """The backbone's outputs for `transform`ed batches of `loader`, and their labels, in order.

    Each process computes its share; every process gets all of them.
    """
    backbone.eval()
    outputs, labels = [], []
    for images, targets in accelerator.prepare(loader):
        with accelerator.autocast():
            out = backbone(transform(images)).float()
        out, targets = accelerator.gather_for_metrics((out, targets))
        outputs.append(out.cpu())
        labels.append(targets.cpu())
    return TensorDataset(torch.cat(outputs), torch.cat(labels))


def _in_order(loader: DataLoader) -> DataLoader:
    """A loader of the same data and batches that does not shuffle."""
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        shuffle=False,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
    )


def feature_loaders(
    model: FineTuneModel, data: DataLoaders, accelerator: Accelerator, seed: int
) -> DataLoaders:
    """Loaders of `model.backbone`'s outputs for the images of `data`, for training the head.

    The training loader shuffles like `data.train` (same length, seed and batch size),
    so Accelerate's seedable sampler gives the head the samples in the same order.
    """
    start = time.perf_counter()
    # Loading draws worker seeds from the global generators: restore them afterwards, so
    # that dropout draws what it would have without the cache.
    generators = rng_state()
    backbone = model.backbone.to(accelerator.device)
    train = _features(backbone, _in_order(data.train), data.train_transform, accelerator)
    val, test = (
        _features(backbone, _in_order(loader), unchanged, accelerator)
        for loader in (data.val, data.test)
    )
    set_rng_state(generators)
    batch_size = data.train.batch_size
    log.info(
        "computed the frozen backbone's features of %d images once (%.1f s); "
        "training the head on them (trainer.cache_features)",
        len(train) + len(val) + len(test),
        time.perf_counter() - start,
    )
    return DataLoaders(
        train=DataLoader(
            train,
            batch_size=batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        ),
        # Own generators, as data.val's and data.test's: iterating draws no global random number.
        val=DataLoader(
            val,
            batch_size=batch_size,
            shuffle=False,
            generator=torch.Generator().manual_seed(seed),
        ),
        test=DataLoader(
            test,
            batch_size=batch_size,
            shuffle=False,
            generator=torch.Generator().manual_seed(seed),
        ),
        classes=data.classes,
        split=data.split,
        skipped=data.skipped,
        decode_failures=data.decode_failures,
    )

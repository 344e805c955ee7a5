"""The training, validation and test DataLoaders of a run, from the `data` config group."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from inat.data.batch_transform import BatchTransform, unchanged
from inat.data.cache import cache_folder
from inat.data.datasets import (
    DecodeFailures,
    ImageFolderDataset,
    build_transform,
    find_unreadable,
)
from inat.data.layout import (
    FLAT,
    SPLITS,
    Sample,
    class_folders,
    find_classes,
    has_splits,
    list_images,
    require_every_class,
)
from inat.data.prepared import prepare
from inat.data.shards import (
    PreparedImages,
    collate_channels_last,
    collate_normalized,
    read_index,
)
from inat.data.sources import resolve_source
from inat.data.split import require_splittable, stratified_split
from inat.data.workers import resolve_workers
from inat.errors import ConfigError, DataError
from inat.storage import S3Settings

log = logging.getLogger(__name__)


@dataclass
class DataLoaders:
    """The loaders of a run and the classes their labels index.

    val and test yield model input: normalized float images. train yields what
    `train_transform` turns into model input once the batch is on the training device:
    with the prepared pipeline, uint8 images that it normalizes and augments there.
    """

    train: DataLoader  # shuffled
    val: DataLoader  # held out from train/, not shuffled
    test: DataLoader  # the data set's val/ folder, not shuffled
    classes: list[str]
    # How the images were split: the layout, fractions, seed and counts (result.json).
    split: dict[str, Any]
    # Files left out because they are not readable images, relative to the data set root
    # ("train/Aves/x.jpg"), and those that failed to decode when prepared.
    skipped: list[str] = field(default_factory=list)
    train_transform: Callable[[torch.Tensor], torch.Tensor] = unchanged
    # Files that failed to decode while loading (the images pipeline), replaced and noted.
    decode_failures: DecodeFailures | None = None

    def skipped_images(self) -> list[str]:
        """Every file left out or replaced so far, for result.json's skipped_images."""
        noted = self.decode_failures.noted() if self.decode_failures else []
        return sorted({*self.skipped, *noted})


def _setting(cfg: Mapping[str, Any], key: str) -> Any:
    try:
        return cfg[key]
    except KeyError:
        raise ConfigError(
            f"data.{key} is missing from the config: add it (see configs/data/nature12k.yaml)."
        ) from None


def _readable_samples(
    root: Path, split: str, classes: Sequence[str], max_bad_fraction: float
) -> tuple[list[Sample], list[str]]:
    """The images of `root/split` that open, and those that do not (relative to `root`)."""
    folder = root / split
    samples = list_images(folder, classes, root=root)
    bad = {
        path.relative_to(folder).as_posix()
        for path in find_unreadable([folder / relpath for relpath, _ in samples])
    }
    if bad:
        share = len(bad) / len(samples)
        examples = ", ".join(sorted(bad)[:5])
        if share > max_bad_fraction:
            raise DataError(
                f"{len(bad)} of {len(samples)} files in {folder} ({share:.1%}) are not readable "
                f"images, more than data.max_bad_fraction={max_bad_fraction}; e.g. {examples}. "
                "Get an intact copy of the data set, or raise data.max_bad_fraction."
            )
        log.warning(
            "skipping %d of %d files in %s that are not readable images: %s",
            len(bad),
            len(samples),
            folder,
            examples,
        )
        samples = [sample for sample in samples if sample[0] not in bad]
    require_every_class(samples, classes, folder)
    return samples, [(Path(split) / relpath).as_posix() for relpath in sorted(bad)]


def build_dataloaders(
    cfg: Mapping[str, Any], seed: int, settings: S3Settings | None = None
) -> DataLoaders:
    """The loaders for the `data` config group `cfg` (keys as in configs/data/nature12k.yaml).

    The validation split depends on data.split_seed only; `seed` (the run's seed)
    drives the training order and augmentation of a loader used on its own; `settings`
    are the storage settings of an s3:// source.
    """
    source = _setting(cfg, "source")
    root = resolve_source(source, cfg.get("cache_dir"), cfg.get("synthetic"), settings)
    flat = not has_splits(root)
    classes = class_folders(root) if flat else find_classes(root)
    num_classes = _setting(cfg, "num_classes")
    if len(classes) != num_classes:
        raise DataError(
            f"{root if flat else root / 'train'} holds {len(classes)} classes "
            f"({', '.join(classes)}) but data.num_classes={num_classes}. Set "
            f"data.num_classes={len(classes)} or point data.source at the data set you meant."
        )
    max_bad_fraction, split_seed = _setting(cfg, "max_bad_fraction"), _setting(cfg, "split_seed")
    val_fraction = _setting(cfg, "val_fraction")
    split = {"layout": "class folders" if flat else "train/ and val/", "val_fraction": val_fraction}
    if flat:  # the test set is held out of the class folders like the validation set
        train_split = test_split = FLAT
        images, skipped = _readable_samples(root, FLAT, classes, max_bad_fraction)
        require_splittable(images, classes, root, flat=True)
        split["test_fraction"] = test_fraction = _setting(cfg, "test_fraction")
        train_all, test = stratified_split(images, test_fraction, split_seed)
        log.info(
            "%s has no train/ and val/: its class folders are split, per class, into test "
            "(data.test_fraction=%g), validation (data.val_fraction=%g of the rest) and "
            "training images, by data.split_seed=%d",
            root,
            test_fraction,
            val_fraction,
            split_seed,
        )
        # One split of the prepared data; the three sets are subsets of it.
        files = {FLAT: [path for path, _ in images]}
    else:
        train_split, test_split = SPLITS
        train_all, skipped_train = _readable_samples(root, train_split, classes, max_bad_fraction)
        test, skipped_test = _readable_samples(root, test_split, classes, max_bad_fraction)
        skipped = skipped_train + skipped_test
        require_splittable(train_all, classes, root / train_split)
        files = {
            train_split: [path for path, _ in train_all],
            test_split: [path for path, _ in test],
        }
    train, val = stratified_split(train_all, val_fraction, split_seed)
    log.info(
        "data set %s: %d classes; %d training, %d validation and %d test images",
        root,
        len(classes),
        len(train),
        len(val),
        len(test),
    )
    split |= {
        "split_seed": split_seed,
        "images": {"train": len(train), "validation": len(val), "test": len(test)},
    }

    image_size = _setting(cfg, "image_size")
    augment = _setting(cfg, "augment")
    options = {
        key: _setting(cfg, key)
        for key in ("randaugment_magnitude", "randaugment_ops", "random_erasing")
    }
    pipeline = _setting(cfg, "pipeline")
    train_transform: Callable[[torch.Tensor], torch.Tensor] = unchanged
    if pipeline == "prepared":
        cache = cache_folder(cfg.get("cache_dir"))
        folder = prepare(
            str(source), root, files, image_size, cache, cfg.get("prepared_dir"), settings
        )
        splits = read_index(folder)["splits"]
        failed = [
            (Path(name) / relpath).as_posix()
            for name in files
            for relpath in splits[name]["failed"]
        ]
        datasets: tuple[Dataset, ...] = (
            PreparedImages(folder, train_split, train),
            PreparedImages(folder, train_split, val),
            PreparedImages(folder, test_split, test),
        )
        collates = (collate_channels_last, collate_normalized, collate_normalized)
        train_transform = BatchTransform(augment, **options)
        failures = None
    else:  # images
        plain = build_transform(image_size, "none")
        augmented = build_transform(image_size, augment, **options)
        failed, failures = [], DecodeFailures()
        datasets = (
            ImageFolderDataset(root / train_split, train, augmented, failures),
            ImageFolderDataset(root / train_split, val, plain, failures),
            ImageFolderDataset(root / test_split, test, plain, failures),
        )
        collates = (None, None, None)
    workers = resolve_workers(_setting(cfg, "num_workers"))
    options: dict[str, Any] = {
        "batch_size": _setting(cfg, "batch_size"),
        "num_workers": workers,
        "pin_memory": torch.cuda.is_available(),
        "persistent_workers": workers > 0,
        "drop_last": False,
    }
    return DataLoaders(
        # A plain RandomSampler (shuffle=True): Accelerator.prepare(use_seedable_sampler=True)
        # replaces it with one that shuffles identically on every process.
        train=DataLoader(
            datasets[0],
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
            collate_fn=collates[0],
            **options,
        ),
        # Own generators for val and test too: an iterator draws its workers' seed from its
        # loader's generator, else from the global one, which resumes restore mid-stream.
        val=DataLoader(
            datasets[1],
            shuffle=False,
            generator=torch.Generator().manual_seed(seed),
            collate_fn=collates[1],
            **options,
        ),
        test=DataLoader(
            datasets[2],
            shuffle=False,
            generator=torch.Generator().manual_seed(seed),
            collate_fn=collates[2],
            **options,
        ),
        classes=classes,
        split=split,
        skipped=sorted({*skipped, *failed}),
        train_transform=train_transform,
        decode_failures=failures,
    )

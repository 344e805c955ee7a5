"""build_dataloaders: splits, loader options, bad files, config checks, accelerate."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.data_loader import SeedableRandomSampler
from accelerate.state import AcceleratorState
from accelerate.utils import DataLoaderConfiguration
from omegaconf import OmegaConf
from torch.utils.data import RandomSampler, SequentialSampler

from inat.data import CLASS_NAMES, DataLoaders, build_dataloaders
from inat.errors import ConfigError, DataError

from .trees import write_tree

SYNTHETIC = {"train_per_class": 20, "image_side": 32, "seed": 0}


@pytest.fixture
def synthetic_cfg(data_cfg):
    """A small synthetic data config through the per-image pipeline (tests/perf covers the
    prepared one); keyword arguments override keys."""
    return lambda **overrides: data_cfg(
        **{
            "source": "synthetic",
            "synthetic": SYNTHETIC,
            "image_size": 32,
            "batch_size": 16,
            "pipeline": "images",
            **overrides,
        }
    )


def _samples(loaders: DataLoaders) -> tuple[list, list, list]:
    return tuple(loader.dataset.samples for loader in (loaders.train, loaders.val, loaders.test))


def test_synthetic_loaders_split_train_and_test_on_val(synthetic_cfg) -> None:
    loaders = build_dataloaders(OmegaConf.create(synthetic_cfg()), seed=0)
    assert loaders.classes == list(CLASS_NAMES)
    assert loaders.skipped == []
    train, val, test = _samples(loaders)
    assert (len(train), len(val), len(test)) == (160, 40, 50)
    assert Counter(label for _, label in val) == dict.fromkeys(range(10), 4)
    assert not set(train) & set(val)
    root = loaders.train.dataset.folder.parent
    assert loaders.val.dataset.folder == root / "train"
    assert loaders.test.dataset.folder == root / "val"
    images, labels = next(iter(loaders.test))
    assert images.shape == (16, 3, 32, 32)
    assert labels.dtype == torch.int64


def test_loader_options(synthetic_cfg) -> None:
    loaders = build_dataloaders(synthetic_cfg(), seed=0)
    assert type(loaders.train.sampler) is RandomSampler
    assert type(loaders.val.sampler) is SequentialSampler
    assert type(loaders.test.sampler) is SequentialSampler
    for loader in (loaders.train, loaders.val, loaders.test):
        assert loader.batch_size == 16
        assert loader.drop_last is False
        assert loader.num_workers == 0
        assert loader.persistent_workers is False
        assert loader.pin_memory == torch.cuda.is_available()


def test_worker_processes_are_persistent_and_load_everything(synthetic_cfg) -> None:
    loaders = build_dataloaders(synthetic_cfg(num_workers=1), seed=0)
    assert loaders.val.persistent_workers is True
    assert sum(len(labels) for _, labels in loaders.val) == 40  # drop_last=False keeps the rest


def test_the_split_depends_on_split_seed_not_on_the_run_seed(synthetic_cfg) -> None:
    def val_of(cfg: dict, seed: int) -> list:
        return _samples(build_dataloaders(cfg, seed))[1]

    assert val_of(synthetic_cfg(), 1) == val_of(synthetic_cfg(), 2)
    assert val_of(synthetic_cfg(split_seed=1), 1) != val_of(synthetic_cfg(), 1)


def test_the_run_seed_fixes_the_training_order(synthetic_cfg) -> None:
    def first_labels(seed: int) -> list[int]:
        return next(iter(build_dataloaders(synthetic_cfg(), seed).train))[1].tolist()

    assert first_labels(1) == first_labels(1)
    assert first_labels(1) != first_labels(2)


def test_only_training_images_are_augmented(synthetic_cfg) -> None:
    loaders = build_dataloaders(synthetic_cfg(augment=True), seed=0)
    train, val = loaders.train.dataset, loaders.val.dataset
    assert not torch.equal(train[0][0], train[0][0])
    assert torch.equal(val[0][0], val[0][0])


def test_unreadable_files_are_skipped_and_listed(tmp_path: Path, data_cfg) -> None:
    root = write_tree(tmp_path / "set", {"train": {"A": 10, "B": 10}, "val": {"A": 2, "B": 2}})
    (root / "train/B/broken.png").write_bytes(b"")
    cfg = data_cfg(source=str(root), num_classes=2, max_bad_fraction=0.1)
    loaders = build_dataloaders(cfg, seed=0)
    assert loaders.skipped == ["train/B/broken.png"]
    train, val, _ = _samples(loaders)
    assert len(train) + len(val) == 20
    (root / "train/A/broken.jpg").write_text("<html>")
    with pytest.raises(DataError, match=r"2 of 22 files .* data\.max_bad_fraction=0\.05; e\.g\."):
        build_dataloaders({**cfg, "max_bad_fraction": 0.05}, seed=0)


def test_one_training_image_per_class_is_refused_before_anything_is_prepared(
    tmp_path: Path, data_cfg
) -> None:
    counts = {"train": {"A": 1, "B": 1, "C": 1}, "val": {"A": 1, "B": 1, "C": 1}}
    root = write_tree(tmp_path / "set", counts)
    with pytest.raises(DataError) as raised:
        build_dataloaders(data_cfg(source=str(root), num_classes=3), seed=0)
    message = str(raised.value)
    assert "A has 1 readable image, B has 1 readable image, C has 1 readable image" in message
    assert "each class needs at least 2" in message and "Add images to train/A/" in message
    assert not (tmp_path / "cache").exists()  # nothing prepared
    # Two images a class are enough: one for training, one for validation.
    write_tree(root, {"train": {"A": 2, "B": 2, "C": 2}})
    loaders = build_dataloaders(data_cfg(source=str(root), num_classes=3), seed=0)
    assert (len(loaders.train.dataset), len(loaders.val.dataset)) == (3, 3)


def test_a_wrong_number_of_classes_says_how_to_fix_it(tree: Path, data_cfg) -> None:
    with pytest.raises(DataError, match=r"holds 3 classes .* Set data\.num_classes=3"):
        build_dataloaders(data_cfg(source=str(tree)), seed=0)


def test_a_missing_key_is_a_config_error(data_cfg) -> None:
    cfg = data_cfg(source="synthetic", synthetic=SYNTHETIC)
    del cfg["split_seed"]
    with pytest.raises(ConfigError, match=r"data\.split_seed is missing"):
        build_dataloaders(cfg, seed=0)


def test_accelerate_swaps_in_its_seedable_sampler(synthetic_cfg) -> None:
    loaders = build_dataloaders(synthetic_cfg(), seed=0)
    config = DataLoaderConfiguration(use_seedable_sampler=True)
    try:
        train = Accelerator(cpu=True, dataloader_config=config).prepare(loaders.train)
        assert type(train.batch_sampler.sampler) is SeedableRandomSampler
        assert sum(len(labels) for _, labels in train) == 160
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize("pipeline", ["images", "prepared"])
def test_a_flat_folder_of_class_folders_is_split_into_train_validation_and_test(
    tmp_path: Path, data_cfg, pipeline: str
) -> None:
    # Photos sorted by class, no train/ and val/: what a user has on disk.
    flat = write_tree(tmp_path / "tree", {"photos": {"Aves": 10, "Fungi": 10, "Plantae": 10}})
    cfg = data_cfg(
        source=str(flat / "photos"),
        image_size=16,
        batch_size=4,
        num_classes=3,
        pipeline=pipeline,
        test_fraction=0.2,
        val_fraction=0.25,
    )
    loaders = build_dataloaders(OmegaConf.create(cfg), seed=0)
    assert loaders.classes == ["Aves", "Fungi", "Plantae"]
    train, val, test = (
        {path for path, _ in loader.dataset.samples}
        for loader in (loaders.train, loaders.val, loaders.test)
    )
    # Per class: 2 of 10 for the test, 2 of the other 8 for validation, 6 to train.
    assert (len(train), len(val), len(test)) == (18, 6, 6)
    assert not train & val and not train & test and not val & test
    assert Counter(path.split("/")[0] for path in test) == dict.fromkeys(loaders.classes, 2)
    assert loaders.split == {
        "layout": "class folders",
        "val_fraction": 0.25,
        "test_fraction": 0.2,
        "split_seed": 0,
        "images": {"train": 18, "validation": 6, "test": 6},
    }
    images, labels = next(iter(loaders.test))
    assert images.shape == (4, 3, 16, 16) and labels.dtype == torch.int64
    # The same on every node and every run; another seed, another split.
    again = build_dataloaders(OmegaConf.create(cfg), seed=1)
    assert {path for path, _ in again.test.dataset.samples} == test
    other = build_dataloaders(OmegaConf.create({**cfg, "split_seed": 1}), seed=0)
    assert {path for path, _ in other.test.dataset.samples} != test


def test_a_flat_folder_with_a_class_too_small_for_three_splits_is_refused(
    tmp_path: Path, data_cfg
) -> None:
    flat = write_tree(tmp_path / "tree", {"photos": {"Aves": 10, "Fungi": 2}})
    cfg = data_cfg(source=str(flat / "photos"), num_classes=2, pipeline="images")
    with pytest.raises(DataError) as raised:
        build_dataloaders(OmegaConf.create(cfg), seed=0)
    message = str(raised.value)
    assert "Fungi has 2 readable images" in message and "at least 3" in message
    assert "data.test_fraction" in message

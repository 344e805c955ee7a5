"""data.augment's policies and random erasing: torchvision's policies applied image by image,
in batches on the training device (the CPU here) and in the per-image pipeline; random
numbers that a resume restores; the config keys; `inat train` with them."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from helpers.runs import TINY, location, run_inat
from PIL import Image

from inat.compose import compose
from inat.data.batch_transform import (
    BatchTransform,
    Draws,
    Policy,
    normalize,
    random_resized_crops,
)
from inat.data.datasets import build_policy, build_transform
from inat.errors import ConfigError
from inat.schema import AUGMENTATIONS, augmentation
from inat.train import train
from inat.train.checkpoint import rng_state, set_rng_state

POLICIES = ("randaugment", "trivialaugment", "autoaugment")


def _batch(n: int = 16, side: int = 32, seed: int = 0) -> torch.Tensor:
    """uint8 images (n, 3, side, side) of smooth colour fields, channels-last as the loader
    yields them (smooth, so that every op of a policy changes them visibly)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand((n, 3, 4, 4), generator=generator) * 255
    smooth = torch.nn.functional.interpolate(coarse, size=(side, side), mode="bilinear")
    return smooth.round().to(torch.uint8).contiguous(memory_format=torch.channels_last)


# -- data.augment's values


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, "basic"), (False, "none"), *((name, name) for name in AUGMENTATIONS)],
)
def test_true_and_false_are_read_as_basic_and_none(value: str | bool, expected: str) -> None:
    assert augmentation(value) == expected


def test_an_unknown_augmentation_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"data\.augment='randaug' is not allowed: use one of "):
        augmentation("randaug")


# -- the policies, applied image by image


@pytest.mark.parametrize("kind", POLICIES)
def test_drawn_ops_applied_give_what_the_librarys_policy_gives(kind: str) -> None:
    policy = Policy(build_policy(kind))
    images = _batch(24)
    torch.manual_seed(0)
    ops = policy.draw(24, 32, 32)
    ours = [policy.apply(image, image_ops) for image, image_ops in zip(images, ops, strict=True)]
    torch.manual_seed(0)
    theirs = [policy.transform(image) for image in images]
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert sum(not torch.equal(a, b) for a, b in zip(ours, images, strict=True)) > 12


def test_each_image_gets_its_own_randaugment_ops_of_the_magnitude_asked_for() -> None:
    torch.manual_seed(0)
    ops = Policy(build_policy("randaugment", 12, 3)).draw(64, 224, 224)
    assert all(len(image_ops) == 3 for image_ops in ops)
    assert len({tuple(name for name, _ in image_ops) for image_ops in ops}) > 50
    rotations = [m for image_ops in ops for name, m in image_ops if name == "Rotate"]
    # torchvision's rotation: 30 degrees at magnitude 30, either way.
    assert rotations and {abs(m) for m in rotations} == {12.0}
    assert min(rotations) < 0 < max(rotations)


@pytest.mark.parametrize("kind", POLICIES)
def test_a_batch_gets_a_random_resized_crop_and_flip_then_the_policy(kind: str) -> None:
    images = _batch(12)
    torch.manual_seed(1)
    out = BatchTransform(kind)(images)
    torch.manual_seed(1)
    crops = random_resized_crops(images, Draws.draw(12, 32, 32))
    policy = build_policy(kind)
    expected = normalize(torch.stack([policy(crop) for crop in crops]))
    assert torch.equal(out, expected)
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("kind", ["basic", *POLICIES])
def test_the_same_generator_states_augment_a_batch_the_same(kind: str) -> None:
    """What makes a resumed run exact: the generators a checkpoint saves decide the batch."""
    images = _batch()
    transform = BatchTransform(kind, random_erasing=0.5)
    saved = rng_state()
    first = transform(images)
    set_rng_state(saved)
    again = transform(images)
    following = transform(images)
    assert torch.equal(first, again)
    assert not torch.equal(first, following)


@pytest.mark.parametrize("kind", POLICIES)
def test_a_batch_split_over_cpu_threads_is_augmented_as_a_whole(kind: str) -> None:
    images = _batch(10)
    transform = BatchTransform(kind, random_erasing=0.5)
    threads = torch.get_num_threads()
    saved = rng_state()
    try:
        torch.set_num_threads(3)  # parts of 4, 4 and 2 images, on 3 threads
        split = transform(images)
        assert torch.get_num_threads() == 3
        torch.set_num_threads(1)
        set_rng_state(saved)
        whole = transform(images)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(split, whole)


def test_true_and_false_augment_batches_as_basic_and_none() -> None:
    images = _batch()
    for value, name in ((True, "basic"), (False, "none")):
        torch.manual_seed(3)
        given = BatchTransform(value)(images)
        torch.manual_seed(3)
        assert torch.equal(given, BatchTransform(name)(images))
    assert torch.equal(BatchTransform(False)(images), normalize(images))


# -- random erasing


def test_random_erasing_replaces_a_rectangle_of_each_picked_image_with_noise() -> None:
    images = _batch(200)
    saved = rng_state()
    plain = BatchTransform("basic")(images)
    set_rng_state(saved)
    erased = BatchTransform("basic", random_erasing=1.0)(images)
    changed = (plain != erased).any(dim=1)  # (N, H, W)
    for mask in changed:
        rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
        height, width = len(rows), len(cols)
        # One filled rectangle of 2% to a third of the image (timm's defaults).
        assert rows.max() - rows.min() + 1 == height and cols.max() - cols.min() + 1 == width
        assert mask.sum() == height * width
        assert 0.02 * 0.8 <= height * width / mask.numel() <= 1 / 3 * 1.2
    noise = erased[changed.unsqueeze(1).expand_as(erased)]
    assert abs(noise.mean().item()) < 0.1 and noise.std().item() == pytest.approx(1, abs=0.1)

    set_rng_state(saved)
    some = BatchTransform("basic", random_erasing=0.5)(images)
    share = (plain != some).flatten(1).any(dim=1).float().mean().item()
    assert 0.35 < share < 0.65


# -- the per-image pipeline


@pytest.mark.parametrize("kind", ["basic", *POLICIES])
def test_the_per_image_pipeline_augments_with_each_policy(kind: str) -> None:
    image = Image.fromarray(_batch(1, 64)[0].permute(1, 2, 0).numpy())
    transform = build_transform(32, kind)
    torch.manual_seed(0)
    outputs = [transform(image) for _ in range(6)]
    assert all(x.shape == (3, 32, 32) and x.dtype == torch.float32 for x in outputs)
    assert len({x.sum().item() for x in outputs}) == 6  # each call its own draws


def test_the_per_image_pipeline_reads_true_and_false_and_erases() -> None:
    image = Image.linear_gradient("L").convert("RGB").resize((64, 48))
    for value, name in ((True, "basic"), (False, "none")):
        torch.manual_seed(3)
        given = build_transform(32, value)(image)
        torch.manual_seed(3)
        assert torch.equal(given, build_transform(32, name)(image))
    plain = build_transform(32, "none")(image)
    erased = build_transform(32, "none", random_erasing=1.0)(image)
    changed = (plain != erased).any(dim=0)
    assert 0.02 * 0.8 <= changed.float().mean().item() <= 1 / 3 * 1.2


# -- the config


def test_the_config_takes_the_policies_and_their_settings() -> None:
    cfg = compose(
        [
            "data.augment=randaugment",
            "data.randaugment_magnitude=15",
            "data.randaugment_ops=3",
            "data.random_erasing=0.25",
        ]
    )
    assert (cfg.data.augment, cfg.data.randaugment_magnitude) == ("randaugment", 15)
    assert (cfg.data.randaugment_ops, cfg.data.random_erasing) == (3, 0.25)
    assert compose(["data.augment=true"]).data.augment is True
    assert compose([]).data.augment == "none"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.augment=randaug"], "data.augment='randaug' is not allowed: use one of none, "),
        (["data.augment=1"], "data.augment=1 is not allowed"),
        (["data.randaugment_magnitude=31"], "use an integer from 0 to 30"),
        (["data.randaugment_ops=0"], "data.randaugment_ops=0 is not allowed"),
        (["data.random_erasing=1.5"], r"use a number in [0, 1]"),
        (
            ["data.random_erasing=0.25"],
            "data.random_erasing=0.25 is not allowed: use 0 with data.augment=none",
        ),
        (["data.random_erasing=0.25", "data.augment=false"], "use 0 with data.augment=none"),
    ],
)
def test_bad_augmentation_settings_are_refused_naming_the_key(
    overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        compose(overrides)
    assert message in str(refused.value)


# -- training with them


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ["data.augment=true"],
        ["data.augment=false"],
        ["data.pipeline=images", "data.augment=trivialaugment", "data.random_erasing=0.25"],
        ["data.augment=autoaugment"],
    ],
    ids=["true", "false", "images-trivialaugment-erasing", "autoaugment"],
)
def test_a_run_trains_an_epoch_with_each_augmentation(tmp_path, overrides: list[str]) -> None:
    cfg = compose([*location(tmp_path), *TINY, "trainer.epochs=1", *overrides])
    result = train(cfg)
    assert (result["status"], result["epochs"]) == ("done", 1)


@pytest.mark.slow
def test_inat_train_runs_randaugment_with_random_erasing(tmp_path) -> None:
    args = ["data.augment=randaugment", "data.random_erasing=0.25", "trainer.epochs=1"]
    done = run_inat(tmp_path, "train", *TINY, *location(tmp_path), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = tmp_path / "out" / "default"
    result = json.loads((run_dir / "result.json").read_text())
    assert (result["status"], result["epochs"]) == ("done", 1)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["data"]["augment"] == "randaugment"
    assert config["data"]["random_erasing"] == 0.25

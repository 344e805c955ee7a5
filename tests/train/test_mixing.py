"""Mixup and CutMix (inat.train.mixing): timm's Mixup targets and SoftTargetCrossEntropy, label
smoothing folded in, odd batches, accuracy under mixing, repeats from the same generators."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from timm.data.mixup import mixup_target
from timm.loss import SoftTargetCrossEntropy

from inat.compose import compose
from inat.errors import ConfigError
from inat.schema import TrainerConfig
from inat.train.checkpoint import rng_state, set_rng_state
from inat.train.mixing import Mixing

CLASSES = 10


@pytest.fixture(autouse=True)
def _seeded() -> Iterator[None]:
    """Each test from the same numpy state (timm's Mixup draws from it), restored after."""
    saved = rng_state()
    np.random.seed(0)
    yield
    set_rng_state(saved)


def _batch(n: int, side: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Image i filled with the value i (channels-last, as the trainer's), labelled i % CLASSES."""
    values = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)
    images = values.expand(n, 3, side, side).contiguous(memory_format=torch.channels_last)
    return images, torch.arange(n) % CLASSES


def _mixing(**settings: float) -> Mixing:
    return Mixing(TrainerConfig(**settings), CLASSES)


def test_mixup_targets_are_timms_for_the_share_the_images_were_blended_by() -> None:
    images, labels = _batch(8)
    mixed, targets = _mixing(mixup_alpha=0.8, label_smoothing=0.1)(images.clone(), labels)
    # Image 0 (all 0) blended with image 7 (all 7): lam * 0 + (1 - lam) * 7.
    lam = 1 - mixed[0, 0, 0, 0].item() / 7
    assert 0 < lam < 1
    blended = lam * images + (1 - lam) * images.flip(0)
    torch.testing.assert_close(mixed, blended)
    torch.testing.assert_close(targets, mixup_target(labels, CLASSES, lam, smoothing=0.1))
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(8))


def test_cutmix_targets_are_timms_for_the_area_pasted_in() -> None:
    images, labels = _batch(8)
    mixed, targets = _mixing(cutmix_alpha=1.0, label_smoothing=0.1)(images.clone(), labels)
    pasted = (mixed != images).any(dim=1)  # (N, H, W): where the reversed batch went in
    assert all(torch.equal(mask, pasted[0]) for mask in pasted)  # one box for the batch
    assert (mixed[:, :, pasted[0]] == torch.arange(7.0, -1, -1).view(8, 1, 1)).all()
    lam = 1 - pasted[0].float().mean().item()
    assert 0 < lam < 1
    torch.testing.assert_close(targets, mixup_target(labels, CLASSES, lam, smoothing=0.1))
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(8))


def test_label_smoothing_is_folded_into_the_mixed_targets() -> None:
    images, _ = _batch(6)
    mixing = _mixing(mixup_alpha=1.0, label_smoothing=0.1)
    # One class throughout: whatever the mix, the smoothed one-hot target.
    _, targets = mixing(images.clone(), torch.full((6,), 3))
    expected = torch.full((6, CLASSES), 0.1 / CLASSES)
    expected[:, 3] = 1 - 0.1 + 0.1 / CLASSES
    torch.testing.assert_close(targets, expected)
    # Two classes mixed: they share the on value, every other class keeps the off value.
    _, targets = mixing(images.clone(), torch.tensor([1, 1, 1, 2, 2, 2]))
    torch.testing.assert_close(targets[:, 1] + targets[:, 2], torch.full((6,), 0.92))
    rest = torch.cat((targets[:, :1], targets[:, 3:]), dim=1)
    torch.testing.assert_close(rest, torch.full_like(rest, 0.01))


def test_the_loss_is_timms_soft_target_cross_entropy_or_the_smoothed_one() -> None:
    images, labels = _batch(8)
    logits = torch.randn(8, CLASSES)
    smoothed = F.cross_entropy(logits, labels, label_smoothing=0.1)
    mixing = _mixing(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1)
    _, targets = mixing(images.clone(), labels)
    assert torch.equal(mixing.loss(logits, targets), SoftTargetCrossEntropy()(logits, targets))
    # Mixing off: the images and labels as they are, the cross-entropy with smoothing.
    off = _mixing(label_smoothing=0.1)
    same_images, same_labels = off(images, labels)
    assert same_images is images and same_labels is labels
    torch.testing.assert_close(off.loss(logits, labels), smoothed)
    # A batch that mix_prob leaves unmixed: the soft-target loss is that same smoothed one.
    rarely = _mixing(mixup_alpha=0.8, mix_prob=1e-9, label_smoothing=0.1)
    unmixed, targets = rarely(images.clone(), labels)
    assert torch.equal(unmixed, images)
    torch.testing.assert_close(rarely.loss(logits, targets), smoothed)


@pytest.mark.parametrize("n", [1, 7])
def test_an_odd_batch_is_mixed_but_for_its_last_image(n: int) -> None:
    images, labels = _batch(n)
    mixing = _mixing(mixup_alpha=1.0, label_smoothing=0.1)
    mixed, targets = mixing(images.clone(), labels)
    assert mixed.shape == images.shape and targets.shape == (n, CLASSES)
    assert mixed.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(mixed[-1], images[-1])
    own = mixup_target(labels[-1:], CLASSES, smoothing=0.1)
    torch.testing.assert_close(targets[-1:], own)
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(n))
    if n > 1:  # the first n - 1 as timm mixes an even batch: image i with image n - 2 - i
        lam = 1 - mixed[0, 0, 0, 0].item() / (n - 2)
        even = images[:-1]
        torch.testing.assert_close(mixed[:-1], lam * even + (1 - lam) * even.flip(0))
        expected = mixup_target(labels[:-1], CLASSES, lam, smoothing=0.1)
        torch.testing.assert_close(targets[:-1], expected)


def test_the_same_generator_states_mix_the_same() -> None:
    """What makes a resumed run exact: the generators a checkpoint saves decide the mix."""
    mixing = _mixing(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1)
    images, labels = _batch(8)
    saved = rng_state()
    first = [mixing(images.clone(), labels) for _ in range(4)]
    set_rng_state(saved)
    again = [mixing(images.clone(), labels) for _ in range(4)]
    for (a_images, a_targets), (b_images, b_targets) in zip(first, again, strict=True):
        assert torch.equal(a_images, b_images) and torch.equal(a_targets, b_targets)
    assert len({round(t[0, 0].item(), 6) for _, t in first}) == 4  # each batch its own mix


def test_a_prediction_is_correct_when_it_names_the_larger_share_of_the_mix() -> None:
    images, labels = _batch(8)  # eight different labels
    mixing = _mixing(mixup_alpha=1.0)
    _, targets = mixing(images.clone(), labels)
    lam = targets[0, 0].item()  # image 0's share of its own label
    assert 0 < lam < 1 and lam != 0.5
    major, minor = (labels, labels.flip(0)) if lam > 0.5 else (labels.flip(0), labels)
    assert mixing.correct(F.one_hot(major, CLASSES).float(), targets).item() == 8
    assert mixing.correct(F.one_hot(minor, CLASSES).float(), targets).item() == 0
    off = _mixing()
    assert off.correct(F.one_hot(labels, CLASSES).float(), labels).item() == 8


def test_the_config_takes_mixup_and_cutmix_settings() -> None:
    cfg = compose(["trainer.mixup_alpha=0.8", "trainer.cutmix_alpha=1.0", "trainer.mix_prob=0.5"])
    assert (cfg.trainer.mixup_alpha, cfg.trainer.cutmix_alpha) == (0.8, 1.0)
    assert cfg.trainer.mix_prob == 0.5
    assert Mixing(cfg.trainer, CLASSES).active
    assert not Mixing(compose([]).trainer, CLASSES).active


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.mixup_alpha=-1", "trainer.mixup_alpha=-1.0 is not allowed: use a finite number"),
        ("trainer.cutmix_alpha=-0.5", "trainer.cutmix_alpha=-0.5 is not allowed"),
        ("trainer.mix_prob=0", "trainer.mix_prob=0.0 is not allowed: use a number in (0, 1]"),
        ("trainer.mix_prob=1.5", "trainer.mix_prob=1.5 is not allowed"),
    ],
)
def test_bad_mixing_settings_are_refused_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        compose([override])
    assert message in str(refused.value)

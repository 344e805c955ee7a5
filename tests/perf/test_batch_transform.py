"""Batch augmentation and normalization of uint8 batches, as the prepared pipeline runs them
on the training device (the CPU here)."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from inat.data.batch_transform import (
    BatchTransform,
    Draws,
    jitter_and_normalize_,
    normalize,
    random_resized_crops,
)
from inat.data.datasets import IMAGENET_MEAN, IMAGENET_STD


def _batch(n: int = 32, side: int = 24, seed: int = 0) -> torch.Tensor:
    """uint8 images (n, 3, side, side), channels-last as the loader yields them."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (n, side, side, 3), dtype=torch.uint8, generator=generator)
    return pixels.permute(0, 3, 1, 2)


def test_normalize_matches_the_per_image_pipeline() -> None:
    images = _batch()
    reference = TF.normalize(images.float() / 255, IMAGENET_MEAN, IMAGENET_STD)
    out = normalize(images)
    assert out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, reference)


def test_augmentation_is_drawn_from_the_global_generator() -> None:
    images = _batch()
    augment = BatchTransform(augment=True)
    torch.manual_seed(1)
    first = augment(images)
    torch.manual_seed(1)
    again = augment(images)
    torch.manual_seed(2)
    other = augment(images)
    assert torch.equal(first, again)  # what makes a resumed run exact
    assert not torch.equal(first, other)
    assert first.shape == images.shape and first.dtype == torch.float32
    assert first.is_contiguous(memory_format=torch.channels_last)


def test_crops_flip_and_resize_each_image_on_its_own() -> None:
    # Every image a horizontal ramp: a crop keeps it a ramp, a flip reverses it.
    ramp = torch.linspace(0, 255, 64).round().to(torch.uint8)
    images = ramp.expand(200, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    crops = random_resized_crops(images, Draws.draw(200, 64, 64)).float()
    slope = crops[:, 0, 32, -1] - crops[:, 0, 32, 0]
    flipped = (slope < 0).float().mean().item()
    assert 0.35 < flipped < 0.65
    # A crop of 60% to 100% of the area spans 45% to 100% of the ramp's range, then resized.
    span = slope.abs() / 255
    assert span.min() > 0.4 and span.max() <= 1
    assert len(set(span.tolist())) > 15  # each image its own crop (widths are whole pixels)


def test_colour_jitter_is_torchvisions_brightness_contrast_saturation() -> None:
    # Mid-range pixels, so that no adjustment reaches 0 or 255 and needs clamping.
    images = (_batch(16).float() * 0.3 + 90).round()
    draws = Draws.draw(16, 24, 24)
    out = jitter_and_normalize_(images.clone(), draws)
    expected = []
    for i, image in enumerate(images / 255):
        image = TF.adjust_brightness(image, draws.brightness[i].item())
        image = TF.adjust_contrast(image, draws.contrast[i].item())
        image = TF.adjust_saturation(image, draws.saturation[i].item())
        expected.append(TF.normalize(image, IMAGENET_MEAN, IMAGENET_STD))
    torch.testing.assert_close(out, torch.stack(expected), atol=1e-4, rtol=1e-4)


def test_jittered_values_stay_within_the_normalized_pixel_range() -> None:
    images = _batch(64)
    torch.manual_seed(0)
    out = BatchTransform(augment=True)(images)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    pixels = out * std + mean
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    assert pixels.std() == pytest.approx((images.float() / 255).std().item(), rel=0.25)


def test_a_batch_split_over_cpu_threads_is_augmented_as_a_whole() -> None:
    images = _batch(10)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # parts of 4, 4 and 2 images, on 3 threads
        torch.manual_seed(5)
        split = BatchTransform(augment=True)(images)
        assert torch.get_num_threads() == 3
        torch.set_num_threads(1)
        torch.manual_seed(5)
        whole = BatchTransform(augment=True)(images)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(split, whole)

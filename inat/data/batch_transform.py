"""Model input from uint8 image batches, on whatever device the batch is on (the GPU in training).

The prepared pipeline loads uint8 batches: 4x less to copy than float32, and no
per-image Python work in the loader. This module turns them into normalized float32
batches, with the augmentation of `inat.data.datasets.build_transform` drawn for each
image of a batch when asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from inat.data.datasets import IMAGENET_MEAN, IMAGENET_STD

# Like build_transform's RandomResizedCrop and ColorJitter.
CROP_SCALE = (0.6, 1.0)
CROP_LOG_RATIO = (math.log(3 / 4), math.log(4 / 3))
JITTER = 0.2  # brightness, contrast and saturation factors in [1 - JITTER, 1 + JITTER]
_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def _affine(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of shape (3,) with normalized = pixel * scale + shift, pixels in 0..255."""
    std = torch.tensor(IMAGENET_STD, device=device)
    mean = torch.tensor(IMAGENET_MEAN, device=device)
    return 1 / (255 * std), -mean / std


def _normalize_(pixels: torch.Tensor) -> torch.Tensor:
    scale, shift = _affine(pixels.device)
    return torch.addcmul(shift.view(1, 3, 1, 1), pixels, scale.view(1, 3, 1, 1), out=pixels)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 3, H, W) as float32, normalized with the ImageNet mean and std."""
    if images.device.type != "cpu":
        return _normalize_(images.float())
    out = torch.empty(images.shape).contiguous(memory_format=torch.channels_last)
    _in_cpu_threads(len(images), lambda part: _normalize_(out[part].copy_(images[part])))
    return out


def _uniform(n: int, low: float, high: float) -> torch.Tensor:
    # Drawn on the CPU from the global generator, which checkpoints save and restore.
    return torch.empty(n).uniform_(low, high)


@dataclass(frozen=True)
class Draws:
    """The random choices for the images of a batch, as CPU tensors of one value per image:
    a crop box (area share CROP_SCALE, aspect ratio 3/4 to 4/3), a horizontal flip (1 in 2)
    and brightness, contrast and saturation factors (1 - JITTER to 1 + JITTER)."""

    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    flip: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor

    @classmethod
    def draw(cls, n: int, height: int, width: int) -> Draws:
        """Choices for `n` images of height x width, from torch's global generator."""
        area = _uniform(n, *CROP_SCALE)
        ratio = _uniform(n, *CROP_LOG_RATIO).exp()
        crop_w = (area * ratio).sqrt().mul(width).round().clamp(1, width).int()
        crop_h = (area / ratio).sqrt().mul(height).round().clamp(1, height).int()
        return cls(
            top=(torch.rand(n) * (height - crop_h + 1)).int(),
            left=(torch.rand(n) * (width - crop_w + 1)).int(),
            height=crop_h,
            width=crop_w,
            flip=torch.rand(n) < 0.5,
            brightness=_uniform(n, 1 - JITTER, 1 + JITTER),
            contrast=_uniform(n, 1 - JITTER, 1 + JITTER),
            saturation=_uniform(n, 1 - JITTER, 1 + JITTER),
        )

    def __getitem__(self, part: slice) -> Draws:
        return Draws(**{f.name: getattr(self, f.name)[part] for f in fields(self)})


def random_resized_crops(images: torch.Tensor, draws: Draws) -> torch.Tensor:
    """Each image cropped as `draws` says, flipped if so, and resized back to its size.

    uint8 in and out on the CPU, where torch has a fast uint8 resize; float32 out elsewhere.
    """
    n, channels, height, width = images.shape
    dtype = images.dtype if images.device.type == "cpu" else torch.float32
    out = torch.empty((n, channels, height, width), dtype=dtype, device=images.device)
    out = out.contiguous(memory_format=torch.channels_last)
    boxes = zip(
        *(t.tolist() for t in (draws.top, draws.left, draws.height, draws.width, draws.flip)),
        strict=True,
    )
    for i, (y, x, h, w, mirrored) in enumerate(boxes):
        crop = images[i : i + 1, :, y : y + h, x : x + w].to(dtype)
        if mirrored:
            crop = crop.flip(-1)
        # Crops are never larger than the image: this only upsamples, so antialias changes
        # nothing but picks torch's fast uint8 kernel on the CPU.
        out[i : i + 1] = F.interpolate(
            crop, size=(height, width), mode="bilinear", antialias=True, align_corners=False
        )
    return out


def jitter_and_normalize_(pixels: torch.Tensor, draws: Draws) -> torch.Tensor:
    """Brightness, contrast and saturation as `draws` says, then normalize; in place.

    `pixels`: float32 (N, 3, H, W) channels-last, in 0..255. The three adjustments are
    linear in the pixels, so they and the normalization fold into one per-image,
    per-channel multiply-add plus a grayscale term; values are clamped once, at the end
    (torchvision clamps after each adjustment).
    """
    n, device = pixels.shape[0], pixels.device
    brightness, contrast, saturation = (
        t.to(device) for t in (draws.brightness, draws.contrast, draws.saturation)
    )
    # channels-last (N, H, W, 3) view: the grayscale is a matrix-vector product.
    gray = pixels.permute(0, 2, 3, 1).matmul(torch.tensor(_GRAY, device=device))
    # brightness b, contrast c around the mean gray m, saturation s around the gray g:
    #   s*b*c * x + (1-s)*b*c * g + (1-c)*b*m
    bc = brightness * contrast
    alpha, beta = saturation * bc, (1 - saturation) * bc
    gamma = (1 - contrast) * brightness * gray.mean(dim=(1, 2))
    scale, shift = _affine(device)
    offset = (gamma[:, None] * scale + shift).view(n, 3, 1, 1)
    torch.addcmul(offset, pixels, (alpha[:, None] * scale).view(n, 3, 1, 1), out=pixels)
    pixels.addcmul_(gray.unsqueeze(1), (beta[:, None] * scale).view(n, 3, 1, 1))
    return pixels.clamp_(shift.view(1, 3, 1, 1), (255 * scale + shift).view(1, 3, 1, 1))


def _in_cpu_threads(n: int, work: Callable[[slice], None]) -> None:
    """Run `work(part)` for parts of range(n), one per intra-op thread, each part's torch
    ops on its thread alone.

    Coarse parts instead of torch's own parallel ops: these ops are small (one image's
    crop) or memory-bound, and each parallel op waits for its slowest thread, on a busy
    machine for a time slice. Measured on 2 busy cores, a batch of 64 at 224 px: 60 ms
    on one thread, 150 ms to over 1 s with torch's 2 threads.
    """
    threads = torch.get_num_threads()
    step = -(-n // min(n, threads))
    parts = [slice(start, min(n, start + step)) for start in range(0, n, step)]
    if len(parts) == 1:
        work(parts[0])
        return
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            list(pool.map(work, parts))
    finally:
        torch.set_num_threads(threads)


def unchanged(images: torch.Tensor) -> torch.Tensor:
    """`images` as they are: the train_transform of loaders that yield model input."""
    return images


class BatchTransform:
    """uint8 image batches (N, 3, H, W) -> normalized float32 model input, on their device.

    With `augment`, every image gets its own random resized crop, flip and colour jitter
    (as build_transform's). The random numbers come from torch's global CPU generator, so
    a run resumed from a checkpoint augments exactly as an uninterrupted one would.
    """

    def __init__(self, augment: bool) -> None:
        self.augment = augment

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n, _, height, width = images.shape
        if not self.augment:
            return normalize(images)
        draws = Draws.draw(n, height, width)
        if images.device.type != "cpu":
            return jitter_and_normalize_(random_resized_crops(images, draws), draws)
        out = torch.empty(images.shape).contiguous(memory_format=torch.channels_last)

        def augment(part: slice) -> None:
            crops = random_resized_crops(images[part], draws[part])
            jitter_and_normalize_(out[part].copy_(crops), draws[part])

        _in_cpu_threads(n, augment)
        return out

    def __repr__(self) -> str:
        return f"BatchTransform(augment={self.augment})"

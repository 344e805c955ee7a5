"""Model input from uint8 image batches, on whatever device the batch is on (the GPU in training).

The prepared pipeline loads uint8 batches: 4x less to copy than float32, and no
per-image Python work in the loader. This module turns them into normalized float32
batches, with the augmentation of `inat.data.datasets.build_transform` drawn for each
image of a batch when asked for.

The policies (randaugment, trivialaugment, autoaugment) are torchvision's
(transforms.v2), the one library of the three candidates that does what this needs:
its policies take uint8 tensors on any device, draw a separate choice on every call (so
image by image, every image gets its own ops and magnitudes) from torch's global
generator, which checkpoints save, and are the very ones the per-image pipeline applies.
timm's policies work on PIL images only, on the CPU; kornia's choose the ops once per
batch, work on float images, and would be one more dependency. Random erasing is timm's
RandomErasing, on the normalized batch, as timm's recipe has it.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from inat.data.datasets import IMAGENET_MEAN, IMAGENET_STD, build_policy
from inat.schema import augmentation

if TYPE_CHECKING:
    from torchvision.transforms.v2 import Transform

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


Op = tuple[str, float]  # one op of a policy: torchvision's name for it, and its magnitude


class Policy:
    """A torchvision augmentation policy applied image by image, with its random choices
    drawn apart from the work: `draw` in the calling thread, `apply` in any thread.

    The library draws an image's ops while it applies them, so images augmented in several
    threads at once would take each other's draws, in whatever order the threads run.
    Here the library's own forward draws them, image after image, over a stand-in of the
    images' size: every op of its forward goes through the policy's
    `_apply_image_or_video_transform`, which a copy of the policy has replaced by a note
    of the op. `apply` hands the noted ops to that same method of the policy itself, so an
    image gets exactly what the policy's forward would have given it.
    """

    def __init__(self, transform: Transform) -> None:
        self.transform = transform
        self._noted: list[Op] = []
        self._recorder = copy.copy(transform)
        self._recorder._apply_image_or_video_transform = self._note

    def _note(self, image: torch.Tensor, transform_id: str, magnitude: float, **_: Any) -> Any:
        self._noted.append((transform_id, magnitude))
        return image

    def draw(self, n: int, height: int, width: int) -> list[list[Op]]:
        """The ops of `n` images of height x width, in order, from torch's global generator."""
        stand_in = torch.zeros((1, 1, 1), dtype=torch.uint8).expand(3, height, width)
        drawn = []
        for _ in range(n):
            self._noted = []
            self._recorder(stand_in)
            drawn.append(self._noted)
        return drawn

    def apply(self, image: torch.Tensor, ops: Sequence[Op]) -> torch.Tensor:
        """`image` (uint8, 3 x H x W, on any device) with `ops` applied one after the other."""
        policy = self.transform
        for transform_id, magnitude in ops:
            image = policy._apply_image_or_video_transform(
                image,
                transform_id,
                magnitude,
                interpolation=policy.interpolation,
                fill=policy._fill,
            )
        return image


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

    `augment` is data.augment (see inat.schema.DataConfig). basic: every image gets its own
    random resized crop, flip and colour jitter (as build_transform's); a policy: the same
    crop and flip, then the policy's ops drawn for that image (`Policy`). `random_erasing`:
    the probability that timm's RandomErasing erases a rectangle of an image to noise, after
    normalization. The random numbers come from torch's and python's global generators
    (erased pixels: from the device's torch generator), so a run resumed from a checkpoint
    augments exactly as an uninterrupted one would.
    """

    def __init__(
        self,
        augment: str | bool,
        *,
        randaugment_magnitude: int = 9,
        randaugment_ops: int = 2,
        random_erasing: float = 0.0,
    ) -> None:
        self.augment = augmentation(augment)
        policy = build_policy(self.augment, randaugment_magnitude, randaugment_ops)
        self.policy = Policy(policy) if policy is not None else None
        self.random_erasing = random_erasing
        self._erasing: Callable[..., Callable[[torch.Tensor], torch.Tensor]] | None = None
        if random_erasing:
            # Imported here: timm's import takes seconds, and loaders import this module.
            from timm.data.random_erasing import RandomErasing

            self._erasing = functools.partial(RandomErasing, random_erasing, mode="pixel")

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = normalize(images) if self.augment == "none" else self._augment(images)
        if self._erasing is not None:
            self._erasing(device=out.device)(out)
        return out

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        n, _, height, width = images.shape
        draws = Draws.draw(n, height, width)
        ops = self.policy.draw(n, height, width) if self.policy else None
        if images.device.type != "cpu":
            return self._augment_part(images, draws, ops, None)
        out = torch.empty(images.shape).contiguous(memory_format=torch.channels_last)
        _in_cpu_threads(
            n,
            lambda part: self._augment_part(
                images[part], draws[part], None if ops is None else ops[part], out[part]
            ),
        )
        return out

    def _augment_part(
        self,
        images: torch.Tensor,
        draws: Draws,
        ops: list[list[Op]] | None,
        out: torch.Tensor | None,
    ) -> torch.Tensor:
        """`images` augmented as `draws` and `ops` say, into `out` (on the CPU) or a new batch."""
        crops = random_resized_crops(images, draws)
        if ops is None:
            return jitter_and_normalize_(crops if out is None else out.copy_(crops), draws)
        if crops.is_floating_point():  # off the CPU: the policies take uint8 images
            crops = crops.round_().to(torch.uint8)
        for i, image_ops in enumerate(ops):
            if image_ops:
                crops[i] = self.policy.apply(crops[i], image_ops)
        return _normalize_(crops.float() if out is None else out.copy_(crops))

    def __repr__(self) -> str:
        return f"BatchTransform(augment={self.augment!r}, random_erasing={self.random_erasing})"

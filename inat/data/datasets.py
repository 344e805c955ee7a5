"""Images as model input: decoding to RGB, transforms, and a dataset that survives bad files."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import ExifTags, Image, ImageOps
from torch.utils.data import Dataset

from inat.data.layout import Sample
from inat.errors import DataError
from inat.schema import augmentation

if TYPE_CHECKING:
    from torchvision.transforms.v2 import Transform

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# What the policies' geometric ops fill the uncovered corners with, as timm's do: the mean
# pixel, zero once normalized.
MEAN_PIXEL = tuple(round(255 * m) for m in IMAGENET_MEAN)

# What PIL raises for a file that is not a (complete, sane) image.
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
_CHECK_THREADS = 8


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` as RGB: grayscale, palette and CMYK converted, transparency composed on white."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # A plain convert("RGB") would show whatever colour hides under transparent pixels.
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
    return image.convert("RGB")


# Where the stored image's top-left corner ends up when ImageOps.exif_transpose turns it
# upright, by EXIF orientation: (on the right, at the bottom, width and height swapped).
_CORNER = {
    2: (True, False, False),
    3: (True, True, False),
    4: (False, True, False),
    5: (False, False, True),
    6: (True, False, True),
    7: (True, True, True),
    8: (False, True, True),
}


def _upright_box(
    box: tuple[float, float, float, float], size: tuple[int, int], orientation: int
) -> tuple[float, float, float, float]:
    """A draft box (at the top left of a drafted image of `size`) where exif_transpose puts it."""
    right, bottom, swapped = _CORNER.get(orientation, (False, False, False))
    (width, height), (box_width, box_height) = size, (box[2] - box[0], box[3] - box[1])
    if swapped:
        width, height, box_width, box_height = height, width, box_height, box_width
    left = width - box_width if right else 0.0
    top = height - box_height if bottom else 0.0
    return (left, top, left + box_width, top + box_height)


def load_rgb(path: Path, side: int | None = None) -> Image.Image:
    """Decode the image at `path` as RGB, turned upright by its EXIF orientation (phones store
    photos sideways and say so there); raises one of UNREADABLE if it cannot be decoded.

    Every reader of images decodes through here. With `side`, the image is squeezed to
    side x side like the per-image pipeline's Resize((side, side)) (bilinear, antialiased),
    and a JPEG is decoded at the smallest scale (1/2, 1/4, 1/8) that keeps at least `side`
    pixels (PIL's draft mode: libjpeg-turbo skips the finer DCT coefficients).
    """
    with Image.open(path) as image:
        drafted = image.draft(None, (side, side)) if side is not None else None
        size, orientation = image.size, image.getexif().get(ExifTags.Base.Orientation, 1)
        ImageOps.exif_transpose(image, in_place=True)
        rgb = to_rgb(image)
    if side is None:
        return rgb
    # A drafted image may end in part of a pixel of padding at its right and bottom edges:
    # the box leaves that out, wherever turning the image upright moved it.
    box = _upright_box(drafted[1], size, orientation) if drafted else None
    return rgb.resize((side, side), Image.BILINEAR, box=box)


def opens(path: Path) -> bool:
    """Whether PIL recognises `path` as an image: reads its header only, not the pixels."""
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018
    except UNREADABLE:
        return False
    return True


def find_unreadable(paths: Sequence[Path]) -> list[Path]:
    """The files among `paths` that are not images (empty, garbage, unknown format), sorted.

    A header check costs well under a millisecond a file, so the ~12k files of
    nature_12K take about a second; files whose header is fine but whose pixel
    data is broken are caught later, by ImageFolderDataset.
    """
    # Threads, each with its own share: on a shared file system the time goes into waiting.
    shares = [paths[i::_CHECK_THREADS] for i in range(_CHECK_THREADS)]
    with ThreadPoolExecutor(max_workers=_CHECK_THREADS) as pool:
        bad = pool.map(lambda share: [path for path in share if not opens(path)], shares)
    return sorted(path for share in bad for path in share)


def build_policy(
    augment: str | bool, randaugment_magnitude: int = 9, randaugment_ops: int = 2
) -> Transform | None:
    """torchvision's augmentation policy that data.augment names, None for none and basic.

    The policies take uint8 images (tensors on any device, or PIL images) and draw from
    torch's global generator; their geometric ops interpolate bilinearly and fill with
    MEAN_PIXEL, as timm's do. randaugment applies `randaugment_ops` ops of strength
    `randaugment_magnitude` (0 to 30), trivialaugment one op of a random strength,
    autoaugment one of the sub-policies found for ImageNet.
    """
    kind = augmentation(augment)
    if kind in ("none", "basic"):
        return None
    # Imported here: torchvision's import takes seconds (it loads torch._dynamo), and most
    # runs never build a transform or a policy.
    from torchvision.transforms import v2

    options = {"interpolation": v2.InterpolationMode.BILINEAR, "fill": MEAN_PIXEL}
    if kind == "randaugment":
        return v2.RandAugment(randaugment_ops, randaugment_magnitude, **options)
    if kind == "trivialaugment":
        return v2.TrivialAugmentWide(**options)
    return v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET, **options)


def build_transform(
    image_size: int,
    augment: str | bool,
    *,
    randaugment_magnitude: int = 9,
    randaugment_ops: int = 2,
    random_erasing: float = 0.0,
) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> normalized float tensor of shape (3, image_size, image_size).

    `augment` is data.augment (see inat.schema.DataConfig): for training, a random resized
    crop and horizontal flip, then colour jitter (basic) or the policy of `build_policy`;
    with `random_erasing` (a probability), timm's RandomErasing of the normalized image.
    """
    from torchvision.transforms import v2

    kind = augmentation(augment)
    policy = build_policy(kind, randaugment_magnitude, randaugment_ops)
    if kind == "none":
        geometry = [v2.Resize((image_size, image_size), antialias=True)]
    else:
        geometry = [
            v2.RandomResizedCrop(image_size, scale=(0.6, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            policy or v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        ]
    erasing = []
    if random_erasing:
        from timm.data.random_erasing import RandomErasing

        erasing = [RandomErasing(random_erasing, mode="pixel", device="cpu")]
    return v2.Compose(
        [
            v2.ToImage(),
            *geometry,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            *erasing,
        ]
    )


class DecodeFailures:
    """The files that failed to decode while loading, noted by every process that met one
    (DataLoader workers are processes of their own): one small file per process in a
    temporary folder, removed with this object."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="inat-decode-failures-")

    def note(self, relpath: str) -> None:
        """Note `relpath` (relative to the data set root) from this process."""
        with open(Path(self._folder.name) / f"{os.getpid()}.txt", "a") as notes:
            notes.write(relpath + "\n")

    def noted(self) -> list[str]:
        """Every file noted so far, by any process, sorted."""
        files = Path(self._folder.name).glob("*.txt")
        return sorted({line for path in files for line in path.read_text().splitlines()})


class ImageFolderDataset(Dataset):
    """(image tensor, class index) pairs from files below `folder`.

    An image that fails to decode is logged (once per process) and replaced by
    the next readable one, with that one's label, so one bad file does not end
    a run. With `failures` (a DecodeFailures), it is also noted there for the run's
    result.json, from whichever DataLoader worker met it.
    """

    def __init__(
        self,
        folder: Path,
        samples: Sequence[Sample],
        transform: Callable[[Image.Image], torch.Tensor],
        failures: DecodeFailures | None = None,
    ) -> None:
        self.folder = folder
        self.samples = list(samples)
        self.transform = transform
        self.failures = failures
        self._failed: set[str] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        for offset in range(len(self.samples)):
            relpath, label = self.samples[(index + offset) % len(self.samples)]
            if relpath in self._failed:
                continue
            try:
                image = load_rgb(self.folder / relpath)
            except UNREADABLE as e:
                self._failed.add(relpath)
                log.warning("cannot decode %s (%s); using the next image instead", relpath, e)
                if self.failures is not None:
                    self.failures.note(f"{self.folder.name}/{relpath}")
                continue
            return self.transform(image), label
        raise DataError(f"no image in {self.folder} can be decoded: the data set is broken.")

"""Images as model input: decoding to RGB, transforms, and a dataset that survives bad files."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from inat.data.layout import Sample
from inat.errors import DataError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

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


def load_rgb(path: Path) -> Image.Image:
    """Decode the image at `path` as RGB; raises one of UNREADABLE if it cannot be decoded."""
    with Image.open(path) as image:
        return to_rgb(image)


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


def build_transform(image_size: int, augment: bool) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> normalized float tensor of shape (3, image_size, image_size).

    With `augment`: random resized crop, horizontal flip and colour jitter (for training).
    """
    # Imported here: torchvision's import takes seconds (it loads torch._dynamo), and a
    # run on prepared images never builds a transform.
    from torchvision.transforms import v2

    if augment:
        geometry = [
            v2.RandomResizedCrop(image_size, scale=(0.6, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        ]
    else:
        geometry = [v2.Resize((image_size, image_size), antialias=True)]
    return v2.Compose(
        [
            v2.ToImage(),
            *geometry,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
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

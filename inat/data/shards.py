"""Prepared images on disk: uint8 shards written once, then memory-mapped by every reader.

<folder>/index.json              FORMAT, side, and per split (train/, val/ of the data set):
                                 its files in order, those that failed to decode, its shards
<folder>/<split>-NNNNN.npy       (images, side, side, 3) uint8 arrays of SHARD_IMAGES images

Readers map the shards (numpy mmap): DataLoader workers on one node share their pages
through the page cache instead of each holding a copy.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from inat.data.batch_transform import BatchTransform
from inat.data.datasets import UNREADABLE, load_rgb
from inat.data.layout import FLAT, Sample
from inat.errors import DataError

log = logging.getLogger(__name__)

FORMAT = 2  # part of the cache key: change it whenever the files or their pixels change
INDEX = "index.json"
SHARD_IMAGES = 1024


def decode_resized(path: Path, side: int) -> np.ndarray:
    """The image at `path` as a (side, side, 3) uint8 RGB array: see load_rgb."""
    return np.asarray(load_rgb(path, side))


def _decode_into(array: np.ndarray, i: int, path: Path, side: int) -> bool:
    """Decode `path` into array[i]; False (logged) if it cannot be decoded."""
    try:
        array[i] = decode_resized(path, side)
    except UNREADABLE as e:
        log.warning("cannot decode %s (%s); the next image will be shown instead", path, e)
        return False
    return True


def write_shards(
    dest: Path, root: Path, files: Mapping[str, Sequence[str]], side: int, threads: int
) -> dict[str, Any]:
    """Decode `files` (split -> paths relative to root/split) into shards in `dest`.

    Returns the index, also written to dest/INDEX. Threads suffice: PIL decodes and
    resizes without holding the GIL. An image that fails to decode is listed as failed.
    """
    start = time.perf_counter()
    total = sum(len(relpaths) for relpaths in files.values())
    done = 0
    splits: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for split, relpaths in files.items():
            shards, failed = [], []
            for first in range(0, len(relpaths), SHARD_IMAGES):
                chunk = relpaths[first : first + SHARD_IMAGES]
                name = f"{'images' if split == FLAT else split}-{first // SHARD_IMAGES:05d}.npy"
                array = np.lib.format.open_memmap(
                    dest / name, mode="w+", dtype=np.uint8, shape=(len(chunk), side, side, 3)
                )
                paths = [root / split / relpath for relpath in chunk]
                decoded = pool.map(
                    _decode_into,
                    itertools.repeat(array),
                    range(len(chunk)),
                    paths,
                    itertools.repeat(side),
                )
                failed.extend(relpath for relpath, ok in zip(chunk, decoded, strict=True) if not ok)
                array.flush()
                del array
                size = (dest / name).stat().st_size
                shards.append({"name": name, "images": len(chunk), "bytes": size})
                done += len(chunk)
                log.info("prepared %d of %d images", done, total)
            splits[split] = {"files": list(relpaths), "failed": failed, "shards": shards}
    index = {"format": FORMAT, "side": side, "shard_images": SHARD_IMAGES, "splits": splits}
    write_index(dest, index)
    seconds = time.perf_counter() - start
    log.info(
        "prepared %d images at %d px in %.1f s (%.0f images/s)",
        total,
        side,
        seconds,
        total / max(seconds, 1e-9),
    )
    return index


def write_index(folder: Path, index: Mapping[str, Any]) -> None:
    """Write the index of the prepared images in `folder`."""
    (folder / INDEX).write_text(json.dumps(index) + "\n")


def read_index(folder: Path) -> dict[str, Any]:
    """The index of the prepared images in `folder`."""
    return json.loads((folder / INDEX).read_text())


class PreparedImages(Dataset):
    """(uint8 image (side, side, 3), class index) pairs of `samples`, from the shards of one split.

    An image that failed to decode is replaced by the next one of `samples` that did
    not, with that one's label, like ImageFolderDataset does while loading.
    """

    def __init__(self, folder: Path, split: str, samples: Sequence[Sample]) -> None:
        index = read_index(folder)
        entry = index["splits"][split]
        self.folder = folder
        self.samples = list(samples)
        self._shard_images = index["shard_images"]
        self._shard_names = [shard["name"] for shard in entry["shards"]]
        self._shards: dict[int, np.ndarray] = {}
        position = {relpath: i for i, relpath in enumerate(entry["files"])}
        failed = set(entry["failed"])
        good = [i for i, (relpath, _) in enumerate(self.samples) if relpath not in failed]
        if not good:
            raise DataError(
                f"no image of {split}/ in {folder} could be decoded: the data set is broken."
            )
        # For each sample, the sample shown instead: itself, or the next good one (cyclically).
        shown = np.searchsorted(good, np.arange(len(self.samples)))
        replacement = [good[j % len(good)] for j in shown]
        self._items = [(position[self.samples[k][0]], self.samples[k][1]) for k in replacement]

    def __len__(self) -> int:
        return len(self._items)

    def _shard(self, number: int) -> np.ndarray:
        # Mapped lazily, in each process that reads: a mapping is not passed to workers.
        if number not in self._shards:
            self._shards[number] = np.load(self.folder / self._shard_names[number], mmap_mode="r")
        return self._shards[number]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        position, label = self._items[index]
        number, offset = divmod(position, self._shard_images)
        return torch.from_numpy(np.array(self._shard(number)[offset])), label

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_shards": {}}


Batch = tuple[torch.Tensor, torch.Tensor]


def collate_channels_last(batch: list[tuple[torch.Tensor, int]]) -> Batch:
    """Stack (side, side, 3) images into an (N, 3, side, side) channels-last uint8 batch."""
    images, labels = default_collate(batch)
    return images.permute(0, 3, 1, 2), labels


def collate_normalized(batch: list[tuple[torch.Tensor, int]]) -> Batch:
    """Stack (side, side, 3) uint8 images into a normalized float32 channels-last batch."""
    images, labels = collate_channels_last(batch)
    return BatchTransform(augment=False)(images), labels

"""The prepared-data cache: images decoded once, keyed by their content and the settings,
built by one process of many, published next to an S3 source for every other node."""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from data.trees import upright_photo, write_sideways_jpeg
from omegaconf import OmegaConf
from PIL import Image

import inat
from inat.data import build_dataloaders
from inat.data.batch_transform import normalize
from inat.data.shards import INDEX, PreparedImages, decode_resized, read_index

CLASSES = ("Aves", "Fungi", "Plantae")


def _write_jpegs(root: Path, train: int = 8, test: int = 3) -> Path:
    """root/{train,val}/<class>/*.jpg: noisy 96x72 photos, a colour per class."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", test)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (72, 96, 3)) // 2 + 40 * label
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)
    return root


def _data_cfg(source: Any, cache: Path, **overrides: Any) -> dict[str, Any]:
    """The repo's data config for the 3-class tree at 32 px, read in the test process."""
    base = OmegaConf.to_container(
        OmegaConf.load(Path(inat.__file__).parent / "configs" / "data" / "nature12k.yaml")
    )
    return {
        **base,
        "source": str(source),
        "cache_dir": str(cache),
        "image_size": 32,
        "batch_size": 8,
        "num_workers": 0,
        "num_classes": len(CLASSES),
        **overrides,
    }


def _entry(loaders) -> Path:
    return loaders.train.dataset.folder


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    index = read_index(folder)
    return {
        shard["name"]: np.load(folder / shard["name"])
        for split in index["splits"].values()
        for shard in split["shards"]
    }


def _in_processes(n: int, work: Callable[[int], str]) -> list[str]:
    """`work(i)` for i in range(n), each in its own process, all at once (forked)."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()

    def run(i: int) -> None:
        try:
            results.put((i, work(i)))
        except BaseException as e:
            results.put((i, f"failed: {type(e).__name__}: {e}"))
            raise

    processes = [context.Process(target=run, args=(i,)) for i in range(n)]
    for process in processes:
        process.start()
    answers = dict(results.get(timeout=300) for _ in processes)
    for process in processes:
        process.join(timeout=60)
    return [answers[i] for i in range(n)]


def test_same_split_and_pixels_as_the_per_image_pipeline(tmp_path: Path) -> None:
    source = _write_jpegs(tmp_path / "set")
    prepared = build_dataloaders(_data_cfg(source, tmp_path / "cache"), seed=0)
    images = build_dataloaders(_data_cfg(source, tmp_path / "cache", pipeline="images"), seed=0)
    for a, b in zip(
        (prepared.train, prepared.val, prepared.test),
        (images.train, images.val, images.test),
        strict=True,
    ):
        assert a.dataset.samples == b.dataset.samples

    # Training batches: uint8 for the device, the same order; normalized there.
    raw, labels = next(iter(prepared.train))
    reference, reference_labels = next(iter(images.train))
    assert raw.dtype == torch.uint8 and raw.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(labels, reference_labels)
    model_input = prepared.train_transform(raw)
    # Draft-mode decoding: close, not equal (about 3 of 255 on these noise images, the worst case).
    assert (model_input - reference).abs().mean() < 0.07
    # Evaluation batches: model input straight from the loader.
    val, _ = next(iter(prepared.val))
    assert val.dtype == torch.float32 and val.is_contiguous(memory_format=torch.channels_last)
    assert (val - next(iter(images.val))[0]).abs().mean() < 0.07

    entry = _entry(prepared)
    assert entry.parent == tmp_path / "cache"  # the node's cache: nothing beside the source
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "set"]
    path = "Fungi/1.jpg"
    position = read_index(entry)["splits"]["train"]["files"].index(path)
    shard = np.load(entry / "train-00000.npy")
    assert np.array_equal(shard[position], decode_resized(source / "train" / path, 32))


def test_a_photo_saved_sideways_is_prepared_upright(tmp_path: Path) -> None:
    source = _write_jpegs(tmp_path / "set")
    write_sideways_jpeg(source / "train" / "Aves" / "phone.jpg")
    entry = _entry(build_dataloaders(_data_cfg(source, tmp_path / "cache"), seed=0))
    position = read_index(entry)["splits"]["train"]["files"].index("Aves/phone.jpg")
    prepared = np.load(entry / "train-00000.npy")[position].astype(int)
    upright_photo().save(tmp_path / "upright.png")
    upright = decode_resized(tmp_path / "upright.png", 32)
    assert np.abs(prepared - upright).mean() < 2  # JPEG's loss only
    assert np.abs(prepared[1, 1] - (220, 20, 20)).max() < 30  # the red corner at the top left
    assert np.abs(prepared[30, 1] - 128).max() < 30  # not at the bottom left


def test_a_second_run_reuses_the_entry_and_changes_get_their_own(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    source = _write_jpegs(tmp_path / "set")
    cfg = _data_cfg(source, tmp_path / "cache")
    first = _entry(build_dataloaders(cfg, seed=0))
    written = (first / INDEX).stat().st_mtime_ns
    caplog.clear()
    assert _entry(build_dataloaders(cfg, seed=1)) == first
    assert (first / INDEX).stat().st_mtime_ns == written
    assert "using cached" in caplog.text and "images/s" not in caplog.text

    # Another image size, changed pixels: new entries. The same images elsewhere: the same key.
    assert _entry(build_dataloaders({**cfg, "image_size": 40}, seed=0)).name != first.name
    copy = shutil.copytree(source, tmp_path / "copy")
    assert _entry(build_dataloaders({**cfg, "source": str(copy)}, seed=0)).name == first.name
    Image.new("RGB", (96, 72), (1, 2, 3)).save(copy / "train" / "Aves" / "0.jpg")
    assert _entry(build_dataloaders({**cfg, "source": str(copy)}, seed=0)).name != first.name


def test_an_image_that_fails_to_decode_is_replaced_by_the_next(tmp_path: Path) -> None:
    source = _write_jpegs(tmp_path / "set")
    broken = source / "train" / "Aves" / "3.jpg"
    broken.write_bytes(broken.read_bytes()[:1000])  # a valid header, truncated pixels
    loaders = build_dataloaders(_data_cfg(source, tmp_path / "cache"), seed=0)
    entry = _entry(loaders)
    assert read_index(entry)["splits"]["train"]["failed"] == ["Aves/3.jpg"]
    samples = [("Aves/2.jpg", 0), ("Aves/3.jpg", 0), ("Fungi/0.jpg", 1)]
    dataset = PreparedImages(entry, "train", samples)
    broken_image, label = dataset[1]
    next_image, next_label = dataset[2]
    assert torch.equal(broken_image, next_image) and label == next_label == 1


def test_a_shared_prepared_dir_is_used_in_place_or_the_cache_dir_if_unwritable(
    tmp_path,
) -> None:
    source = _write_jpegs(tmp_path / "set")
    shared = tmp_path / "shared" / "prepared"
    loaders = build_dataloaders(
        _data_cfg(source, tmp_path / "cache", prepared_dir=str(shared)), seed=0
    )
    assert _entry(loaders).parent == shared
    (tmp_path / "blocked").write_text("a file where the folder would go")
    blocked = _data_cfg(source, tmp_path / "cache", prepared_dir=str(tmp_path / "blocked"))
    assert _entry(build_dataloaders(blocked, seed=0)).parent == tmp_path / "cache"


def test_eight_processes_preparing_at_once_make_one_intact_copy(tmp_path: Path) -> None:
    source = _write_jpegs(tmp_path / "set", train=20)
    cfg = _data_cfg(source, tmp_path / "cache", prepared_dir=str(tmp_path / "shared"))

    def work(_: int) -> str:
        entry = _entry(build_dataloaders(cfg, seed=0))
        return f"{entry} {(entry / INDEX).stat().st_ino}"

    answers = _in_processes(8, work)
    assert len(set(answers)) == 1, answers  # one folder, one index: built once
    siblings = sorted(p.name for p in (tmp_path / "shared").iterdir())
    entry = Path(answers[0].split()[0])
    assert siblings == [entry.name, f"{entry.name}.lock"]  # no leftovers
    for name, array in _arrays(entry).items():
        split = name.split("-")[0]
        files = read_index(entry)["splits"][split]["files"]
        expected = [decode_resized(source / split / relpath, 32) for relpath in files]
        assert np.array_equal(array, np.stack(expected)), name


def _upload(s3_client, bucket: str, folder: Path, prefix: str) -> str:
    for path in sorted(folder.rglob("*.jpg")):
        key = f"{prefix}/{path.relative_to(folder).as_posix()}"
        s3_client.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{prefix}"


def _published(s3_client, bucket: str, prefix: str) -> tuple[dict, set[str]]:
    """The published index under `prefix` and the keys of every object there."""
    keys = {
        item["Key"]
        for page in s3_client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        )
        for item in page.get("Contents", [])
    }
    (index_key,) = [key for key in keys if key.endswith(f"/{INDEX}")]
    body = s3_client.get_object(Bucket=bucket, Key=index_key)["Body"].read()
    return json.loads(body), keys


@pytest.mark.slow
def test_an_s3_source_is_prepared_once_then_copied_by_other_nodes(
    tmp_path: Path, s3_client, s3_bucket: str, caplog
) -> None:
    caplog.set_level(logging.INFO)
    source = _upload(s3_client, s3_bucket, _write_jpegs(tmp_path / "set"), "data/set")
    shared = {"prepared_dir": f"s3://{s3_bucket}/data/set.prepared"}
    first = _entry(build_dataloaders(_data_cfg(source, tmp_path / "node1", **shared), seed=0))
    assert first.parent == tmp_path / "node1"
    index, keys = _published(s3_client, s3_bucket, "data/set.prepared/")
    assert f"data/set.prepared/{first.name}/{INDEX}" in keys
    for shard in index["splits"]["train"]["shards"] + index["splits"]["val"]["shards"]:
        assert f"data/set.prepared/{first.name}/{index['files_in']}/{shard['name']}" in keys

    caplog.clear()
    second = _entry(build_dataloaders(_data_cfg(source, tmp_path / "node2", **shared), seed=0))
    assert second.name == first.name and second.parent == tmp_path / "node2"
    assert "copying prepared images from" in caplog.text
    assert "images/s" not in caplog.text  # nothing decoded on the second node
    first_arrays, second_arrays = _arrays(first), _arrays(second)
    assert first_arrays.keys() == second_arrays.keys()
    assert all(np.array_equal(first_arrays[k], second_arrays[k]) for k in first_arrays)


@pytest.mark.slow
def test_eight_nodes_preparing_an_s3_source_at_once_publish_one_complete_copy(
    tmp_path: Path, s3_client, s3_bucket: str
) -> None:
    source = _upload(s3_client, s3_bucket, _write_jpegs(tmp_path / "set"), "data/set")
    shared = {"prepared_dir": f"s3://{s3_bucket}/data/set.prepared"}

    def work(i: int) -> str:
        cfg = _data_cfg(source, tmp_path / f"node{i}", **shared)
        entry = _entry(build_dataloaders(cfg, seed=0))
        return str(entry)

    entries = [Path(answer) for answer in _in_processes(8, work)]
    assert all(entry.is_dir() for entry in entries), entries
    index, _ = _published(s3_client, s3_bucket, "data/set.prepared/")
    published = f"data/set.prepared/{entries[0].name}/{index['files_in']}"
    for split in index["splits"].values():
        for shard in split["shards"]:
            head = s3_client.head_object(Bucket=s3_bucket, Key=f"{published}/{shard['name']}")
            assert head["ContentLength"] == shard["bytes"]
    reference = _arrays(entries[0])
    for entry in entries[1:]:
        arrays = _arrays(entry)
        assert all(np.array_equal(reference[k], arrays[k]) for k in reference)


def test_normalized_evaluation_batches_are_the_training_transform_without_augmentation(
    tmp_path: Path,
) -> None:
    source = _write_jpegs(tmp_path / "set")
    loaders = build_dataloaders(_data_cfg(source, tmp_path / "cache", augment=True), seed=0)
    dataset = loaders.val.dataset
    raw = torch.stack([dataset[i][0] for i in range(3)]).permute(0, 3, 1, 2)
    val, _ = next(iter(loaders.val))
    torch.testing.assert_close(val[:3], normalize(raw))

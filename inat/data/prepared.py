"""The prepared-data cache: a data set's images decoded and resized once, for every run after.

An entry (the files of inat.data.shards) is keyed by the data set's content hash and the
preparation settings (image side, shard format): changed images or another
data.image_size get their own entry, and a copy of the same images anywhere finds it.
Where entries live (nothing is written beside the data set):

  data.prepared_dir null         the cache dir (data.cache_dir), for the runs of this node
  data.prepared_dir s3://...     published to <prepared_dir>/<key>/ by the first node that
                                 prepares it, and copied once per node into the cache dir
  data.prepared_dir a folder     <prepared_dir>/<key>/, used in place (a shared file system:
                                 every node's runs read one copy)

Each folder of entries is managed by inat.data.cache.cached_entry: one process builds an
entry, under a file lock, and it appears complete or not at all.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from inat.data.cache import cache_key, cached_entry
from inat.data.shards import FORMAT, INDEX, read_index, write_index, write_shards
from inat.data.workers import usable_cpus
from inat.secrets import redact
from inat.storage import S3Settings, Storage, atomic_write, is_s3, open_storage

log = logging.getLogger(__name__)

_IO_THREADS = 8  # hashing and S3 transfers wait on storage, not on the CPU
_WRITER = "files_in"  # index key: the folder of the published copy that holds its shards


def content_hash(root: Path, relpaths: Sequence[str], memo_dir: Path) -> str:
    """A hash of the files `relpaths` below `root`: their paths and their bytes.

    Reading every byte of nature_12K (3.6 GB) takes seconds, so the hash is remembered in
    memo_dir/content-hashes/ under a fingerprint of the folder and the files' paths, sizes
    and modification times: a later run on the same files reads only their metadata.
    """
    fingerprint = hashlib.sha256(f"{root.resolve()}\n".encode())
    for relpath in relpaths:
        stat = (root / relpath).stat()
        fingerprint.update(f"{relpath}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    memo = memo_dir / "content-hashes" / fingerprint.hexdigest()[:32]
    if memo.is_file():
        return memo.read_text().strip()
    with ThreadPoolExecutor(max_workers=_IO_THREADS) as pool:
        digests = pool.map(lambda r: hashlib.sha256((root / r).read_bytes()).hexdigest(), relpaths)
        content = hashlib.sha256()
        for relpath, digest in zip(relpaths, digests, strict=True):
            content.update(f"{relpath}\0{digest}\n".encode())
    result = content.hexdigest()
    try:
        atomic_write(memo, lambda tmp: tmp.write_text(result + "\n"))
    except OSError as e:
        log.warning("cannot remember the content hash of %s in %s: %s", root, memo, e)
    return result


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            return True
    except OSError:
        return False


def _places(
    prepared_dir: str | None, cache_dir: Path, settings: S3Settings | None
) -> tuple[Path, Storage | None]:
    """(the local folder of the entries, the storage they are published to), for
    data.prepared_dir; see the module docstring."""
    if prepared_dir is None:
        return cache_dir, None
    if is_s3(prepared_dir):
        return cache_dir, open_storage(prepared_dir.rstrip("/"), settings)
    folder = Path(prepared_dir).expanduser().resolve()
    if _writable(folder):
        return folder, None
    log.warning(
        "cannot write data.prepared_dir=%s; keeping prepared images in %s instead",
        folder,
        cache_dir,
    )
    return cache_dir, None


def _published(shared: Storage) -> dict[str, Any] | None:
    """The index of the complete copy published in `shared`, or None."""
    if not shared.exists(INDEX):
        return None
    index = shared.read_json(INDEX)
    for split in index["splits"].values():
        for shard in split["shards"]:
            relpath = f"{index[_WRITER]}/{shard['name']}"
            try:
                if shared.size(relpath) != shard["bytes"]:
                    raise FileNotFoundError(relpath)
            except FileNotFoundError:
                log.warning("%s lacks %s; preparing the images again", shared.uri, relpath)
                return None
    return index


def _shard_names(index: Mapping[str, Any]) -> list[str]:
    return [shard["name"] for split in index["splits"].values() for shard in split["shards"]]


def _fetch(shared: Storage, dest: Path) -> bool:
    """Copy the copy published in `shared` into `dest`; False if there is none."""
    index = _published(shared)
    if index is None:
        return False
    writer = index.pop(_WRITER)
    log.info("copying prepared images from %s to %s", shared.uri, dest)
    with ThreadPoolExecutor(max_workers=_IO_THREADS) as pool:
        names = _shard_names(index)
        list(pool.map(lambda name: shared.download_file(f"{writer}/{name}", dest / name), names))
    write_index(dest, index)
    return True


def _publish(folder: Path, shared: Storage) -> None:
    """Upload the entry in `folder` to `shared`, unless a complete copy is there already.

    The shards go to a folder of this writer's own and the index naming it is written
    last, so a reader who finds an index finds all it names, and two nodes publishing
    at the same time each leave a complete copy (the last index wins).
    """
    if _published(shared) is not None:
        return
    writer = uuid.uuid4().hex[:12]
    index = read_index(folder)
    log.info("publishing prepared images to %s for other nodes and runs", shared.uri)
    with ThreadPoolExecutor(max_workers=_IO_THREADS) as pool:
        names = _shard_names(index)
        list(pool.map(lambda name: shared.upload_file(folder / name, f"{writer}/{name}"), names))
    shared.write_json(INDEX, {**index, _WRITER: writer})


def prepare(
    source: str,
    root: Path,
    files: Mapping[str, Sequence[str]],
    side: int,
    cache_dir: Path,
    prepared_dir: str | None = None,
    settings: S3Settings | None = None,
) -> Path:
    """The folder of the prepared images of `files` (split -> paths relative to root/split).

    `root` is where resolve_source(`source`) put the data set. The entry is found in place,
    copied from where `prepared_dir` publishes entries, or built (and published);
    `settings` are the storage settings of an s3:// `prepared_dir`.
    """
    relpaths = [f"{split}/{relpath}" for split, names in files.items() for relpath in names]
    content = content_hash(root, relpaths, cache_dir)
    key = cache_key("prepared", f"{side}px", f"format={FORMAT} side={side} content={content}")
    folder, shared = _places(prepared_dir, cache_dir, settings)
    published = shared.child(key) if shared is not None else None

    def build(tmp: Path) -> None:
        if published is not None and _fetch(published, tmp):
            return
        write_shards(tmp, root, files, side, threads=usable_cpus())
        if published is not None:
            _publish(tmp, published)

    return cached_entry(folder, key, build, f"{redact(source)} as {side} px uint8 images")

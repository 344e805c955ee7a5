"""Make a data source available as a local folder holding train/ and val/.

Sources: "synthetic", a local .zip, an extracted folder (used in place), an
http(s) URL of a zip, an s3:// URI of a zip or of a prefix holding an extracted tree.
Everything but a local folder is prepared once in the cache (see inat.data.cache).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from inat.data.cache import cache_folder, cache_key, cached_entry
from inat.data.download import download
from inat.data.extract import extract_zip, is_junk, safe_relpath
from inat.data.layout import find_root
from inat.data.synthetic import SyntheticSpec, generate
from inat.errors import DataError
from inat.secrets import redact
from inat.storage import S3Settings, Storage, is_s3, open_storage

log = logging.getLogger(__name__)

DEFAULT_URL = "https://storage.googleapis.com/wandb_datasets/nature_12K.zip"
SYNTHETIC = "synthetic"


def resolve_source(
    source: str,
    cache_dir: str | Path | None = None,
    synthetic: Mapping[str, Any] | None = None,
    settings: S3Settings | None = None,
) -> Path:
    """Make the data set available locally; return the root folder that holds train/ and val/.

    `cache_dir` defaults to default_cache_dir(); `synthetic` is the data config's
    `synthetic` group, read only when `source` is "synthetic"; `settings` are the storage
    settings of an s3:// source.
    """
    source = str(source)
    cache = cache_folder(cache_dir)
    if source == SYNTHETIC:
        spec = SyntheticSpec.from_mapping(synthetic)
        key = cache_key("synthetic", f"side{spec.image_side}", spec.identity())
        return cached_entry(cache, key, lambda tmp: generate(tmp, spec), f"synthetic ({spec})")
    if source.startswith(("http://", "https://")):
        return _from_url(source, cache)
    if is_s3(source):
        uri = source.rstrip("/")
        if uri.lower().endswith(".zip"):
            parent, name = uri.rsplit("/", 1)
            return from_storage_zip(open_storage(parent, settings), name, source, cache)
        return from_storage_tree(open_storage(uri, settings), source, cache)
    path = Path(source).expanduser()
    if path.is_dir():
        root = find_root(path)
        log.info("using the data set folder %s in place", root)
        return root
    if path.is_file():
        stat = path.stat()
        key = cache_key("zip", path.stem, f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}")
        return _archive_entry(cache, key, source, lambda: path, keep_archive=True)
    raise DataError(
        f"data source {redact(source)!r} is not an existing file or folder, an http(s) URL, "
        f"an s3:// URI or 'synthetic'. Set data.source, e.g. data.source={DEFAULT_URL}."
    )


def check_source(source: str, settings: S3Settings | None = None) -> None:
    """Fail at once, before training starts, if a local or s3:// data source cannot be read.

    URLs and "synthetic" are checked when they are fetched or made; `settings` are the
    storage settings of an s3:// source.
    """
    source = str(source)
    if source == SYNTHETIC or source.startswith(("http://", "https://")):
        return
    if is_s3(source):
        uri = source.rstrip("/")
        if uri.lower().endswith(".zip"):
            parent, name = uri.rsplit("/", 1)
            open_storage(parent, settings).check_readable(name)
        else:
            open_storage(uri, settings).check_readable()
        return
    if not Path(source).expanduser().exists():
        raise DataError(
            f"data source {source!r} does not exist. Set data.source to a .zip, an extracted "
            "folder, an http(s) URL, an s3:// URI or 'synthetic'."
        )


def from_storage_zip(storage: Storage, name: str, source: str, cache: Path) -> Path:
    """The data set in the zip file `name` of `storage`; `source` is its URI."""
    try:
        size = storage.size(name)
    except FileNotFoundError as e:
        raise DataError(f"{source} does not exist. Check data.source.") from e
    key = cache_key("s3", PurePosixPath(name).stem, f"{source}|{size}")
    archive = cache / "downloads" / f"{key}.zip"

    def fetch() -> Path:
        if not (archive.is_file() and archive.stat().st_size == size):
            log.info("downloading %s (%.1f MB) to %s", source, size / 1e6, archive)
            archive.parent.mkdir(parents=True, exist_ok=True)
            storage.download_file(name, archive)
        return archive

    return _archive_entry(cache, key, source, fetch, keep_archive=False)


def from_storage_tree(storage: Storage, source: str, cache: Path) -> Path:
    """The data set held as separate files below `storage`; `source` is its URI."""
    relpaths = [safe_relpath(f, source) for f in storage.list()]
    relpaths = [p for p in relpaths if p.parts and not is_junk(p)]
    if not relpaths:
        raise DataError(
            f"found no files under {source}. Check data.source: an s3:// URI of nature_12K.zip "
            "or of a prefix holding train/ and val/."
        )
    # Listing is cheap and names every file: a tree changed by adding or removing files gets
    # a new cache entry (a file replaced under the same name does not).
    listing = "\n".join(p.as_posix() for p in relpaths)
    key = cache_key("s3", PurePosixPath(source.rstrip("/")).name, f"{source}\n{listing}")

    def build(tmp: Path) -> None:
        log.info("copying %d files of %s to %s", len(relpaths), source, tmp)
        copied = itertools.count(1)
        every = max(1, len(relpaths) // 10)

        def fetch(relpath: PurePosixPath) -> None:
            storage.download_file(relpath.as_posix(), tmp.joinpath(*relpath.parts))
            if (n := next(copied)) % every == 0:
                log.info("copied %d of %d files of %s", n, len(relpaths), source)

        # Threads: copying thousands of small objects is bound by request latency.
        pool = ThreadPoolExecutor(max_workers=8)
        try:
            list(pool.map(fetch, relpaths))
        finally:
            pool.shutdown(cancel_futures=True)
        find_root(tmp, source)

    return find_root(cached_entry(cache, key, build, source))


def _from_url(url: str, cache: Path) -> Path:
    # The entry is named and keyed without the URL's credentials: they reach no file.
    shown = redact(url)
    name = PurePosixPath(urlsplit(url).path).stem or "download"
    key = cache_key("url", name, shown)
    archive = cache / "downloads" / f"{key}.zip"
    return _archive_entry(cache, key, shown, lambda: download(url, archive), keep_archive=False)


def _archive_entry(
    cache: Path, key: str, source: str, fetch: Callable[[], Path], keep_archive: bool
) -> Path:
    """The extracted zip that `fetch()` provides, from the cache entry `key`.

    Unless `keep_archive`, the archive is a download of ours and is deleted once
    extracted or found broken: the extracted tree is what counts, and a broken
    download must not be used again.
    """

    def build(tmp: Path) -> None:
        archive = fetch()
        try:
            extract_zip(archive, tmp)
            find_root(tmp, source)
        finally:
            if not keep_archive:
                archive.unlink(missing_ok=True)

    return find_root(cached_entry(cache, key, build, source))


def download_command(source: str = DEFAULT_URL, cache_dir: str | Path | None = None) -> Path:
    """`inat data download`: prepare `source` in the cache and print the folder that holds it.

    Only the path goes to stdout, so scripts can use it as data.source.
    """
    root = resolve_source(source, cache_dir)
    print(root)
    return root

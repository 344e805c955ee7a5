"""Download a zip archive over HTTP(S): resumable, verified, retried."""

from __future__ import annotations

import contextlib
import logging
import re
import time
import zipfile
from pathlib import Path

import requests

from inat.errors import DataError, TransientError
from inat.progress import TransferProgress
from inat.secrets import redact

log = logging.getLogger(__name__)

# A cut connection loses the chunk being read (urllib3 raises before returning it): keep it small.
CHUNK_BYTES = 1 << 16
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")
_ZIP_START = b"PK\x03\x04"  # the signature of a zip's first entry


class _Retry(Exception):
    """This attempt failed in a way the next one may not."""


def download(
    url: str,
    dest: Path,
    *,
    attempts: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
) -> Path:
    """Download `url` to `dest` and return `dest`.

    Bytes go to `dest.part` first; a later attempt (or a later run) resumes it
    with a Range request, or starts over when the server answers 200. `dest`
    appears only once its size matches what the server announced or, where it
    announced none, once it ends like a zip archive. Connection errors, cuts and 5xx
    answers are retried `attempts` times in all, waiting `backoff` seconds and twice
    as long each time after; then TransientError. Messages show the URL without
    its credentials.
    """
    shown = redact(url)
    if dest.is_file():
        log.info("using %s, downloaded earlier", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, attempts + 1):
        try:
            _fetch(url, shown, part, timeout)
        except (
            _Retry,
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as e:
            error = e
        except requests.RequestException as e:  # a bad URL, a redirect loop, ...: not transient
            raise DataError(f"cannot download {shown}: {redact(str(e))}. Check data.source.") from e
        else:
            part.replace(dest)
            return dest
        if attempt < attempts:
            delay = min(backoff * 2 ** (attempt - 1), 300.0)
            log.warning(
                "download of %s failed (attempt %d of %d): %s; retrying in %.0f s",
                shown,
                attempt,
                attempts,
                redact(str(error)),
                delay,
            )
            time.sleep(delay)
    raise TransientError(
        f"download of {shown} failed {attempts} times, last: {redact(str(error))}. "
        "Check the network connection and that the server is up, then run again: "
        f"the download resumes from {part} where the server allows it."
    )


def _fetch(url: str, shown: str, part: Path, timeout: float) -> None:
    """One attempt: append the rest of `url` (`shown` in messages) to `part`; raise _Retry if
    it is not all there."""
    offset = part.stat().st_size if part.is_file() else 0
    # "identity": the announced length must be the length of the file we store.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
        status = response.status_code
        if status == 416 and offset:
            part.unlink()
            raise _Retry(f"the server cannot resume from byte {offset}; starting over")
        if status in RETRY_STATUS:
            raise _Retry(f"HTTP {status} {response.reason}")
        if status not in (200, 206):
            raise DataError(
                f"cannot download {shown}: HTTP {status} {response.reason}. "
                "Check the URL in data.source, or use a local copy (a .zip path or a folder)."
            )
        if status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if match is None or int(match[1]) != offset:
                part.unlink()
                raise _Retry("the server resumed at the wrong place; starting over")
            total = None if match[2] == "*" else int(match[2])
            mode = "ab"
        else:
            if offset:
                log.info(
                    "the server does not resume downloads; downloading %s from the start", shown
                )
                offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
            mode = "wb"
        if total is None:
            log.warning(
                "%s announces no size: only the end of the zip archive shows it whole", shown
            )
            progress = contextlib.nullcontext(lambda _: None)
        else:
            resuming = f" from byte {offset}" if offset else ""
            progress = TransferProgress(f"download {shown}{resuming}", total - offset)
        with open(part, mode) as f, progress as counted:
            for chunk in response.iter_content(CHUNK_BYTES):
                f.write(chunk)
                counted(len(chunk))
    size = part.stat().st_size
    if total is None and _cut_zip(part):
        # Without a length, a cut connection looks like the end of the body.
        raise _Retry(f"the connection closed after {size} bytes, before the end of the zip")
    if total is not None and size != total:
        if size > total:
            part.unlink()
        raise _Retry(f"got {size} bytes of {total}")


def _cut_zip(path: Path) -> bool:
    """Whether `path` starts like a zip archive (or is empty) but lacks the directory at the
    end of one: what a download cut short holds. Anything else is judged by extraction."""
    with open(path, "rb") as f:
        head = f.read(len(_ZIP_START))
    return _ZIP_START.startswith(head) and not zipfile.is_zipfile(path)

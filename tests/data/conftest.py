"""Fixtures of the data tests: an image tree, a real HTTP server, the data config."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

import inat

from .trees import write_tree


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small valid data set folder: 3 classes, 6 training and 2 test images each."""
    return write_tree(tmp_path / "tree")


@pytest.fixture
def data_cfg(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """The repo's data config (configs/data/nature12k.yaml) with overrides; caches in tmp_path."""
    base = OmegaConf.to_container(
        OmegaConf.load(Path(inat.__file__).parent / "configs" / "data" / "nature12k.yaml")
    )

    def make(**overrides: Any) -> dict[str, Any]:
        return {**base, "cache_dir": str(tmp_path / "cache"), "num_workers": 0, **overrides}

    return make


class FileServer(ThreadingHTTPServer):
    """Serves `files` (path -> bytes) over HTTP/1.0 on 127.0.0.1, misbehaving on request.

    `cuts`: for the next responses, how many body bytes to send before dropping the
    connection. `announce_length`: send Content-Length (else the body ends where the
    connection closes, and a 206 names no total). `statuses`: error statuses to answer
    the next requests with. `honour_range`: answer Range requests with 206 (else 200).
    `stall`: send half of the body, set `stalled`, then wait for `resume` before sending
    the rest (a slow download that a test can act in the middle of).
    Every request's Range header (or None) is appended to `ranges`.
    """

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.cuts: list[int] = []
        self.statuses: list[int] = []
        self.honour_range = True
        self.announce_length = True
        self.ranges: list[str | None] = []
        self.stall = False
        self.stalled = threading.Event()
        self.resume = threading.Event()

    def url(self, path: str) -> str:
        """The URL of `path` on this server."""
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:
        server = self.server
        requested = self.headers.get("Range")
        server.ranges.append(requested)
        if server.statuses:
            self.send_error(server.statuses.pop(0))
            return
        if self.path not in server.files:
            self.send_error(404)
            return
        body = server.files[self.path]
        start = 0
        if requested and server.honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", requested)[1])
            if start >= len(body):
                self.send_error(416)
                return
            total = len(body) if server.announce_length else "*"
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{total}")
        else:
            self.send_response(200)
        if server.announce_length:
            self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if server.cuts:
            payload = payload[: server.cuts.pop(0)]
        if server.stall:
            half = len(payload) // 2
            self.wfile.write(payload[:half])
            self.wfile.flush()
            server.stalled.set()
            server.resume.wait(timeout=60)
            payload = payload[half:]
        with suppress(OSError):  # the client may have gone meanwhile
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[FileServer]:
    """A real HTTP server on 127.0.0.1, serving from a thread for the test's duration."""
    server = FileServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.resume.set()
    server.shutdown()
    server.server_close()
    thread.join()

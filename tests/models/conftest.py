"""The repo's model configs, composed through the typed schema, and models built from them
with overrides per test; a minimal Hugging Face Hub for timm's pretrained weights."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from inat.compose import compose
from inat.models import FineTuneModel, ScratchCNN


def load_model_config(name: str) -> DictConfig:
    """The model group of `inat train model=<name>`, composed and validated."""
    return compose([f"model={name}"]).model


def config_kwargs(name: str) -> dict[str, Any]:
    """The keyword arguments the config gives its model."""
    kwargs = OmegaConf.to_container(load_model_config(name))
    del kwargs["_target_"]
    return kwargs


@pytest.fixture
def model_config() -> Callable[[str], DictConfig]:
    """Load a model config by name."""
    return load_model_config


@pytest.fixture
def make_scratch() -> Callable[..., ScratchCNN]:
    """Build a ScratchCNN from scratch_cnn.yaml for 10 classes at 64 px, with overrides."""
    defaults = {**config_kwargs("scratch_cnn"), "num_classes": 10, "image_size": 64}
    return lambda **overrides: ScratchCNN(**{**defaults, **overrides})


@pytest.fixture
def make_finetune() -> Callable[..., FineTuneModel]:
    """Build a random-init FineTuneModel from finetune.yaml at 64 px, with overrides.

    The backbone is resnet18 unless overridden: the quickest to build.
    """
    defaults = {
        **config_kwargs("finetune"),
        "backbone": "resnet18",
        "weights": None,
        "num_classes": 10,
        "image_size": 64,
    }
    return lambda **overrides: FineTuneModel(**{**defaults, **overrides})


# -- a minimal Hugging Face Hub on 127.0.0.1, for timm's pretrained weights

HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"  # the revision every file is at


class _HubHandler(BaseHTTPRequestHandler):
    """Answers hf_hub_download's HEAD and GET of {repo_id}/resolve/{revision}/{filename}
    with the headers it needs: ETag, X-Repo-Commit and Content-Length."""

    server: _HubServer

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def _answer(self, with_body: bool) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        match = re.fullmatch(r"/(?P<repo>[^/]+/[^/]+)/resolve/[^/]+/(?P<file>.+)", self.path)
        content = self.server.files.get(f"{match['repo']}/{match['file']}") if match else None
        if content is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Repo-Commit", HUB_COMMIT)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", f'"{hashlib.sha256(content).hexdigest()}"')
        self.send_header("X-Repo-Commit", HUB_COMMIT)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if with_body:
            self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test reads `requests`


class _HubServer(ThreadingHTTPServer):
    files: dict[str, bytes]  # "{repo_id}/{filename}" -> its content
    requests: list[str]  # "HEAD /repo/..." as they came


@dataclass
class Hub:
    """The hub's address (HF_ENDPOINT) and what it serves and was asked."""

    url: str
    server: _HubServer

    def serve(self, repo_id: str, filename: str, content: bytes) -> None:
        """Serve `content` as `filename` of the repository `repo_id`."""
        self.server.files[f"{repo_id}/{filename}"] = content

    @property
    def requests(self) -> list[str]:
        return self.server.requests


@pytest.fixture
def hub() -> Iterator[Hub]:
    """A Hugging Face Hub serving the files a test gives it, until the test ends."""
    server = _HubServer(("127.0.0.1", 0), _HubHandler)
    server.files, server.requests = {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Hub(f"http://127.0.0.1:{server.server_address[1]}", server)
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def hub_env(tmp_path: Path) -> Callable[[str], dict[str, str]]:
    """The environment of an inat process whose Hugging Face Hub is at the URL it is given,
    with empty caches of its own (in tmp_path) and no proxy between them."""

    def env(endpoint: str) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        return inherited | {
            "HF_ENDPOINT": endpoint,
            "HF_HOME": str(tmp_path / "hf-home"),
            "TORCH_HOME": str(tmp_path / "torch-home"),
            "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1",
            "WANDB_MODE": "disabled",
        }

    return env


@pytest.fixture
def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

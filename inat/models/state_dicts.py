"""State-dict files of pretrained weights: read, written, checked against their sha256 record.

A file is a local path or an s3:// URI; one whose name ends in `.safetensors` is read and
written with safetensors, any other with torch (`torch.save(model.state_dict(), path)`,
read with `weights_only=True`). Its checksum record is the file `NAME.sha256` beside it, in
the format `sha256sum` writes and checks (`sha256sum -c NAME.sha256`): the hex digest, two
spaces, the file's name. `inat weights download` writes one; a file read with a record
beside it must match it.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from inat.errors import ConfigError
from inat.storage import S3Settings, is_s3, open_storage

StateDict = dict[str, torch.Tensor]
RECORD_SUFFIX = ".sha256"
_SHOWN = 5  # keys listed per kind of mismatch
_DIGEST = re.compile(r"[0-9a-f]{64}")


def read_state_dict(location: str, settings: S3Settings | None = None) -> StateDict:
    """The state dict in the file `location` (a local path or s3:// URI), read with the
    storage `settings` and checked against its sha256 record where one is beside it."""
    if is_s3(location):
        return _read_s3(location, settings)
    path = Path(location).expanduser()
    record = path.with_name(path.name + RECORD_SUFFIX)
    recorded = record.read_text() if record.is_file() else None
    return _read_file(path, location, recorded)


def write_state_dict(
    state: Mapping[str, torch.Tensor], dest: str, settings: S3Settings | None = None
) -> str:
    """Write `state` to `dest` (a local file or s3:// URI) and its sha256 record beside it;
    return the digest. Each appears whole or not at all: both are written to temporary
    files first, then moved or uploaded."""
    parent, name = _parent_and_name(dest)
    with tempfile.TemporaryDirectory(prefix="inat-weights-") as tmp:
        local = Path(tmp) / name
        if name.endswith(".safetensors"):
            from safetensors.torch import save_file

            # Copies: safetensors refuses tensors that share memory (tied weights).
            save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, local)
        else:
            torch.save(dict(state), local)
        digest = _sha256(local)
        storage = open_storage(parent, settings)
        storage.upload_file(local, name)
        storage.write_text(name + RECORD_SUFFIX, f"{digest}  {name}\n")
    return digest


def load_weights(model: nn.Module, state: StateDict, weights: str, architecture: str) -> None:
    """Load `state` into `model`, an `architecture`, strictly; ConfigError lists what misfits."""
    problems = misfits(model.state_dict(), state)
    if problems:
        raise misfit_error(weights, architecture, problems)
    model.load_state_dict(state)


def misfits(
    expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], shapes: bool = True
) -> list[str]:
    """What keeps `state` from loading strictly where `expected` (a state dict) would: its
    missing and unexpected keys and (with `shapes`) its shape mismatches, a few of each named."""
    problems = [
        _listed("missing keys", sorted(expected.keys() - state.keys())),
        _listed("unexpected keys", sorted(state.keys() - expected.keys())),
    ]
    if shapes:
        mismatched = [
            f"{key} {tuple(state[key].shape)} instead of {tuple(tensor.shape)}"
            for key, tensor in expected.items()
            if key in state and state[key].shape != tensor.shape
        ]
        problems.append(_listed("shape mismatches", mismatched))
    return [p for p in problems if p]


def misfit_error(weights: str, architecture: str, problems: list[str]) -> ConfigError:
    """The error of weights that do not fit `architecture` (see misfits)."""
    return ConfigError(
        f"model.weights={weights!r} does not fit {architecture}: {'; '.join(problems)}. "
        f"Pass the state dict of {architecture} with its ImageNet head "
        f"(`inat weights download {architecture} FILE` writes one)"
    )


def _listed(what: str, items: list[str]) -> str:
    if not items:
        return ""
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"{len(items)} {what} ({', '.join(items[:_SHOWN])}{more})"


def _parent_and_name(location: str) -> tuple[str, str]:
    """The folder (local or s3://) holding the file `location`, and the file's name."""
    if is_s3(location):
        parent, _, name = location.rpartition("/")
        if not name or parent == "s3:/":
            raise ConfigError(f"{location} must name a file: s3://BUCKET/PATH/FILE")
        return parent, name
    path = Path(location).expanduser()
    if path.is_dir():
        raise ConfigError(f"{location} is a folder: name a file in it, e.g. {path}/weights.pth")
    return str(path.parent), path.name


def _read_s3(uri: str, settings: S3Settings | None) -> StateDict:
    parent, name = _parent_and_name(uri)
    storage = open_storage(parent, settings)
    with tempfile.TemporaryDirectory(prefix="inat-weights-") as tmp:
        local = Path(tmp) / name
        try:
            storage.download_file(name, local)
        except FileNotFoundError as e:
            raise ConfigError(f"model.weights={uri!r} does not exist") from e
        record = name + RECORD_SUFFIX
        recorded = storage.read_text(record) if storage.exists(record) else None
        return _read_file(local, uri, recorded)


def _read_file(path: Path, weights: str, recorded: str | None) -> StateDict:
    """The state dict in `path` (model.weights=`weights`), checked against the text of its
    sha256 record where there is one."""
    if recorded is not None:
        _verify(path, weights, recorded)
    try:
        if path.name.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the loaders raise many types for a file that is not a state dict
        raise ConfigError(f"model.weights={weights!r} is not a readable state dict: {e}") from e
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        found = f"a {type(state).__name__}"
        if isinstance(state, Mapping):
            found += f" with keys {list(state)[:_SHOWN]}"
        raise ConfigError(
            f"model.weights={weights!r} holds {found}, not a state dict (parameter name -> "
            "tensor); save one with torch.save(model.state_dict(), path)"
        )
    return dict(state)


def _verify(path: Path, weights: str, recorded: str) -> None:
    record = f"{weights}{RECORD_SUFFIX}"
    expected = recorded.split(maxsplit=1)[0].lower() if recorded.strip() else ""
    if not _DIGEST.fullmatch(expected):
        raise ConfigError(
            f"{record} is not a sha256 record (a hex digest, two spaces, the file's name): "
            f"write it again with `inat weights download NAME {weights}`, or remove it"
        )
    digest = _sha256(path)
    if digest != expected:
        raise ConfigError(
            f"model.weights={weights!r} does not match its checksum record {record} "
            f"(sha256 {digest}, recorded {expected}): the file changed or was damaged after "
            f"it was written. Download it again with `inat weights download NAME {weights}` "
            f"on a machine with internet, or remove {record} if you replaced the file on purpose"
        )


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()

"""Pretrained backbone weights: a torchvision weights name, a state-dict file or an s3:// URI."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from inat.errors import ConfigError, TransientError
from inat.storage import S3Settings, is_s3, open_storage

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

StateDict = dict[str, torch.Tensor]
_SHOWN = 5  # keys listed per kind of mismatch


def read_weights(backbone: str, weights: str, settings: S3Settings | None = None) -> StateDict:
    """The ImageNet state dict (1000-class head included) that `model.weights` names.

    `weights` is a torchvision weights name of `backbone` (DEFAULT, IMAGENET1K_V1, ...),
    downloaded into $TORCH_HOME unless cached there, or a local file or s3:// URI
    of a state dict saved with `torch.save(model.state_dict(), path)`, read with the
    storage `settings`.
    """
    if is_s3(weights):
        return _read_s3(weights, settings)
    from torchvision.models import get_model_weights  # seconds to import: only when needed

    names = get_model_weights(backbone).__members__
    if weights in names:
        return _download(backbone, names[weights])
    path = Path(weights).expanduser()
    if path.is_file():
        return _read_file(path, weights)
    raise ConfigError(
        f"model.weights={weights!r} is neither a torchvision weights name of {backbone} "
        f"({', '.join(names)}) nor an existing file; pass a name, a state-dict file "
        "or an s3:// URI, or null for random initialisation"
    )


def load_weights(model: nn.Module, state: StateDict, weights: str, architecture: str) -> None:
    """Load `state` into `model`, an `architecture`, strictly; ConfigError lists what misfits."""
    expected = model.state_dict()
    problems = [
        _listed("missing keys", sorted(expected.keys() - state.keys())),
        _listed("unexpected keys", sorted(state.keys() - expected.keys())),
        _listed(
            "shape mismatches",
            [
                f"{key} {tuple(state[key].shape)} instead of {tuple(tensor.shape)}"
                for key, tensor in expected.items()
                if key in state and state[key].shape != tensor.shape
            ],
        ),
    ]
    problems = [p for p in problems if p]
    if problems:
        raise ConfigError(
            f"model.weights={weights!r} does not fit {architecture}: {'; '.join(problems)}. "
            f"Pass the state dict of a torchvision {architecture} with its ImageNet head"
        )
    model.load_state_dict(state)


def _listed(what: str, items: list[str]) -> str:
    if not items:
        return ""
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"{len(items)} {what} ({', '.join(items[:_SHOWN])}{more})"


def _download(backbone: str, weights: WeightsEnum) -> StateDict:
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except OSError as e:  # urllib's URLError and socket errors
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise TransientError(
            f"cannot download {weights} for {backbone} from {weights.url}: {e}. "
            "Where there is no internet, pass model.weights=PATH or s3://BUCKET/KEY of its "
            f"state dict instead, or download it once where there is, into {cache} "
            "($TORCH_HOME/hub/checkpoints)"
        ) from e


def _read_s3(uri: str, settings: S3Settings | None) -> StateDict:
    parent, _, name = uri.rpartition("/")
    if not name or parent == "s3:/":
        raise ConfigError(f"model.weights={uri!r} must name a file: s3://BUCKET/PATH/FILE")
    with tempfile.TemporaryDirectory(prefix="inat-weights-") as tmp:
        local = Path(tmp) / name
        try:
            open_storage(parent, settings).download_file(name, local)
        except FileNotFoundError as e:
            raise ConfigError(f"model.weights={uri!r} does not exist") from e
        return _read_file(local, uri)


def _read_file(path: Path, weights: str) -> StateDict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types for a file that is not a state dict
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

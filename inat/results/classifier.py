"""A trained model from a checkpoint: find it, fetch it, rebuild the classifier it holds.

A checkpoint is named by the state.pt file itself (local or s3://), a folder holding one
(what `inat results --download` writes), or a run directory (its best checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from torch import nn

from inat import rundir
from inat.data import resolve_source
from inat.data.layout import find_classes
from inat.errors import ConfigError, DataError, InatError
from inat.models import build_model
from inat.storage import Storage, open_storage
from inat.train.checkpoint import BEST, STATE_FILE, CheckpointManager


@dataclass
class Classifier:
    """A trained model in eval mode on the CPU, with the config and classes it was trained with.

    The weights are the moving average of the run's weights where it kept one
    (trainer.ema_decay): those it validated and tested.
    """

    model: nn.Module
    config: dict[str, Any]
    classes: list[str]
    uri: str  # where its state.pt came from

    @property
    def image_size(self) -> int:
        """The side of the square images the model takes."""
        return self.config["data"]["image_size"]

    @property
    def tta(self) -> str:
        """The test-time augmentation the run tested with (trainer.tta)."""
        return self.config["trainer"].get("tta", "none")

    def data_root(self, source: str, cache_dir: str | None = None) -> Path:
        """The data set folder of `source` (see inat.data.resolve_source), which must have the
        classes the model was trained on; "synthetic" is the checkpoint's own generated data."""
        root = resolve_source(source, cache_dir, self.config["data"].get("synthetic"))
        classes = find_classes(root)
        if classes != self.classes:
            raise DataError(
                f"the data set {source} has the classes {classes}, but the checkpoint was "
                f"trained on {self.classes}: use data with the same class folders"
            )
        return root


def best_checkpoint(run: Storage) -> str:
    """The path of the run's best checkpoint, relative to the run directory."""
    ckpts = CheckpointManager(run.child(rundir.CHECKPOINTS))
    pointer = ckpts.best()
    if pointer is None:
        raise ConfigError(
            f"{run.uri} has no checkpoint yet ({rundir.CHECKPOINTS}/{BEST}): the run has not "
            "finished an epoch"
        )
    return f"{rundir.CHECKPOINTS}/{pointer['path']}"


def locate(uri: str) -> tuple[Storage, str]:
    """The storage holding the checkpoint `uri` names, and the state file's path in it."""
    uri = uri.rstrip("/")
    if uri.endswith(".pt"):
        parent, _, name = uri.rpartition("/")
        return open_storage(parent or "."), name
    storage = open_storage(uri)
    if storage.exists(STATE_FILE):
        return storage, STATE_FILE
    if storage.exists(f"{rundir.CHECKPOINTS}/{BEST}"):
        return storage, best_checkpoint(storage)
    raise ConfigError(
        f"found no checkpoint at {uri}: give a state.pt file, a folder holding one (see "
        "inat results --download) or a run directory with checkpoints/best.json"
    )


_WHICH = "give a state.pt that inat train wrote, a folder holding one or a run directory"


def load_classifier(uri: str) -> Classifier:
    """The classifier stored in the checkpoint `uri` (see locate), ready for inference."""
    storage, path = locate(uri)
    try:
        state = CheckpointManager(storage).load({"path": path})
    except FileNotFoundError:
        raise ConfigError(f"{storage.uri}/{path} does not exist") from None
    except InatError:
        raise
    except Exception as e:  # torch.load raises many kinds for a file that is no checkpoint
        raise DataError(
            f"{storage.uri}/{path} is not a readable checkpoint (torch.load: {e}): {_WHICH}"
        ) from e
    if not isinstance(state, dict) or not {"model", "config", "classes"} <= state.keys():
        raise DataError(
            f"{storage.uri}/{path} is not an inat checkpoint (it lacks model, config or "
            f"classes): {_WHICH}"
        )
    config = state["config"]
    model_cfg = OmegaConf.create(config["model"])
    if "weights" in model_cfg:
        model_cfg.weights = None  # the checkpoint holds every weight: fetch no pretrained ones
    model = build_model(model_cfg, config["data"]["num_classes"], config["data"]["image_size"])
    # The weights the run validated and tested: their moving average where it kept one.
    model.load_state_dict(state["model"] if state.get("ema") is None else state["ema"])
    model.eval()
    return Classifier(model, config, list(state["classes"]), f"{storage.uri}/{path}")


def download(run: Storage, dest: Path) -> list[Path]:
    """Copy the run's best checkpoint and its config.yaml into the local folder `dest`."""
    files = [(best_checkpoint(run), dest / STATE_FILE), (rundir.CONFIG, dest / rundir.CONFIG)]
    for relpath, local in files:
        run.download_file(relpath, local)
    return [local for _, local in files]

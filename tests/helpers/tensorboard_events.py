"""What a run's TensorBoard event files hold, read with TensorBoard's own reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _multiplexer(board: Path) -> Any:
    """An EventMultiplexer loaded with every run (event file folder) below `board`."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(board))
    multiplexer.Reload()
    return multiplexer


def scalars(board: Path) -> dict[str, dict[int, float]]:
    """Every scalar of the event files below `board`: tag -> step -> value."""
    multiplexer = _multiplexer(board)
    found: dict[str, dict[int, float]] = {}
    for run, tags in multiplexer.Runs().items():
        for tag in tags["scalars"]:
            for event in multiplexer.Scalars(run, tag):
                found.setdefault(tag, {})[event.step] = event.value
    return found


def hparams(board: Path) -> dict[str, Any]:
    """The hyperparameters the event files below `board` record (the HPARAMS tab)."""
    from google.protobuf.json_format import MessageToDict
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    found: dict[str, Any] = {}
    for contents in _multiplexer(board).PluginRunToTagToContent(metadata.PLUGIN_NAME).values():
        for content in contents.values():
            start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
            found.update({k: MessageToDict(v) for k, v in start.hparams.items()})
    return found


def texts(board: Path) -> list[str]:
    """Every text the event files below `board` hold besides the hparams: the tags, and
    the strings of their tensors (the TEXT tab's)."""
    from tensorboard.util import tensor_util

    multiplexer = _multiplexer(board)
    found: list[str] = []
    for run, tags in multiplexer.Runs().items():
        found += [*tags["scalars"], *tags["tensors"]]
        for tag in tags["tensors"]:
            for event in multiplexer.Tensors(run, tag):
                values = tensor_util.make_ndarray(event.tensor_proto).flatten().tolist()
                found += [v.decode() for v in values if isinstance(v, bytes)]
    return found


def hparam_metrics(board: Path) -> list[str]:
    """The metrics the HParams table shows (the experiment's metric infos)."""
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    found: list[str] = []
    for contents in _multiplexer(board).PluginRunToTagToContent(metadata.PLUGIN_NAME).values():
        for content in contents.values():
            experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
            found += [info.name.tag for info in experiment.metric_infos]
    return found


def images(board: Path) -> set[str]:
    """The tags of the images the event files below `board` hold."""
    multiplexer = _multiplexer(board)
    return {tag for tags in multiplexer.Runs().values() for tag in tags["images"]}

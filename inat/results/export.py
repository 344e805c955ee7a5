"""`inat export CHECKPOINT DEST --format F`: a checkpoint's model for use without inat.

DEST is a new folder holding the model file and `model.json` (its classes, its
preprocessing and how the file is loaded):

  safetensors  model.safetensors: the weights; a fine-tuned model's under the names of its
               library's model (torchvision.models.get_model(backbone, num_classes=N), or
               timm.create_model(name, num_classes=N)), the scratch CNN's under
               inat.models.ScratchCNN's
  exported_program
               model.pt2: the program torch.export captured (torch.export.load(file)
               .module()), PyTorch's successor to TorchScript; any batch size
  torchscript  model.pt: the traced program (torch.jit.load)
  onnx         model.onnx: the program for onnxruntime and other ONNX runtimes, input
               "image" (batch, 3, side, side), output "logits"

Every model takes float32 RGB images of shape (batch, 3, side, side), turned upright by
their EXIF orientation, resized to side x side, scaled to [0, 1] and normalised with the
mean and std in model.json, and returns class logits (softmax for probabilities).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from inat import __version__
from inat.data.datasets import IMAGENET_MEAN, IMAGENET_STD
from inat.errors import ConfigError
from inat.models.backbones import find_backbone
from inat.results.classifier import Classifier, load_classifier
from inat.storage import atomic_folder, is_s3

METADATA = "model.json"
FILES = {
    "safetensors": "model.safetensors",
    "exported_program": "model.pt2",
    "torchscript": "model.pt",
    "onnx": "model.onnx",
}
FORMATS = tuple(FILES)
INPUT, OUTPUT = "image", "logits"


def export(checkpoint: str, dest: str | Path, fmt: str) -> Path:
    """Write the model of `checkpoint` (see load_classifier) as `fmt` into the new folder
    `dest`, with its model.json; returns the model file. `dest` appears complete or not at all."""
    if fmt not in FILES:
        raise ConfigError(
            f"--format {fmt} is not an export format: use one of {', '.join(FORMATS)}"
        )
    if is_s3(str(dest)):
        raise ConfigError(
            f"{dest} is not a local folder: export into one, then copy it (aws s3 cp --recursive)"
        )
    dest = Path(dest).expanduser()
    if dest.exists():
        raise ConfigError(
            f"{dest} already exists: export into a new folder, or remove {dest} first"
        )
    classifier = load_classifier(checkpoint)
    atomic_folder(dest, lambda tmp: _write(classifier, fmt, tmp))
    return dest / FILES[fmt]


def _write(classifier: Classifier, fmt: str, folder: Path) -> None:
    """The model file of `fmt` and model.json, written into `folder`."""
    writers: dict[str, Callable[[Classifier, Path], dict[str, Any]]] = {
        "safetensors": _write_safetensors,
        "exported_program": _write_exported_program,
        "torchscript": _write_torchscript,
        "onnx": _write_onnx,
    }
    loading = writers[fmt](classifier, folder / FILES[fmt])
    document = metadata(classifier, fmt) | {"architecture": loading}
    (folder / METADATA).write_text(json.dumps(document, indent=2) + "\n")


def metadata(classifier: Classifier, fmt: str) -> dict[str, Any]:
    """What a user of the exported file needs besides it: its classes and preprocessing."""
    return {
        "format": fmt,
        "file": FILES[fmt],
        "classes": classifier.classes,
        "preprocessing": {
            "image_size": classifier.image_size,
            "orientation": "turned upright by the EXIF orientation first (PIL.ImageOps."
            "exif_transpose), as inat reads every image",
            "resize": "to image_size x image_size (bilinear, antialiased; aspect ratio not kept)",
            "scale": "RGB pixel values / 255, float32, shape (batch, 3, image_size, image_size)",
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
        },
        "output": "class logits, shape (batch, classes), in the order of classes",
        "checkpoint": classifier.uri,
        "inat_version": __version__,
    }


def _example(classifier: Classifier) -> torch.Tensor:
    side = classifier.image_size
    return torch.zeros(2, 3, side, side)


def library_state(classifier: Classifier) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A fine-tuned model's weights under the names of its library's model, and how to build
    that model: {"torchvision": kwargs of torchvision.models.get_model} or {"timm": kwargs of
    timm.create_model}, then load_state_dict."""
    spec = find_backbone(classifier.config["model"]["backbone"])
    build = spec.library_model(len(classifier.classes), classifier.image_size)
    linears = spec.classifiers(classifier.image_size)
    state = {}
    for name, tensor in classifier.model.state_dict().items():
        if name.startswith("backbone."):
            state[name.removeprefix("backbone.")] = tensor
        else:
            # The new head: dropout -> linear. The library's classifier holds the linear; a
            # distilled timm model averages two classifiers, so both get it (as copies:
            # safetensors stores no shared tensors).
            for linear in linears:
                state[f"{linear}.{name.rsplit('.', 1)[-1]}"] = tensor.clone()
    return state, {spec.library: build}


def _write_safetensors(classifier: Classifier, path: Path) -> dict[str, Any]:
    from safetensors.torch import save

    model_cfg = classifier.config["model"]
    if "backbone" in model_cfg:
        state, architecture = library_state(classifier)
    else:
        state = classifier.model.state_dict()
        keys = {k: v for k, v in model_cfg.items() if k != "_target_"}
        architecture = {
            "inat": model_cfg["_target_"],
            "kwargs": keys
            | {"num_classes": len(classifier.classes), "image_size": classifier.image_size},
        }
    path.write_bytes(save({k: v.contiguous() for k, v in state.items()}))  # with the umask
    return architecture


def _write_exported_program(classifier: Classifier, path: Path) -> dict[str, Any]:
    from torch.export import Dim

    program = torch.export.export(
        classifier.model, (_example(classifier),), dynamic_shapes={"x": {0: Dim("batch")}}
    )
    torch.export.save(program, str(path))
    return {"exported_program": "torch.export.load(file).module()"}


def _write_torchscript(classifier: Classifier, path: Path) -> dict[str, Any]:
    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, but TorchScript is what was asked.
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(classifier.model, _example(classifier))
        torch.jit.save(traced, str(path))
    return {"torchscript": "torch.jit.load(file)"}


def _write_onnx(classifier: Classifier, path: Path) -> dict[str, Any]:
    from torch.export import Dim

    for name in ("onnx_ir", "onnxscript"):  # their passes log each step at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    program = torch.onnx.export(
        classifier.model,
        (_example(classifier),),
        input_names=[INPUT],
        output_names=[OUTPUT],
        dynamic_shapes={"x": {0: Dim("batch")}},
        dynamo=True,
        verbose=False,
    )
    program.save(str(path), external_data=False)
    return {"onnx": {"input": INPUT, "output": OUTPUT}}


def report(path: Path) -> str:
    """What was written, and the model.json beside it."""
    return f"exported {path}\n  with {path.parent / METADATA} (classes and preprocessing)"

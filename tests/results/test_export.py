"""`inat export`: each format, loaded without inat, predicts what `inat predict` does on the
same photos; bad input is refused with exit code 65 and leaves nothing at DEST.

The photos are the generated test images and, when INAT_SAMPLE_PHOTOS names a folder of
real photos (class folders of JPEG or PNG files, e.g. a few nature_12K images), those too.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
import torchvision
from helpers.runs import TINY_DATA, TINY_TRAINING, compose_cfg
from PIL import Image, ImageOps
from safetensors.torch import load_file
from torchvision.transforms import v2

from inat.cli import main
from inat.models import ScratchCNN
from inat.results.classifier import load_classifier
from inat.results.predict import image_files, predict
from inat.train import train

pytestmark = pytest.mark.slow

SAMPLE_PHOTOS = "INAT_SAMPLE_PHOTOS"
FINETUNE = ["model=finetune", "model.backbone=resnet18", "model.weights=null"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Run directories of the scratch CNN and of a fine-tuned ResNet-18, trained an epoch."""
    tmp = tmp_path_factory.mktemp("export")
    runs = {
        "scratch": compose_cfg(tmp, "name=scratch", "trainer.epochs=1"),
        "finetune": compose_cfg(
            tmp, "name=finetune", "trainer.epochs=1", *FINETUNE, base=[*TINY_DATA, *TINY_TRAINING]
        ),
    }
    for cfg in runs.values():
        assert train(cfg)["status"] == "done"
    return {name: tmp / "out" / name for name in runs}


@pytest.fixture(scope="module", params=["generated", "sample"])
def photos(request, checkpoints) -> list[Path]:
    """Image files: 3 generated test images of each class, or the real sample photos."""
    if request.param == "sample":
        folder = os.environ.get(SAMPLE_PHOTOS)
        if not folder:
            pytest.skip(f"set {SAMPLE_PHOTOS} to a folder of real photos to predict them too")
        return image_files([folder])
    [val] = checkpoints["scratch"].parent.parent.glob("cache/synthetic-*/val")
    return [path for folder in sorted(val.iterdir()) for path in sorted(folder.iterdir())[:3]]


def _exported(tmp_path: Path, run: Path, fmt: str) -> tuple[Path, dict]:
    """`inat export RUN DEST --format FMT`: the model file and its model.json."""
    dest = tmp_path / f"exported-{fmt}"
    assert main(["export", str(run), str(dest), "--format", fmt]) == 0
    meta = json.loads((dest / "model.json").read_text())
    return dest / meta["file"], meta


def _batch(files: list[Path], meta: dict) -> torch.Tensor:
    """The photos as model.json says the model takes them (as a user of it would do)."""
    pre = meta["preprocessing"]
    side = pre["image_size"]
    transform = v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((side, side), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(pre["mean"], pre["std"]),
        ]
    )
    upright = [ImageOps.exif_transpose(Image.open(path)).convert("RGB") for path in files]
    return torch.stack([transform(image) for image in upright])


def _predicted(run: Path, files: list[Path], classes: list[str]) -> np.ndarray:
    """`inat predict`'s probabilities of every class, one row per file."""
    classifier = load_classifier(str(run))
    rows = predict(classifier, files, top_k=len(classes))["predictions"]
    return np.array(
        [[{t["class"]: t["probability"] for t in r["top"]}[c] for c in classes] for r in rows]
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    return torch.from_numpy(np.asarray(logits)).float().softmax(dim=1).numpy()


def _load_safetensors(path: Path, meta: dict) -> torch.nn.Module:
    """The weights in the model they name: a torchvision model, or inat's scratch CNN."""
    architecture = meta["architecture"]
    if "torchvision" in architecture:
        model = torchvision.models.get_model(**architecture["torchvision"])
    else:
        assert architecture["inat"] == "inat.models.ScratchCNN"
        model = ScratchCNN(**architecture["kwargs"])
    model.load_state_dict(load_file(path))  # strict: every name matches
    return model.eval()


@torch.no_grad()
def _run(path: Path, meta: dict, batch: torch.Tensor) -> np.ndarray:
    """The exported model's logits for `batch`, from the format's own runtime."""
    if meta["format"] == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inputs = meta["architecture"]["onnx"]
        return session.run([inputs["output"]], {inputs["input"]: batch.numpy()})[0]
    if meta["format"] == "torchscript":
        return torch.jit.load(str(path))(batch).numpy()
    if meta["format"] == "exported_program":
        return torch.export.load(str(path)).module()(batch).numpy()
    return _load_safetensors(path, meta)(batch).numpy()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["safetensors", "exported_program", "torchscript", "onnx"])
@pytest.mark.parametrize("model", ["scratch", "finetune"])
def test_an_exported_model_predicts_what_inat_predict_does(
    checkpoints, photos, tmp_path, model, fmt
):
    path, meta = _exported(tmp_path, checkpoints[model], fmt)
    classes = meta["classes"]
    assert len(classes) == 10 and meta["preprocessing"]["image_size"] == 32
    expected = _predicted(checkpoints[model], photos, classes)

    got = _softmax(_run(path, meta, _batch(photos, meta)))

    assert got.shape == (len(photos), len(classes))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got.argmax(axis=1).tolist() == expected.argmax(axis=1).tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"exported-{fmt}"]  # no leftovers


@pytest.fixture
def errors(caplog):
    """Run `inat ARGS` in-process; returns (exit code, the error logged)."""
    caplog.set_level(logging.ERROR, logger="inat")

    def run(*args: str) -> tuple[int, str]:
        caplog.clear()
        return main(list(args)), caplog.text

    return run


def test_a_file_that_is_not_a_checkpoint_is_refused_and_nothing_is_written(errors, tmp_path):
    fake = tmp_path / "state.pt"
    fake.write_text("not a checkpoint")
    dest = tmp_path / "exported"

    code, message = errors("export", str(fake), str(dest), "--format", "onnx")

    assert code == 65
    assert "state.pt is not a readable checkpoint" in message
    assert "give a state.pt that inat train wrote" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


def test_an_unknown_format_is_refused_naming_the_formats(errors, checkpoints, tmp_path):
    code, message = errors(
        "export", str(checkpoints["scratch"]), str(tmp_path / "x"), "--format", "tflite"
    )
    assert code == 65
    assert (
        "--format tflite is not an export format: use one of safetensors, exported_program, "
        "torchscript, onnx" in message
    )
    assert list(tmp_path.iterdir()) == []


def test_a_destination_that_exists_is_refused_and_left_as_it_was(errors, checkpoints, tmp_path):
    dest = tmp_path / "exported"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")

    code, message = errors("export", str(checkpoints["scratch"]), str(dest))

    assert code == 65
    assert f"{dest} already exists: export into a new folder, or remove {dest} first" in message
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]


def test_a_destination_on_s3_is_refused(errors, checkpoints, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, message = errors("export", str(checkpoints["scratch"]), "s3://bucket/exported")
    assert code == 65
    assert "s3://bucket/exported is not a local folder: export into one, then copy it" in message
    assert list(tmp_path.iterdir()) == []

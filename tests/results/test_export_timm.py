"""`inat export` of a fine-tuned timm model: ONNX run by onnxruntime, and safetensors loaded
into timm's own model, predict what `inat predict` does on the same photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import timm
import torch
from helpers.runs import TINY_DATA, TINY_TRAINING, compose_cfg
from PIL import Image
from safetensors.torch import load_file
from torchvision.transforms import v2

from inat.cli import main
from inat.results.classifier import load_classifier
from inat.results.predict import predict
from inat.train import train

pytestmark = pytest.mark.slow

# A ViT: timm builds it for the image size (32 px: 2 x 2 patches of 16).
TIMM = ["model=finetune", "model.backbone=test_vit", "model.weights=null", "model.strategy=full"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The run directory of a timm test_vit fine-tuned for an epoch on generated images."""
    tmp = tmp_path_factory.mktemp("export-timm")
    cfg = compose_cfg(
        tmp, "name=timm", "trainer.epochs=1", *TIMM, base=[*TINY_DATA, *TINY_TRAINING]
    )
    assert train(cfg)["status"] == "done"
    return tmp / "out" / "timm"


@pytest.fixture(scope="module")
def photos(run) -> list[Path]:
    """2 generated test images of each class."""
    [val] = run.parent.parent.glob("cache/synthetic-*/val")
    return [path for folder in sorted(val.iterdir()) for path in sorted(folder.iterdir())[:2]]


def _exported(tmp_path: Path, run: Path, fmt: str) -> tuple[Path, dict]:
    dest = tmp_path / f"exported-{fmt}"
    assert main(["export", str(run), str(dest), "--format", fmt]) == 0
    meta = json.loads((dest / "model.json").read_text())
    return dest / meta["file"], meta


def _batch(files: list[Path], meta: dict) -> torch.Tensor:
    """The photos as model.json says the model takes them."""
    pre = meta["preprocessing"]
    transform = v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((pre["image_size"], pre["image_size"]), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(pre["mean"], pre["std"]),
        ]
    )
    return torch.stack([transform(Image.open(path).convert("RGB")) for path in files])


def _predicted(run: Path, files: list[Path], classes: list[str]) -> np.ndarray:
    """`inat predict`'s probabilities of every class, one row per file."""
    rows = predict(load_classifier(str(run)), files, top_k=len(classes))["predictions"]
    return np.array(
        [[{t["class"]: t["probability"] for t in r["top"]}[c] for c in classes] for r in rows]
    )


def _softmax(logits: np.ndarray | torch.Tensor) -> np.ndarray:
    return torch.as_tensor(logits).float().softmax(dim=1).numpy()


def test_onnx_of_a_timm_model_predicts_what_inat_predict_does(run, photos, tmp_path):
    path, meta = _exported(tmp_path, run, "onnx")
    expected = _predicted(run, photos, meta["classes"])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = meta["architecture"]["onnx"]

    [logits] = session.run([names["output"]], {names["input"]: _batch(photos, meta).numpy()})

    got = _softmax(logits)
    assert got.shape == (len(photos), 10)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got.argmax(axis=1).tolist() == expected.argmax(axis=1).tolist()


@torch.no_grad()
def test_safetensors_of_a_timm_model_load_into_timm_s_own_model(run, photos, tmp_path):
    path, meta = _exported(tmp_path, run, "safetensors")
    build = meta["architecture"]["timm"]
    assert build == {"model_name": "test_vit", "num_classes": 10, "img_size": 32}
    model = timm.create_model(**build).eval()
    model.load_state_dict(load_file(path))  # strict: every name matches

    got = _softmax(model(_batch(photos, meta)))

    np.testing.assert_allclose(got, _predicted(run, photos, meta["classes"]), atol=1e-5)

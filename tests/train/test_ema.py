"""The moving average of the weights (trainer.ema_decay): the reference update, and a run
that validates, tests and hands on the averaged weights."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.runs import TINY, location, run_inat
from omegaconf import OmegaConf
from torch import nn

from inat.data.datasets import build_transform, load_rgb
from inat.results.classifier import load_classifier
from inat.rundir import EPOCH_METRICS
from inat.storage import open_storage
from inat.train.checkpoint import CheckpointManager
from inat.train.ema import build_ema


def _weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("warmup", [False, True])
def test_the_average_follows_the_reference_update(warmup):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    decay = 0.9
    ema = build_ema(OmegaConf.create({"ema_decay": decay, "ema_warmup": warmup}), model)
    expected = _weights(model)
    for step in range(1, 30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update(model, step=step)
        # The first update copies the weights; then ema = d * ema + (1 - d) * weights, with
        # d = min(decay, 1 - step^(-3/4)) during the warm-up.
        d = 0.0 if step == 1 else min(decay, 1 - step**-0.75) if warmup else decay
        expected = d * expected + (1 - d) * _weights(model)
        torch.testing.assert_close(_weights(ema.module), expected)


def test_no_average_without_a_decay():
    assert (
        build_ema(OmegaConf.create({"ema_decay": None, "ema_warmup": True}), nn.Linear(2, 2))
        is None
    )


@pytest.mark.slow
def test_a_run_validates_tests_and_exports_the_average(tmp_path):
    done = run_inat(
        tmp_path, "train", *TINY, *location(tmp_path), "trainer.epochs=2", "trainer.ema_decay=0.9"
    )
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "out" / "default"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["evaluated_weights"] == "ema"
    assert result["test"]["weights"] == "ema"
    # Every epoch's row has each column a sweep's metric may name (10 classes: top-5 too).
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(set(row) == set(EPOCH_METRICS) for row in rows)

    storage = open_storage(str(run_dir / "checkpoints"))
    ckpts = CheckpointManager(storage)
    best = ckpts.load(ckpts.best())
    averaged = torch.cat([t.flatten().float() for t in best["ema"].values()])
    trained = torch.cat([t.flatten().float() for t in best["model"].values()])
    assert not torch.allclose(averaged, trained)

    classifier = load_classifier(str(run_dir))
    for key, tensor in classifier.model.state_dict().items():
        torch.testing.assert_close(tensor, best["ema"][key])
    # inat evaluate scores the averaged weights as the run's test did.
    scored = run_inat(tmp_path, "evaluate", str(run_dir), "synthetic", "--json")
    assert scored.returncode == 0, scored.stderr
    evaluation = json.loads(scored.stdout)
    assert evaluation["accuracy"] == result["test"]["accuracy"]
    assert evaluation["loss"] == pytest.approx(result["test"]["loss"], rel=1e-6)

    # inat predict --tta flip: the mean of the averaged model's predictions for an image
    # and its mirror image.
    [image] = sorted((tmp_path / "cache").glob("synthetic-*/val/*/*"))[:1]
    predicted = run_inat(tmp_path, "predict", str(run_dir), str(image), "--tta", "flip", "--json")
    assert predicted.returncode == 0, predicted.stderr
    top = json.loads(predicted.stdout)["predictions"][0]["top"][0]
    batch = build_transform(classifier.image_size, augment="none")(load_rgb(image))[None]
    with torch.no_grad():
        probs = (
            classifier.model(batch).softmax(1) + classifier.model(batch.flip(-1)).softmax(1)
        ) / 2
    assert top["class"] == classifier.classes[probs.argmax().item()]
    assert top["probability"] == pytest.approx(probs.max().item(), rel=1e-5)

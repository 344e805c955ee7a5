"""Loading a checkpoint for inference: the model the trainer saved, rebuilt from its config;
a checkpoint that would run code when loaded is refused unread."""

from __future__ import annotations

import pytest
import torch
from helpers.pickles import Payload
from helpers.runs import run_inat
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from inat.data import CLASS_NAMES
from inat.models import build_model
from inat.results.classifier import load_classifier


def test_a_fine_tuned_checkpoint_loads_without_fetching_pretrained_weights(tmp_path):
    # model.weights=DEFAULT would download ImageNet weights, which cannot succeed here: the
    # checkpoint holds every weight, so loading it must not try.
    with initialize_config_module("inat.configs", version_base="1.3"):
        cfg = compose("train", ["model=finetune", "model.backbone=resnet18", "data.image_size=64"])
    config = OmegaConf.to_container(cfg, resolve=True)
    assert config["model"]["weights"] == "DEFAULT"
    model_cfg = OmegaConf.create({**config["model"], "weights": None})
    trained = build_model(model_cfg, num_classes=10, image_size=64).eval()
    state = {"model": trained.state_dict(), "config": config, "classes": list(CLASS_NAMES)}
    torch.save(state, tmp_path / "state.pt")

    for uri in (str(tmp_path), str(tmp_path / "state.pt")):
        classifier = load_classifier(uri)
        assert classifier.classes == list(CLASS_NAMES) and classifier.image_size == 64
        images = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            assert torch.equal(classifier.model(images), trained(images))


@pytest.mark.parametrize("missing", ["model", "config", "classes"])
def test_a_file_that_is_not_an_inat_checkpoint_is_refused(tmp_path, missing):
    state = {"model": {}, "config": {}, "classes": []}
    del state[missing]
    torch.save(state, tmp_path / "state.pt")
    with pytest.raises(Exception, match="is not an inat checkpoint"):
        load_classifier(str(tmp_path))


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_checkpoint_that_would_run_code_is_refused_by_evaluate_and_predict(tmp_path, command):
    marker = tmp_path / "ran"
    state = {"model": {}, "config": {}, "classes": ["a"], "extra": Payload(marker)}
    torch.save(state, tmp_path / "state.pt")
    (tmp_path / "photo.png").write_bytes(b"")
    target = "synthetic" if command == "evaluate" else str(tmp_path / "photo.png")

    done = run_inat(tmp_path, command, str(tmp_path / "state.pt"), target)

    assert done.returncode == 65, done.stderr
    assert f"refused to load the checkpoint {tmp_path}/state.pt" in done.stderr
    assert "objects other than tensors and plain data" in done.stderr
    assert not marker.exists()

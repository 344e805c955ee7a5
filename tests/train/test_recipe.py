"""The training recipe's knobs together (policy augmentation, random erasing, mixup and
CutMix with label smoothing, the moving average of the weights, flip TTA): a run trains
end to end, resumes exactly after a stop signal mid-epoch, and trains on 2 DDP processes."""

from __future__ import annotations

import json
import signal

import pytest
from helpers.runs import (
    TINY,
    location,
    read_metrics,
    run_inat,
    run_until,
    train_on_two_processes,
    without_timings,
)

pytestmark = pytest.mark.slow

EPOCHS = 3
RECIPE = [
    *TINY,
    f"trainer.epochs={EPOCHS}",
    "data.augment=randaugment",
    "data.random_erasing=0.25",
    "trainer.mixup_alpha=0.2",
    "trainer.cutmix_alpha=1.0",
    "trainer.label_smoothing=0.1",
    "trainer.ema_decay=0.9",
    "trainer.tta=flip",
    "model.pool=avg",
    "data.num_workers=2",  # generators in worker processes too
]


def test_the_recipe_resumes_exactly_after_a_stop_signal_mid_epoch(tmp_path):
    reference = tmp_path / "reference"
    reference.mkdir()
    done = run_inat(reference, "train", *RECIPE, *location(reference))
    assert done.returncode == 0, done.stderr
    expected_rows = read_metrics(reference / "out" / "default")
    expected = json.loads((reference / "out" / "default" / "result.json").read_text())
    assert expected["test"]["weights"] == "ema" and expected["test"]["tta"] == "flip"
    assert expected["test"]["top5_accuracy"] >= expected["test"]["accuracy"]

    stopped = run_until(tmp_path, ["train", *RECIPE], f"epoch 2/{EPOCHS} 3/", signal.SIGTERM)
    assert stopped.returncode == 75
    resumed = run_inat(tmp_path, "train", *RECIPE, *location(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    run_dir = tmp_path / "out" / "default"
    assert without_timings(read_metrics(run_dir)) == without_timings(expected_rows)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["resumes"][0]["batches_done"] >= 3
    assert result["test"] == expected["test"]  # the averaged weights resumed exactly too


def test_the_recipe_trains_on_two_ddp_processes(tmp_path):
    args = [*RECIPE, *location(tmp_path), "trainer.cpu=true", "data.num_workers=0"]
    done = train_on_two_processes(tmp_path, args)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "out" / "default" / "result.json").read_text())
    assert result["devices"]["num_processes"] == 2
    assert result["epochs"] == EPOCHS and result["test"]["weights"] == "ema"
    rows = read_metrics(tmp_path / "out" / "default")
    assert all(0 <= row["train_accuracy"] <= 1 for row in rows)

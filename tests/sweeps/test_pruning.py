"""Early termination for real: a random sweep of tiny points where part of the learning rate
range cannot learn. Weak points stop at the first rung, as `pruned`, with their decision
recorded; the best point trains to its end; the sweep ends with exit 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers.runs import TINY_DATA, TINY_MODEL, location, run_inat

pytestmark = pytest.mark.slow

EPOCHS, MIN_ITER, ETA = 3, 1, 3


def _job(tmp_path: Path) -> Path:
    job = {
        "job": {
            "name": "prune",
            "overrides": [
                *TINY_DATA,
                *TINY_MODEL,
                "model.batch_norm=true",
                "optimizer=adam",
                "scheduler=constant",
                f"trainer.epochs={EPOCHS}",
            ],
            "sweep": {
                "method": "random",
                "run_cap": 8,
                "seed": 1,
                "early_terminate": {"type": "asha", "min_iter": MIN_ITER, "eta": ETA},
                "parameters": {
                    "optimizer.lr": {
                        "distribution": "log_uniform_values",
                        "min": 1.0e-3,
                        "max": 1.0,
                    }
                },
            },
        }
    }
    path = tmp_path / "prune.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def test_weak_points_are_pruned_at_the_first_rung_and_the_best_is_not(tmp_path: Path) -> None:
    done = run_inat(tmp_path, "sweep", str(_job(tmp_path)), *location(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "out/prune/summary.json").read_text())
    rows = summary["points"]
    pruned = [r for r in rows if r["status"] == "pruned"]
    assert pruned and len(pruned) < len(rows)
    assert {r["status"] for r in rows} == {"done", "pruned"}
    assert all(r["epochs"] < MIN_ITER * ETA for r in pruned)
    best = max(rows, key=lambda r: r["best_val_accuracy"])
    assert best["status"] == "done" and best["epochs"] == EPOCHS
    assert summary["best"]["index"] == best["index"]
    assert sum(r["epochs"] for r in rows) < len(rows) * EPOCHS

    for row in pruned:
        run = tmp_path / "out/prune" / row["name"]
        result = json.loads((run / "result.json").read_text())
        assert result["status"] == "pruned" and "pruned at rung 0" in result["stop_reason"]
        decision = json.loads((run / "early_stop.json").read_text())[-1]
        assert decision["prune"] and decision["rung"] == 0 and decision["compared"] >= 1
        assert decision["value"] < decision["threshold"]
        assert (run / "checkpoints" / "best.json").is_file()  # its checkpoint is kept

    table = run_inat(tmp_path, "results", str(tmp_path / "out/prune"), "--no-plots")
    assert f"{len(pruned)} pruned" in table.stdout

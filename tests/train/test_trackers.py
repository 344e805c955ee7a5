"""Every tracker for real, read back with its own tools: TensorBoard's event reader,
MlflowClient against a real tracking server, the CSV file, the offline W&B run's records."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest
from helpers.mlflow_server import mlflow_run
from helpers.runs import TINY, location, read_metrics, run_inat, run_until
from helpers.tensorboard_events import hparam_metrics, hparams, images, scalars
from helpers.wandb_records import history, records

pytestmark = pytest.mark.slow

ALL = "logger=[wandb,tensorboard,mlflow,csv]"
# metrics.jsonl's names, and the trackers' (W&B, TensorBoard, MLflow): a section each.
EPOCH_KEYS = {
    "train_loss": "train/loss",
    "val_loss": "val/loss",
    "val_accuracy": "val/accuracy",
    "lr": "train/lr",
}


def _csv_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _mlflow_history(client, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def test_every_tracker_records_each_epoch_the_steps_and_the_test(tmp_path, mlflow_uri):
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wb")}
    args = [*TINY, "trainer.epochs=2", "trainer.log_every_n_steps=5", ALL]
    done = run_inat(
        tmp_path, "train", *args, *location(tmp_path), "logger.wandb.log_checkpoint=true", env=env
    )
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "out" / "default"
    rows, result = read_metrics(run_dir), json.loads((run_dir / "result.json").read_text())
    steps = range(5, rows[-1]["step"] + 1, 5)

    # TensorBoard: every epoch's metrics at its last step, the loss every 5 steps, counters
    # under bookkeeping/; one run (no timestamp-named second one) with the config as
    # HParams and the final metrics; the plots as images.
    board = run_dir / "tensorboard"
    events = scalars(board)
    for row in rows:
        for key, name in EPOCH_KEYS.items():
            assert events[name][row["step"]] == pytest.approx(row[key])
    assert sorted(events["train/loss_step"]) == list(steps)
    assert events["test/accuracy"][rows[-1]["step"]] == pytest.approx(result["test"]["accuracy"])
    assert [events["bookkeeping/epoch"][row["step"]] for row in rows] == [1, 2]
    assert not any(name in events for name in ("epoch", "val_accuracy", "skipped_steps"))
    assert not [p for p in board.iterdir() if p.is_dir()]
    assert hparams(board)["optimizer.lr"] == 0.05
    assert {"val/accuracy", "test/accuracy"} <= set(hparam_metrics(board))
    assert {"plots/learning_curves", "plots/test_confusion_matrix"} <= images(board)

    # CSV: a row per logged step, per epoch and the test, blank where a row has no value
    table = _csv_rows(run_dir)
    epochs = [r for r in table if r["val_accuracy"]]
    assert [int(r["epoch"]) for r in epochs] == [1, 2]
    assert [float(r["val_accuracy"]) for r in epochs] == pytest.approx(
        [row["val_accuracy"] for row in rows]
    )
    assert [int(r["step"]) for r in table if r["train_loss_step"]] == list(steps)
    assert float(table[-1]["test_accuracy"]) == pytest.approx(result["test"]["accuracy"])

    # MLflow: one run named after the run, the flat config, each epoch and the test
    client, run = mlflow_run(mlflow_uri, "default", run_dir)
    assert run.info.status == "FINISHED" and run.info.run_name == "default"
    assert run.data.params["optimizer.lr"] == "0.05" and run.data.params["trainer.epochs"] == "2"
    val = _mlflow_history(client, run.info.run_id, "val/accuracy")
    assert val == pytest.approx({row["step"]: row["val_accuracy"] for row in rows})
    assert run.data.metrics["test/accuracy"] == pytest.approx(result["test"]["accuracy"])
    assert run.data.metrics["val/best_accuracy"] == pytest.approx(result["best_val_accuracy"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.jsonl", "result.json", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/learning_curves.png" in plots
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    # W&B: the loss every 5 steps, each epoch, the test charts, plots and the checkpoint
    (wandb_file,) = (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb")
    logged = history(wandb_file)
    assert [r["_step"] for r in logged if "train/loss_step" in r] == list(steps)
    assert [r["val/accuracy"] for r in logged if "val/accuracy" in r] == pytest.approx(
        [row["val_accuracy"] for row in rows]
    )
    sections = {key.split("/")[0] for r in logged for key in r if not key.startswith("_")}
    assert sections == {"train", "val", "test", "bookkeeping", "plots"}
    final = logged[-1]
    assert {"plots/learning_curves", "plots/test_confusion_matrix"} <= {
        k.rsplit("/", 1)[0] for k in final if k.endswith("/_type") and final[k] == "image-file"
    }
    files = wandb_file.parent / "files"
    matrix = json.loads((files / final["test/confusion_matrix_table/path"]).read_text())
    counts = {(a, p): n for a, p, n in matrix["data"]}
    classes = result["classes"]
    assert [[counts[a, p] for p in classes] for a in classes] == result["test"]["confusion_matrix"]
    per_class = json.loads((files / final["test/per_class_accuracy_table/path"]).read_text())
    assert dict(per_class["data"]) == pytest.approx(result["test"]["per_class_accuracy"])
    (artifact,) = [
        r.artifact
        for r in records(wandb_file)
        if r.WhichOneof("record_type") == "artifact" and r.artifact.type == "model"
    ]
    assert "best" in artifact.aliases and [m.path for m in artifact.manifest.contents] == [
        "state.pt"
    ]


def test_a_resumed_run_continues_its_mlflow_run_csv_and_event_files(tmp_path, mlflow_uri):
    args = ["train", *TINY, "trainer.epochs=3", ALL.replace("wandb,", "")]
    stopped = run_until(tmp_path, args, "epoch 2/3 train_loss", signal.SIGTERM)
    assert stopped.returncode == 75
    again = run_inat(tmp_path, *args, *location(tmp_path))
    assert again.returncode == 0, again.stderr
    run_dir = tmp_path / "out" / "default"
    rows = read_metrics(run_dir)
    assert [row["epoch"] for row in rows] == [1, 2, 3]

    client, run = mlflow_run(mlflow_uri, "default", run_dir)
    assert run.info.status == "FINISHED"
    val = _mlflow_history(client, run.info.run_id, "val/accuracy")
    assert val == pytest.approx({row["step"]: row["val_accuracy"] for row in rows})
    table = _csv_rows(run_dir)
    assert [int(r["epoch"]) for r in table if r["val_accuracy"]] == [1, 2, 3]
    assert [int(r["step"]) for r in table if r["train_loss_step"]] == list(
        range(1, rows[-1]["step"] + 1)
    )
    events = scalars(run_dir / "tensorboard")
    assert events["val/accuracy"] == pytest.approx(
        {row["step"]: row["val_accuracy"] for row in rows}
    )

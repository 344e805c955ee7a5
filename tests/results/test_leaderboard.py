"""`inat results` on a real sweep whose output is on the S3 test server: every point with the
figures of its result.json, best first, as a table, JSON and CSV; the winner's config
retrains to the same validation accuracy; its downloaded checkpoint scores identically."""

from __future__ import annotations

import csv
import io
import json

import pytest
from helpers.runs import run_inat
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from inat.cli import main
from inat.results.configs import LOCATION_KEYS
from inat.rundir import flatten

pytestmark = pytest.mark.slow


def _results(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(["results", *args]) == 0
    return capsys.readouterr().out


def _best_point(s3_sweep) -> str:
    """The name of the point with the highest validation accuracy (the lower index on a tie)."""
    scored = [
        (
            s3_sweep.read_json(f"{p['name']}/result.json")["best_val_accuracy"],
            -p["index"],
            p["name"],
        )
        for p in s3_sweep.points()
    ]
    return max(scored)[2]


def test_the_leaderboard_lists_every_point_with_the_figures_of_its_result_json(
    s3_sweep, aws_env, capsys
):
    document = json.loads(_results(capsys, s3_sweep.uri, "--json", "--no-plots"))
    results = {p["name"]: s3_sweep.read_json(f"{p['name']}/result.json") for p in s3_sweep.points()}
    rows = document["points"]
    assert sorted(r["name"] for r in rows) == sorted(results)
    for row in rows:
        result = results[row["name"]]
        assert row["status"] == "done" and row["resumes"] == 0
        assert row["epochs"] == result["epochs"] == 3
        assert row["best_val_accuracy"] == result["best_val_accuracy"]
        assert row["test_accuracy"] == result["test"]["accuracy"]
        assert row["wall_seconds"] == result["wall_seconds_last_attempt"]
    accuracies = [r["best_val_accuracy"] for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    assert document["swept"] == [o.split("=")[0] for o in s3_sweep.points()[0]["swept"]]
    assert sorted(document["swept"]) == ["model.activation", "model.dropout"]
    assert document["best"] == rows[0]["name"]
    assert {r["params"]["model.activation"] for r in rows} == {"relu", "gelu"}

    table = _results(capsys, s3_sweep.uri, "--no-plots")
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("#"))
    assert all(name in lines[header] for name in ("dropout", "activation", "val acc"))
    for line, row in zip(lines[header + 1 : header + 5], rows, strict=True):
        assert line.split()[0] == str(row["index"])
        assert f"{100 * row['best_val_accuracy']:.2f}%" in line
        assert f"{100 * row['test_accuracy']:.2f}%" in line
        assert "done" in line and "3/3" in line
    assert f"best: #{rows[0]['index']}" in table

    table_rows = list(csv.DictReader(io.StringIO(_results(capsys, s3_sweep.uri, "--csv"))))
    assert [r["name"] for r in table_rows] == [r["name"] for r in rows]
    for parsed, row in zip(table_rows, rows, strict=True):
        assert float(parsed["best_val_accuracy"]) == row["best_val_accuracy"]
        assert float(parsed["test_accuracy"]) == row["test_accuracy"]
        assert parsed["model.activation"] == row["params"]["model.activation"]


def test_the_best_config_retrains_to_the_same_validation_accuracy(
    s3_sweep, aws_env, capsys, tmp_path
):
    save = tmp_path / "configs" / "best.yaml"
    document = json.loads(_results(capsys, s3_sweep.uri, "--best", "--save", str(save), "--json"))
    best = document["point"]
    assert best["best_val_accuracy"] == max(
        s3_sweep.read_json(f"{p['name']}/result.json")["best_val_accuracy"]
        for p in s3_sweep.points()
    )

    # The overrides compose, on top of inat train's defaults, into the point's very config.
    with initialize_config_module("inat.configs", version_base="1.3"):
        composed = OmegaConf.to_container(compose("train", document["overrides"]), resolve=True)
    assert {k: v for k, v in flatten(composed).items() if k not in LOCATION_KEYS} == {
        k: v for k, v in flatten(document["config"]).items() if k not in LOCATION_KEYS
    }

    # The saved file is a config inat train takes as it is: retraining gives the same accuracy.
    retrain = run_inat(
        tmp_path,
        "train",
        "--config-dir",
        str(save.parent),
        "--config-name",
        "best",
        f"output={tmp_path}/retrain",
    )
    assert retrain.returncode == 0, retrain.stderr
    result = json.loads((tmp_path / "retrain" / "demo-sweep-best" / "result.json").read_text())
    assert result["best_val_accuracy"] == best["best_val_accuracy"]
    assert result["test"]["accuracy"] == best["test_accuracy"]


def test_a_downloaded_checkpoint_scores_identically_with_evaluate_and_predict(
    s3_sweep, aws_env, capsys, tmp_path
):
    dest = tmp_path / "best"
    out = _results(capsys, s3_sweep.uri, "--download", "best", str(dest))
    best = _best_point(s3_sweep)
    assert f"{s3_sweep.uri}/{best}" in out
    result = s3_sweep.read_json(f"{best}/result.json")
    assert (dest / "state.pt").stat().st_size > 0
    config = s3_sweep.client.get_object(
        Bucket=s3_sweep.bucket, Key=f"out/demo-sweep/{best}/config.yaml"
    )["Body"].read()
    assert (dest / "config.yaml").read_bytes() == config

    scores = []
    for checkpoint in (str(dest), f"{s3_sweep.uri}/{best}"):
        capsys.readouterr()
        args = ["evaluate", checkpoint, "synthetic", "--cache-dir", str(s3_sweep.cache), "--json"]
        assert main(args) == 0
        scores.append(json.loads(capsys.readouterr().out))
    for evaluation in scores:
        assert evaluation["accuracy"] == result["test"]["accuracy"]
        assert evaluation["per_class_accuracy"] == result["test"]["per_class_accuracy"]
        assert evaluation["confusion_matrix"] == result["test"]["confusion_matrix"]

    # predict on one class's test images: its top-1 answers are that class's confusion row.
    [test_root] = (s3_sweep.cache).glob("synthetic-*/val")
    classes = result["classes"]
    capsys.readouterr()
    label = 3
    assert (
        main(["predict", str(dest), str(test_root / classes[label]), "--top-k", "3", "--json"]) == 0
    )
    predicted = json.loads(capsys.readouterr().out)
    assert predicted["skipped"] == []
    predictions = predicted["predictions"]
    assert len(predictions) == sum(result["test"]["confusion_matrix"][label])
    for prediction in predictions:
        probabilities = [t["probability"] for t in prediction["top"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-6
    top1 = [classes.index(p["top"][0]["class"]) for p in predictions]
    assert [top1.count(c) for c in range(len(classes))] == result["test"]["confusion_matrix"][label]

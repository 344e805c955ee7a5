"""A password or a presigned query's secret in a data.source URL reaches no output: not the
terminal, the log files, the run directory (local or S3), the data cache nor any tracker.
Real runs, a real HTTP server, the real S3 server and a real MLflow tracking server."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.mlflow_server import mlflow_run
from helpers.runs import TINY_MODEL, run_inat
from helpers.tensorboard_events import hparams, texts

from inat.secrets import redact

from .trees import write_tree, write_zip

pytestmark = pytest.mark.slow

PASSWORD = "pw-Hunter2-s3cr3t"
SIGNATURE = "sig-F00d-c0ffee"  # a presigned URL's X-Amz-Signature


def _url(server, path: str) -> str:
    return server.url(path).replace("://", f"://alice:{PASSWORD}@")


def _train(tmp_path: Path, source: str, *overrides: str, env: dict | None = None):
    """`inat train` on the 3-class test tree at `source`, one epoch of a tiny CNN."""
    return run_inat(
        tmp_path,
        "train",
        f"data.source={source}",
        f"data.cache_dir={tmp_path}/cache",
        "data.num_classes=3",
        "data.image_size=32",
        "data.batch_size=6",
        "data.val_fraction=0.5",
        *TINY_MODEL,
        "name=default",
        "trainer.epochs=1",
        *overrides,
        env=env or {},
    )


def _files_holding(root: Path, secret: str) -> list[str]:
    return [
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and secret.encode() in path.read_bytes()
    ]


def test_redact_hides_the_userinfo_of_urls() -> None:
    assert redact(f"http://alice:{PASSWORD}@host/x.zip") == "http://***@host/x.zip"
    assert redact("https://TOKEN123@host/x.zip") == "https://***@host/x.zip"
    assert redact("s3://bucket/a@b.zip") == "s3://bucket/a@b.zip"  # an @ in a path stays
    assert redact("/data/nature_12K.zip") == "/data/nature_12K.zip"
    presigned = "https://b.s3.amazonaws.com/x.zip?X-Amz-Credential=AKIA&X-Amz-Signature=f00&v=2"
    assert redact(presigned) == (
        "https://b.s3.amazonaws.com/x.zip?X-Amz-Credential=***&X-Amz-Signature=***&v=2"
    )
    assert redact("http://h/x.zip?token=abc&part=1") == "http://h/x.zip?token=***&part=1"


def test_a_url_with_a_query_must_be_quoted_and_the_message_says_how(tmp_path: Path) -> None:
    url = f"http://alice:{PASSWORD}@127.0.0.1:1/x.zip?token=abc"
    refused = run_inat(tmp_path, "train", f"data.source={url}")
    output = refused.stdout + refused.stderr
    assert refused.returncode == 65, output
    assert (
        "quote the value, e.g. 'data.source=\"http://***@127.0.0.1:1/x.zip?token=***\"'" in output
    )
    assert PASSWORD not in output and "abc" not in output


def test_a_url_password_reaches_no_output_of_a_run(
    http_server, tmp_path: Path, mlflow_uri: str
) -> None:
    archive = write_zip(write_tree(tmp_path / "tree"), tmp_path / "nature.zip")
    query = f"/nature.zip?X-Amz-Signature={SIGNATURE}&v=2"
    http_server.files[query] = archive.read_bytes()
    http_server.statuses = [503]  # one retry: its warning names the URL
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wb")}
    done = _train(
        tmp_path,
        f'"{_url(http_server, query)}"',
        f"output={tmp_path}/out",
        "logger=[wandb,tensorboard,mlflow,csv]",
        env=env,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    shown = redact(_url(http_server, query))
    assert "X-Amz-Signature=***" in shown and "://***@" in shown
    assert "retrying" in output and shown in output  # the URL is there, redacted
    run_dir = tmp_path / "out" / "default"
    # what each tracker's own reader shows: the URL, redacted
    board = run_dir / "tensorboard"
    assert hparams(board)["data.source"] == shown
    _, run = mlflow_run(mlflow_uri, "default", run_dir)
    assert run.data.params["data.source"] == shown
    shown_by_trackers = [*map(str, hparams(board).values()), *texts(board)]
    shown_by_trackers += [*run.data.params.values(), *run.data.tags.values()]
    for secret in (PASSWORD, SIGNATURE):
        assert secret not in output
        assert not [text for text in shown_by_trackers if secret in text]
        # every file: run directory (metrics.csv, event files, train.log), cache (markers,
        # keys), the offline W&B run, the MLflow server's database and artifacts
        assert _files_holding(tmp_path, secret) == []
        assert not any(secret in str(path) for path in tmp_path.rglob("*"))
    assert (run_dir / "result.json").is_file() and (run_dir / "metrics.csv").is_file()
    assert list(board.rglob("events.out.tfevents.*"))
    assert list((tmp_path / "wb").rglob("*.wandb"))
    assert list((tmp_path / "mlflow-server").rglob("mlflow.db"))
    assert (run_dir / "train.log").is_file()


def test_a_failed_download_records_its_error_without_the_password(
    http_server, tmp_path: Path, aws_env, s3_client, s3_bucket
) -> None:
    failed = _train(tmp_path, _url(http_server, "/missing.zip"), f"output=s3://{s3_bucket}/runs")
    output = failed.stdout + failed.stderr
    assert failed.returncode == 65, output
    assert "HTTP 404" in output
    assert PASSWORD not in output
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert "runs/default/result.json" in keys
    result = s3_client.get_object(Bucket=s3_bucket, Key="runs/default/result.json")
    assert "HTTP 404" in result["Body"].read().decode()
    for key in keys:
        body = s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
        assert PASSWORD.encode() not in body, key
    assert _files_holding(tmp_path, PASSWORD) == []

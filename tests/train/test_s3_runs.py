"""Runs with data and output on a real S3 server (moto_server on 127.0.0.1, a subprocess):
the full layout, kills during a checkpoint upload, an outage, preflight errors, no secrets."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from helpers.mlflow_server import mlflow_run
from helpers.runs import TINY, inat_command, read_metrics, run_inat, without_timings
from helpers.tcp_proxy import TcpProxy
from helpers.wandb_records import history
from s3server import S3Server

from inat.data import resolve_source

pytestmark = pytest.mark.slow

EPOCHS = 4


def _upload_data(client, bucket: str, tmp_path: Path) -> str:
    """A generated data set as a zip in the bucket; returns its s3:// URI."""
    root = resolve_source("synthetic", tmp_path / "gen", {"train_per_class": 40, "image_side": 32})
    archive = shutil.make_archive(str(tmp_path / "nature_12K"), "zip", root.parent, root.name)
    client.upload_file(archive, bucket, "data/nature_12K.zip")
    return f"s3://{bucket}/data/nature_12K.zip"


def _args(tmp_path: Path, bucket: str, data: str, *extra: str) -> list[str]:
    return [
        "train",
        *TINY,
        f"trainer.epochs={EPOCHS}",
        f"data.source={data}",
        f"data.cache_dir={tmp_path}/cache",
        f"output=s3://{bucket}/runs",
        *extra,
    ]


def _objects(client, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Every object under `prefix`, by key."""
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            objects[item["Key"]] = body
    return objects


def _metrics(objects: dict[str, bytes], run: str) -> list[dict]:
    return [json.loads(line) for line in objects[f"{run}/metrics.jsonl"].splitlines()]


def test_a_run_on_s3_leaves_the_whole_run_directory_and_matches_a_local_run(
    tmp_path, s3_client, s3_bucket
):
    data = _upload_data(s3_client, s3_bucket, tmp_path)
    done = run_inat(tmp_path, *_args(tmp_path, s3_bucket, data))
    assert done.returncode == 0, done.stdout + done.stderr
    # botocore's line for every client it makes is not in the run's log
    assert "Found credentials" not in done.stdout + done.stderr

    objects = _objects(s3_client, s3_bucket, "runs/default/")
    run = "runs/default"
    result = json.loads(objects[f"{run}/result.json"])
    assert result["status"] == "done" and result["epochs"] == EPOCHS
    assert f"{run}/config.yaml" in objects
    assert len(_metrics(objects, run)) == EPOCHS
    latest = json.loads(objects[f"{run}/checkpoints/latest.json"])
    best = json.loads(objects[f"{run}/checkpoints/best.json"])
    assert f"{run}/checkpoints/{latest['path']}" in objects
    assert f"{run}/checkpoints/{best['path']}" in objects
    # train.log on an object store: rewritten whole, it holds the attempt's lines to the end.
    log = objects[f"{run}/train.log"].decode()
    assert f"epoch {EPOCHS}/{EPOCHS} train_loss=" in log and "done: best val_acc=" in log

    # The same run with output on local disk: the same layout and the same numbers.
    local = run_inat(tmp_path, *_args(tmp_path, s3_bucket, data, f"output={tmp_path}/local"))
    assert local.returncode == 0, local.stderr
    local_dir = tmp_path / "local" / "default"
    local_files = {p.relative_to(local_dir).as_posix() for p in local_dir.rglob("*") if p.is_file()}
    assert local_files == {key.removeprefix(f"{run}/") for key in objects}
    assert without_timings(read_metrics(local_dir)) == without_timings(_metrics(objects, run))


def test_kill_9_during_a_checkpoint_upload_keeps_the_previous_checkpoint(
    tmp_path, s3_client, s3_bucket
):
    data = _upload_data(s3_client, s3_bucket, tmp_path)
    # A wide dense layer makes a checkpoint of about 100 MB, uploaded in 5 MB parts.
    args = _args(
        tmp_path,
        s3_bucket,
        data,
        "data.image_size=64",
        "model.dense_neurons=100000",
        "optimizer.lr=0.002",
        "storage.multipart_threshold_mb=5",
    )
    proc = subprocess.Popen(
        inat_command(*args),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:
        if "saving checkpoint" in line and "(epoch 2)" in line:
            folder = line.split("/checkpoints/")[1].split()[0]
            break
    else:
        pytest.fail(f"the run ended before its second checkpoint (exit {proc.wait()})")
    key = f"runs/default/checkpoints/{folder}/state.pt"
    deadline = time.monotonic() + 60
    while not any(
        u["Key"] == key
        for u in s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    ):
        assert time.monotonic() < deadline, "no multipart upload of the checkpoint was seen"
    proc.kill()
    proc.wait()

    checkpoints = _objects(s3_client, s3_bucket, "runs/default/checkpoints/")
    latest = json.loads(checkpoints["runs/default/checkpoints/latest.json"])
    assert latest["epoch"] == 1
    assert key not in checkpoints

    resumed = run_inat(tmp_path, *args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    result = json.loads(_objects(s3_client, s3_bucket, "runs/default/")["runs/default/result.json"])
    assert result["epochs"] == EPOCHS
    assert [r["epoch"] for r in result["resumes"]] == [1]
    # An object store cannot append: the resumed attempt rewrote train.log after the first
    # attempt's lines, published at its first epoch's end.
    log = _objects(s3_client, s3_bucket, "runs/default/")["runs/default/train.log"].decode()
    first, resume = log.find("resume: no: a new run"), log.find("resume: yes, from checkpoint")
    assert -1 < first < log.find("epoch 1/4 train_loss=") < resume, log


def test_an_s3_outage_during_a_run_is_retried_with_a_warning(tmp_path, aws_env, monkeypatch):
    """The server is stopped mid-run and started again with the same objects; the run,
    whose requests go through a proxy on a fixed address, retries and finishes."""
    server = S3Server()
    server.start()
    proxy = TcpProxy(server.port)
    try:
        direct = boto3.session.Session().client("s3", endpoint_url=server.endpoint_url)
        direct.create_bucket(Bucket="outage")
        data = _upload_data(direct, "outage", tmp_path)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        proc = subprocess.Popen(
            inat_command(*_args(tmp_path, "outage", data)),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log = []
        for line in proc.stdout:
            log.append(line)
            if f"epoch 1/{EPOCHS} train_loss" in line:
                break
        proxy.cut()
        kept = _objects(direct, "outage")
        server.stop()
        for line in proc.stdout:
            log.append(line)
            if "retrying within storage.max_attempts" in line:
                break
        server.start()
        direct.create_bucket(Bucket="outage")
        for key, body in kept.items():
            direct.put_object(Bucket="outage", Key=key, Body=body)
        proxy.reconnect(server.port)
        log.extend(proc.stdout)
        assert proc.wait(timeout=300) == 0, "".join(log)
        assert any("WARNING" in line and "S3" in line for line in log), "".join(log)
        result = json.loads(
            direct.get_object(Bucket="outage", Key="runs/default/result.json")["Body"].read()
        )
        assert result["status"] == "done" and result["epochs"] == EPOCHS
    finally:
        proxy.cut()
        server.stop()


@pytest.mark.parametrize("problem", ["no such bucket", "missing data key", "wrong endpoint"])
def test_preflight_fails_at_once_and_writes_nothing(
    tmp_path, s3_client, s3_bucket, monkeypatch, problem
):
    data = _upload_data(s3_client, s3_bucket, tmp_path)
    before = _objects(s3_client, s3_bucket)
    args = _args(tmp_path, s3_bucket, data, "storage.max_attempts=2", "storage.retry_budget_s=0")
    expected = {"no such bucket": 65, "missing data key": 65, "wrong endpoint": 75}[problem]
    if problem == "no such bucket":
        args.append("output=s3://no-such-bucket-for-inat/runs")
    elif problem == "missing data key":
        args.append(f"data.source=s3://{s3_bucket}/data/missing.zip")
    else:
        args.append("storage.endpoint_url=http://127.0.0.1:9")  # the discard port: nothing there
    done = run_inat(tmp_path, *args, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == expected, out
    assert {
        "no such bucket": "no-such-bucket-for-inat",
        "missing data key": "data/missing.zip",
        "wrong endpoint": "127.0.0.1:9",
    }[problem] in out
    assert "Traceback" not in out
    assert _objects(s3_client, s3_bucket) == before
    assert not (tmp_path / "cache").exists()


def test_bad_credentials_fail_in_preflight(tmp_path, aws_env, monkeypatch):
    with S3Server() as server:
        client = boto3.session.Session().client("s3", endpoint_url=server.endpoint_url)
        client.create_bucket(Bucket="locked")
        data = _upload_data(client, "locked", tmp_path)
        server.enforce_auth()  # no IAM users: every key is unknown now
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        done = run_inat(tmp_path, *_args(tmp_path, "locked", data), timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 65, out
    assert "credentials" in out and "Traceback" not in out
    assert aws_env["AWS_SECRET_ACCESS_KEY"] not in out


def test_no_secret_reaches_any_file_the_run_writes(tmp_path, s3_client, s3_bucket, aws_env):
    wandb_key = "FAKE-wandb-key-0b7d"
    secrets = [aws_env["AWS_SECRET_ACCESS_KEY"], aws_env["AWS_SESSION_TOKEN"], wandb_key]
    data = _upload_data(s3_client, s3_bucket, tmp_path)
    env = {"WANDB_MODE": "offline", "WANDB_API_KEY": wandb_key, "WANDB_DIR": str(tmp_path / "wb")}
    # A key put into the config by mistake is refused without showing its value.
    for group in ("logger=wandb", "seed=42"):  # logger chosen, and not (its default)
        mistake = run_inat(
            tmp_path, *_args(tmp_path, s3_bucket, data, group, f"+logger.api_key={wandb_key}")
        )
        assert mistake.returncode == 65, mistake.stdout + mistake.stderr
        assert "logger" in mistake.stdout and wandb_key not in mistake.stdout + mistake.stderr
    args = _args(tmp_path, s3_bucket, data, "logger=wandb")
    done = run_inat(tmp_path, *args, env=env)
    assert done.returncode == 0, done.stderr
    written = list(_objects(s3_client, s3_bucket, "runs/").values())
    written += [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    written += [out.encode() for out in (done.stdout, done.stderr, mistake.stdout, mistake.stderr)]
    assert len(written) > 10
    for secret in secrets:
        assert not any(secret.encode() in blob for blob in written), secret


def test_every_tracker_uses_the_run_storage_settings_not_the_environment(
    tmp_path, s3_client, s3_bucket, aws_env, s3_server, monkeypatch, mlflow_uri
):
    """The endpoint given as `storage.endpoint_url` only: every part of the run, the
    trackers' plots (read back through the results reader) included, must reach it."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    data = resolve_source("synthetic", tmp_path / "gen", {"train_per_class": 20, "image_side": 32})
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wb")}
    args = _args(
        tmp_path,
        s3_bucket,
        str(data),
        "logger=[wandb,tensorboard,mlflow,csv]",
        f"storage.endpoint_url={s3_server.endpoint_url}",
        "storage.retry_budget_s=5",
    )
    # Opened without the run's settings, storage would retry AWS's endpoint for 300 s.
    done = run_inat(tmp_path, *args, env=env, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr

    objects = _objects(s3_client, s3_bucket, "runs/default/")
    assert json.loads(objects["runs/default/result.json"])["status"] == "done"
    assert "runs/default/metrics.csv" in objects
    assert any(key.startswith("runs/default/tensorboard/") for key in objects)
    (wandb_file,) = (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb")
    final = history(wandb_file)[-1]
    assert final["plots/learning_curves/_type"] == "image-file"
    _client, run = mlflow_run(mlflow_uri, "default", f"s3://{s3_bucket}/runs/default")
    assert run.info.status == "FINISHED"

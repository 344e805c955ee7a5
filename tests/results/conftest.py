"""A real small sweep with its output on the S3 test server, made once for the results tests."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from helpers.runs import location, run_inat
from s3server import S3Server

import inat
from inat.storage import Storage

DEMO_JOB = Path(inat.__file__).parents[1] / "jobs" / "demo_sweep.yaml"


@dataclass
class S3Sweep:
    """jobs/demo_sweep.yaml (4 points, 3 epochs each, 400 generated images) trained with
    output on S3."""

    bucket: str
    uri: str  # s3://BUCKET/out/demo-sweep
    cache: Path  # the data cache the points trained from (their synthetic data)
    env: dict[str, str]  # the AWS_* environment of a job using the test server
    client: object  # boto3 S3 client

    def read_json(self, relpath: str) -> dict:
        """A JSON object of the sweep, read straight from S3."""
        key = f"out/demo-sweep/{relpath}"
        return json.loads(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def points(self) -> list[dict]:
        """The manifest's points, in index order."""
        return self.read_json("sweep.json")["points"]


@pytest.fixture(scope="session")
def s3_sweep(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Sweep]:
    """The demo sweep run by `inat sweep` in a subprocess, writing to a new bucket."""
    tmp = tmp_path_factory.mktemp("s3-sweep")
    env = s3_server.job_env(tmp)
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
    )
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            mp.delenv(name)  # the developer's own AWS setup must not leak in
        done = run_inat(
            tmp,
            "sweep",
            str(DEMO_JOB),
            f"output=s3://{bucket}/out",
            f"data.cache_dir={tmp}/cache",
            "data.synthetic.train_per_class=40",
            env=env,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    yield S3Sweep(bucket, f"s3://{bucket}/out/demo-sweep", tmp / "cache", env, client)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


# A tiny CNN that trains a point in seconds; the swept keys as jobs/scratch_bayes.yaml's.
SEARCH_JOB = """\
job:
  name: {method}
  overrides: [data.synthetic.train_per_class=20, data.synthetic.image_side=32,
              data.image_size=32, data.batch_size=16, "model.filters=[4,4,4,4,4]",
              model.kernel_size=3, model.dense_neurons=8, model.batch_norm=true,
              optimizer=adam, scheduler=constant, trainer.epochs=3]
  sweep:
    method: {method}
    run_cap: 6
    parallelism: 2
    early_terminate: {{type: hyperband, min_iter: 1, eta: 3}}
    parameters:
      optimizer.lr: {{distribution: log_uniform_values, min: 1.0e-3, max: 1.0}}
      model.dropout: {{distribution: uniform, min: 0.0, max: 0.5}}
"""


def _search_sweep(tmp: Path, method: str) -> Path:
    """A sweep of 6 points of SEARCH_JOB with `method`, run by `inat sweep`; its folder."""
    job = tmp / f"{method}.yaml"
    job.write_text(SEARCH_JOB.format(method=method))
    done = run_inat(tmp, "sweep", str(job), *location(tmp))
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp / "out" / method


@pytest.fixture(scope="session")
def bayes_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adaptive (bayes) sweep with Hyperband pruning, 6 points on 2 workers, local."""
    return _search_sweep(tmp_path_factory.mktemp("bayes-sweep"), "bayes")


@pytest.fixture(scope="session")
def random_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same search drawn at random: 6 points, the same pruning."""
    return _search_sweep(tmp_path_factory.mktemp("random-sweep"), "random")


# The classes of the runs that write_multirun writes.
MULTIRUN_CLASSES = ["Digitaria ciliaris", "Digitaria ischaemum", "Digitaria sanguinalis"]


def _nested(dotted: Mapping[str, Any]) -> dict[str, Any]:
    """{"optimizer.lr": 0.1} -> {"optimizer": {"lr": 0.1}}."""
    nested: dict[str, Any] = {}
    for key, value in dotted.items():
        *parents, last = key.split(".")
        branch = nested
        for parent in parents:
            branch = branch.setdefault(parent, {})
        branch[last] = value
    return nested


def _write_multirun(sweep: Storage, points: Sequence[Mapping[str, Any]]) -> None:
    """A finished `inat train -m` multirun in `sweep` (local or s3://), as the trainer writes
    one: a run directory per point, whose config.yaml holds the point's settings (dotted keys,
    e.g. {"optimizer.lr": 0.001}), with two epochs of metrics and test scores; the
    validation accuracies differ from point to point."""
    output, name = sweep.uri.rstrip("/").rsplit("/", 1)
    for index, settings in enumerate(points):
        folder = f"{index:03d}-point"
        run = sweep.child(folder)
        config = {"output": output, "name": name, "run_dir": f"{sweep.uri}/{folder}"}
        run.write_text("config.yaml", yaml.safe_dump({**config, **_nested(settings)}))
        accuracy = 0.3 + 0.4 * (index * 7 % len(points)) / len(points)
        rows = [
            {
                "epoch": epoch,
                "train_loss": 2.0 / epoch,
                "val_loss": 2.2 / epoch,
                "train_accuracy": accuracy * epoch / 2,
                "val_accuracy": accuracy * epoch / 2,
            }
            for epoch in (1, 2)
        ]
        run.write_text("metrics.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
        test = {
            "accuracy": accuracy,
            "per_class_accuracy": dict.fromkeys(MULTIRUN_CLASSES, accuracy),
            "confusion_matrix": [[4 if i == j else 1 for j in range(3)] for i in range(3)],
        }
        result = {
            "status": "done",
            "epochs": 2,
            "epochs_planned": 2,
            "best_val_accuracy": accuracy,
            "classes": MULTIRUN_CLASSES,
            "test": test,
        }
        run.write_json("result.json", result)


@pytest.fixture
def write_multirun() -> Callable[[Storage, Sequence[Mapping[str, Any]]], None]:
    """Writes a finished multirun of hand-made run directories, in no time (see
    _write_multirun)."""
    return _write_multirun

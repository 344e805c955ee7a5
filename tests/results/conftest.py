"""A real small sweep with its output on the S3 test server, made once for the results tests."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from helpers.runs import run_inat
from s3server import S3Server

import inat

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

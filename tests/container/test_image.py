"""The image, run as users and the clusters run it: help by default, a non-root user,
`inat smoke` on the CPU, a training job writing to S3, and SIGTERM ending in a checkpoint.

The S3 test server listens on 127.0.0.1; the containers share the host's network.
"""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from helpers.runs import TINY

from inat import __version__
from inat.errors import ExitCode

from .podman import REPO, engine_env, env_options, image_config, podman

pytestmark = pytest.mark.slow

CHECKS = {"accelerator": "PASS", "training": "PASS", "checkpoint": "PASS", "data": "PASS"}


@dataclass(frozen=True)
class S3Job:
    """Containers of the image that use the S3 test server."""

    image: str
    options: list[str]  # `podman run` options: the host's network, the AWS environment
    bucket: str
    client: Any

    def read_json(self, key: str) -> dict:
        """A JSON object in the bucket."""
        return json.loads(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def train(self, *overrides: str) -> list[str]:
        """The `podman run` command line of `inat train` writing to s3://BUCKET/runs/job."""
        return [
            "podman", "run", *self.options, self.image, "inat", "train",
            f"output=s3://{self.bucket}/runs", *TINY, "name=job", *overrides,
        ]  # fmt: skip


@pytest.fixture
def s3_job(image, aws_env, s3_bucket, s3_client) -> S3Job:
    """Containers of the image with the test server's fake credentials and endpoint."""
    options = ["--rm", "--network", "host", *env_options(aws_env)]
    return S3Job(image, options, s3_bucket, s3_client)


def test_no_arguments_print_the_help_and_exit_0(image):
    done = podman("run", "--rm", image)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: inat")
    assert "smoke" in done.stdout


def test_runs_as_a_non_root_user_with_a_writable_home(image):
    script = 'id -u; echo "$HOME"; touch "$HOME/probe" && echo writable'
    done = podman("run", "--rm", image, "sh", "-c", script)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1000", "/home/inat", "writable"]


def test_sigterm_stops_a_process_that_does_not_handle_it(image):
    # The kernel drops a signal to PID 1 that has no handler for it: without an init as
    # PID 1 (tini), a container stopped before training starts (imports, a data download)
    # would sit out the grace period until SIGKILL.
    name = f"inat-init-{uuid.uuid4().hex[:8]}"
    sleeper = "print('ready', flush=True); import time; time.sleep(300)"
    container = subprocess.Popen(
        ["podman", "run", "--rm", "--name", name, image, "python", "-c", sleeper],
        env=engine_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert container.stdout.readline() == "ready\n"
        podman("kill", "--signal", "TERM", name)
        assert container.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if container.poll() is None:
            podman("kill", name)
            container.wait(timeout=60)


def test_labels_and_stamps_name_the_version_and_commit(image):
    config = image_config(image)
    labels = config["Labels"]
    env = dict(item.split("=", 1) for item in config["Env"])
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)

    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.source"].startswith("https://")
    if head.returncode == 0:
        assert labels["org.opencontainers.image.revision"].startswith(head.stdout.strip())
    assert env["INAT_GIT_COMMIT"] == labels["org.opencontainers.image.revision"]
    assert env["INAT_IMAGE"] == image
    assert config["User"] == "1000:1000"


def test_a_rebuild_at_another_commit_restamps_the_cached_image(image, build_image):
    # On top of the cached layers of `image`: a new commit must never inherit the old stamps.
    revision = uuid.uuid4().hex
    restamped = build_image("localhost/inat:restamped", "--build-arg", f"REVISION={revision}")
    try:
        config = image_config(restamped)
    finally:
        podman("rmi", restamped)
    env = dict(item.split("=", 1) for item in config["Env"])

    assert config["Labels"]["org.opencontainers.image.revision"] == revision
    assert env["INAT_GIT_COMMIT"] == revision
    assert env["INAT_IMAGE"] == "localhost/inat:restamped"


def test_smoke_passes_on_the_cpu_under_the_charts_restrictions(s3_job):
    s3_job.client.put_object(Bucket=s3_job.bucket, Key="data/nature_12K.zip", Body=b"not read")
    # As the Helm chart runs it: a read-only root file system, /tmp writable, HOME there.
    restricted = ["--read-only", "--user", "1000:1000", "--env", "HOME=/tmp", "--workdir", "/tmp"]
    smoke = [
        "inat", "smoke", f"output=s3://{s3_job.bucket}/runs",
        f"data.source=s3://{s3_job.bucket}/data/nature_12K.zip",
    ]  # fmt: skip

    done = podman("run", *s3_job.options, *restricted, s3_job.image, *smoke)

    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert {line.split()[1]: line.split()[0] for line in lines[1:-1]} == CHECKS, done.stdout
    assert "fp16 skipped" in done.stdout  # no GPU here
    assert s3_job.client.list_objects_v2(Bucket=s3_job.bucket, Prefix="runs/")["KeyCount"] == 0


def test_a_training_job_writes_its_run_to_s3_stamped_with_the_image(s3_job):
    done = subprocess.run(
        s3_job.train("trainer.epochs=1"),
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    result = s3_job.read_json("runs/job/result.json")
    assert result["status"] == "done"
    assert result["versions"]["image"] == s3_job.image
    labels = image_config(s3_job.image)["Labels"]
    assert result["versions"]["git_commit"] == labels["org.opencontainers.image.revision"]
    assert s3_job.read_json("runs/job/checkpoints/latest.json")["epoch"] == 1


def test_sigterm_checkpoints_exits_75_and_the_rerun_resumes(s3_job):
    name = f"inat-sigterm-{uuid.uuid4().hex[:8]}"
    command = s3_job.train("trainer.epochs=3")
    command[2:2] = ["--name", name]
    container = subprocess.Popen(
        command, env=engine_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen = []
    for line in container.stdout:  # the log says when training is under way: no sleeping
        seen.append(line)
        if "epoch 2/3 2/" in line:
            podman("kill", "--signal", "TERM", name)
            break
    seen.append(container.stdout.read())
    container.wait(timeout=300)

    assert container.returncode == ExitCode.RETRY, "".join(seen)
    assert s3_job.read_json("runs/job/result.json")["status"] == "interrupted"
    latest = s3_job.read_json("runs/job/checkpoints/latest.json")

    rerun = subprocess.run(command, env=engine_env(), capture_output=True, text=True, timeout=300)

    assert rerun.returncode == ExitCode.OK, rerun.stdout + rerun.stderr
    result = s3_job.read_json("runs/job/result.json")
    assert result["status"] == "done"
    assert result["epochs"] == 3
    assert [resume["epoch"] for resume in result["resumes"]] == [latest["epoch"]]

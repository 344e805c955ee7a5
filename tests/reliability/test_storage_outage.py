"""Longer S3 outages, for real: the run's requests go through a TCP proxy in front of a real
S3 server, which the test cuts and restores. A run outlasts an outage shorter than its retry
budget (5 s against a budget of 10 s; 60 s against the default settings in the soak tier);
past its retry budget it exits 75 and the next start resumes it (the exit is recorded as
interrupted where the run directory can still be written: see test_faults)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import boto3
import pytest
from helpers.runs import TINY, inat_command
from helpers.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


class Run:
    """`inat train` into s3://BUCKET/runs through `proxy`, its output read in a thread."""

    def __init__(self, tmp_path: Path, proxy: TcpProxy, bucket: str, *overrides: str) -> None:
        args = [
            "train",
            *TINY,
            "trainer.epochs=3",
            f"data.cache_dir={tmp_path}/cache",
            f"output=s3://{bucket}/runs",
            f"storage.endpoint_url={proxy.endpoint_url}",
            *overrides,
        ]
        self.proc = subprocess.Popen(
            inat_command(*args),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._new = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._new:
                self.lines.append(line)
                self._new.notify_all()

    def wait_for(self, text: str, timeout: float = 300) -> None:
        """Block until a line of the run's output holds `text`."""
        with self._new:
            found = self._new.wait_for(
                lambda: any(text in line for line in self.lines) or self.proc.poll() is not None,
                timeout=timeout,
            )
        assert found and any(text in line for line in self.lines), self.output

    @property
    def output(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def proxy(s3_server, s3_bucket) -> TcpProxy:
    """A proxy in front of the test server; the test's bucket is on it."""
    proxy = TcpProxy(s3_server.port)
    yield proxy
    proxy.cut()


def _result(bucket: str) -> dict:
    client = boto3.session.Session().client("s3")
    body = client.get_object(Bucket=bucket, Key="runs/default/result.json")["Body"]
    return json.loads(body.read())


@pytest.mark.parametrize(
    ("outage_s", "settings"),
    [
        pytest.param(5, ["storage.retry_budget_s=10"], id="5s-of-10s"),
        pytest.param(60, [], id="60s-default-settings", marks=pytest.mark.soak),
    ],
)
def test_an_outage_within_the_retry_budget_is_outlasted(
    tmp_path: Path, proxy: TcpProxy, s3_bucket: str, outage_s: float, settings: list[str]
) -> None:
    run = Run(tmp_path, proxy, s3_bucket, *settings)
    run.wait_for("epoch 1/3 train_loss")
    proxy.cut()
    cut_at = time.monotonic()
    run.wait_for("retrying for up to")  # past botocore's own attempts: the budget in time
    time.sleep(max(0.0, outage_s - (time.monotonic() - cut_at)))  # the outage's length
    proxy.reconnect(proxy.upstream_port)
    assert run.proc.wait(timeout=600) == 0, run.output
    result = _result(s3_bucket)
    assert result["status"] == "done" and result["epochs"] == 3


def test_past_its_budget_a_run_exits_75_and_the_next_start_resumes(
    tmp_path: Path, proxy: TcpProxy, s3_bucket: str
) -> None:
    run = Run(tmp_path, proxy, s3_bucket, "storage.retry_budget_s=2", "storage.max_attempts=2")
    run.wait_for("epoch 1/3 train_loss")
    proxy.cut()
    assert run.proc.wait(timeout=300) == 75, run.output
    assert "S3 stayed unreachable for" in run.output and "(exit code 75: RETRY)" in run.output
    proxy.reconnect(proxy.upstream_port)
    again = Run(tmp_path, proxy, s3_bucket)
    assert again.proc.wait(timeout=300) == 0, again.output
    assert "resume: yes" in again.output or "resuming" in again.output
    result = _result(s3_bucket)
    assert result["status"] == "done" and result["epochs"] == 3

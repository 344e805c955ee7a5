"""A real MLflow tracking server on 127.0.0.1, its runs in a SQLite file, and the MLflow
run of a run directory read back with MlflowClient."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from inat.train.tracker import RUN_DIR_TAG

STARTUP_S = 120  # the first start migrates a new database


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """Run `mlflow server` with its store in `folder`; yields its tracking URI once its
    health endpoint answers, and stops it after."""
    port = _free_port()
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"),
        *("--artifacts-destination", str(folder / "artifacts"), "--workers", "1"),
    ]
    log = (folder / "server.log").open("w")
    # Its own process group: the server's workers stop with it.
    proc = subprocess.Popen(
        command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while not _healthy(uri):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start: {(folder / 'server.log').read_text()}"
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.2)  # the interval between polls; returns early if it died
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _healthy(uri: str) -> bool:
    try:
        return requests.get(f"{uri}/health", timeout=2).status_code == 200
    except (requests.ConnectionError, requests.Timeout):  # not listening, or still starting
        return False


def mlflow_run(uri: str, experiment: str, run_dir: Path | str) -> tuple[Any, Any]:
    """The one MLflow run of `run_dir` (a path or an s3:// URI) in `experiment`, and its
    MlflowClient."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id],
        filter_string=f"tags.`{RUN_DIR_TAG}` = '{run_dir}'",
    )
    assert len(runs) == 1
    return client, runs[0]

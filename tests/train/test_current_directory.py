"""The current directory stays as it was: no Hydra log folders, no multirun.yaml, no
./mlflow.db. What a run has to say is in its run directory; MLflow without a server
records into the output folder and says so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.runs import TINY, run_inat

pytestmark = pytest.mark.slow


def _in(tmp_path: Path) -> tuple[Path, list[str]]:
    """An empty working directory, and overrides that write outside it."""
    work = tmp_path / "work"
    work.mkdir()
    return work, [f"output={tmp_path}/out", f"data.cache_dir={tmp_path}/cache"]


def test_train_a_multirun_results_and_mlflow_leave_the_current_directory_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    work, where = _in(tmp_path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}

    single = run_inat(work, "train", *TINY, "trainer.epochs=1", "logger=mlflow", *where, env=env)
    assert single.returncode == 0, single.stdout + single.stderr
    database = tmp_path / "out" / "mlflow.db"
    assert database.stat().st_size > 0
    assert f"MLflow: MLFLOW_TRACKING_URI is not set; runs go to sqlite:///{database}" in (
        single.stdout + single.stderr
    )

    multirun = ["train", "-m", *TINY, "name=m", "trainer.epochs=1", "model.dropout=0.1,0.2"]
    several = run_inat(work, *multirun, *where, env=env)
    assert several.returncode == 0, several.stdout + several.stderr
    assert len(list((tmp_path / "out" / "m").iterdir())) == 2

    shown = run_inat(work, "results", f"{tmp_path}/out/m", env=env)
    assert shown.returncode == 0, shown.stdout + shown.stderr

    assert os.listdir(work) == []
    # Hydra's multirun.yaml (the overrides) went to a temporary folder, deleted after it.
    assert not list(scratch.glob("inat-multirun-*"))


def test_mlflow_without_a_server_is_refused_for_an_output_on_s3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_env, s3_bucket
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    work, where = _in(tmp_path)
    args = ["train", *TINY, "trainer.epochs=1", "logger=mlflow", *where]
    done = run_inat(work, *args, f"output=s3://{s3_bucket}/runs")
    assert done.returncode == 65, done.stdout + done.stderr
    assert "needs an MLflow server: set MLFLOW_TRACKING_URI" in done.stdout + done.stderr
    assert os.listdir(work) == []

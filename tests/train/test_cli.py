"""The `inat` command: help, bad overrides failing early with exit code 65, multirun points."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers.runs import TINY, location, run_inat

import inat


def test_help_lists_the_commands(tmp_path):
    done = run_inat(tmp_path, "--help")
    assert done.returncode == 0
    assert "train" in done.stdout and "data" in done.stdout and "65" in done.stdout


def test_version_prints_the_package_version(tmp_path):
    done = run_inat(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"inat {inat.__version__}"


def test_a_bare_inat_prints_the_help(tmp_path):
    done = run_inat(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == run_inat(tmp_path, "--help").stdout
    assert "evaluate" in done.stdout


def test_train_help_lists_config_groups(tmp_path):
    done = run_inat(tmp_path, "train", "--help")
    assert done.returncode == 0
    for group in ("data:", "model:", "optimizer:", "experiment:"):
        assert group in done.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.activation=swish", "model.activation='swish' is not allowed"),
        ("model.filters=[8,16,16,32]", "model.filters"),
        ("data.image_size=16", "data.image_size=16"),
        ("trainer.mixed_precision=fp8", "trainer.mixed_precision='fp8'"),
        ("data.batch_size=15", "data.batch_size=15"),
        ("no_such_key=1", "no_such_key"),
        ("model=no_such_model", "no_such_model"),
    ],
)
def test_bad_overrides_fail_before_any_data_is_touched(tmp_path, override, message):
    done = run_inat(
        tmp_path, "train", *TINY, *location(tmp_path), "trainer.grad_accum_steps=2", override
    )
    assert done.returncode == 65, done.stderr
    assert message in done.stderr + done.stdout
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_multirun_trains_each_point_in_its_own_run_directory(tmp_path):
    done = run_inat(
        tmp_path,
        "train",
        "-m",
        *TINY,
        *location(tmp_path),
        "trainer.epochs=1",
        "model.dropout=0.0,0.1",
    )
    assert done.returncode == 0, done.stderr
    points = sorted((tmp_path / "out" / "default").iterdir())
    assert [p.name.split("-")[0] for p in points] == ["000", "001"]
    assert "model.dropout=0.1" in points[1].name
    for point in points:
        result = json.loads((point / "result.json").read_text())
        assert result["status"] == "done"
        assert result["epochs"] == 1


def test_an_unexpected_crash_is_reported_without_the_overrides(tmp_path):
    # The fault, a bug in the trainer, is injected in a child process running the command.
    crash = (
        "import sys, inat.train, inat.cli\n"
        "def crash(cfg):\n"
        "    raise RuntimeError('a bug')\n"
        "inat.train.train = crash\n"
        "sys.exit(inat.cli.main(sys.argv[1:]))\n"
    )
    source = "data.source=https://user:hunter2@127.0.0.1:9/nature_12K.zip"
    args = ["train", *TINY, *location(tmp_path), source]

    done = subprocess.run(
        [sys.executable, "-c", crash, *args], cwd=tmp_path, capture_output=True, text=True
    )

    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert "unexpected failure" in output and "RuntimeError: a bug" in output
    assert "hunter2" not in output


def _files(folder) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_a_multirun_is_refused_in_the_folder_of_a_run(tmp_path):
    run = run_inat(tmp_path, "train", *TINY, *location(tmp_path), "trainer.epochs=1")
    assert run.returncode == 0, run.stderr
    run_dir = tmp_path / "out" / "default"
    before = _files(run_dir)

    done = run_inat(tmp_path, "train", "-m", *TINY, *location(tmp_path), "model.dropout=0.0,0.1")

    output = done.stdout + done.stderr
    assert done.returncode == 65, output
    assert f"{run_dir} holds a single run (config.yaml)" in output
    assert "inat train -m name=default-sweep" in output
    assert _files(run_dir) == before  # no point landed inside the run directory


def test_a_run_is_refused_in_the_folder_of_a_multirun(tmp_path):
    multirun = run_inat(
        tmp_path,
        "train",
        "-m",
        *TINY,
        *location(tmp_path),
        "trainer.epochs=1",
        "model.dropout=0.0,0.1",
    )
    assert multirun.returncode == 0, multirun.stderr
    folder = tmp_path / "out" / "default"
    before = _files(folder)

    done = run_inat(tmp_path, "train", *TINY, *location(tmp_path), "trainer.epochs=1")

    output = done.stdout + done.stderr
    assert done.returncode == 65, output
    assert f"{folder} holds the points of a multirun or sweep (000-" in output
    assert "inat train name=default-run" in output
    assert _files(folder) == before

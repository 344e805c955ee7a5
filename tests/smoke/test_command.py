"""`inat smoke` as a user runs it: one line per check, and an exit code that tells."""

from __future__ import annotations

import re

import pytest
import torch
from helpers.runs import run_inat

from inat.errors import ExitCode

pytestmark = pytest.mark.slow

LINE = re.compile(r"^(PASS|FAIL|SKIP) ([a-z0-9-]+) \((\d+\.\d\d) s\): (.+)$")
CHECKS = ["accelerator", "training", "checkpoint", "data"]


def report(stdout: str) -> dict[str, tuple[str, str]]:
    """Check name -> (status, detail), from the lines in the documented format."""
    found = [LINE.match(line) for line in stdout.splitlines()]
    return {m[2]: (m[1], m[4]) for m in found if m}


def test_every_check_passes_with_a_local_output_and_leaves_nothing_there(tmp_path):
    done = run_inat(tmp_path, "smoke", f"output={tmp_path}/out")

    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    checks = report(done.stdout)
    assert list(checks) == CHECKS, done.stdout
    assert [status for status, _ in checks.values()] == ["PASS", "PASS", "PASS", "SKIP"]
    assert "generated" in checks["data"][1]
    assert "identical, deleted" in checks["checkpoint"][1]
    if not torch.cuda.is_available():
        assert "no CUDA device" in checks["accelerator"][1]
        assert "fp16 skipped" in checks["training"][1]
    assert re.search(r"3 passed, 0 failed, 1 skipped", done.stdout)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_failing_check_fails_the_command_naming_the_problem(tmp_path, aws_env):
    missing = tmp_path / "nature_12K.zip"
    done = run_inat(
        tmp_path, "smoke", "output=s3://no-such-bucket-for-smoke/runs", f"data.source={missing}"
    )

    assert done.returncode == ExitCode.FAILURE, done.stdout + done.stderr
    checks = report(done.stdout)
    assert checks["accelerator"][0] == checks["training"][0] == "PASS"
    assert checks["checkpoint"][0] == "FAIL"
    assert "no-such-bucket-for-smoke" in checks["checkpoint"][1]
    assert checks["data"] == ("FAIL", checks["data"][1])
    assert str(missing) in checks["data"][1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible here")
def test_require_gpu_without_one_fails_first_naming_the_versions(tmp_path, nvidia_smi):
    nvidia_smi("550.54.15\n")  # a cluster's driver, too old for a CUDA 13 PyTorch

    done = run_inat(tmp_path, "smoke", "--require-gpu", f"output={tmp_path}/out")

    assert done.returncode == ExitCode.FAILURE, done.stdout + done.stderr
    checks = report(done.stdout)
    assert list(checks) == CHECKS, done.stdout
    status, detail = checks["accelerator"]
    assert status == "FAIL"
    versions = f"NVIDIA driver 550.54.15, CUDA {torch.version.cuda}, torch {torch.__version__}"
    assert versions in detail
    if torch.version.cuda and torch.version.cuda.startswith("13."):
        assert "driver >= 580: use the image's CUDA 12 build" in detail
    # The slower checks never ran: no training, nothing written to the output.
    not_run = ("SKIP", "not run: --require-gpu and no usable GPU")
    assert [checks[name] for name in CHECKS[1:]] == [not_run] * 3
    assert not (tmp_path / "out").exists()
    assert re.search(r"0 passed, 1 failed, 3 skipped", done.stdout)


def test_overrides_that_do_not_compose_are_bad_input(tmp_path):
    done = run_inat(tmp_path, "smoke", "no_such_key=1")

    assert done.returncode == ExitCode.BAD_INPUT
    assert "no_such_key" in done.stderr
    assert "inat train --help" in done.stderr
    assert not report(done.stdout)

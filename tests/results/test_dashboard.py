"""`inat results SWEEP --dashboard`: the sweep's points in optuna-dashboard, served from a
study rebuilt in memory from the sweep folder (local or S3), opened in headless Chromium."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.runs import inat_command

from inat.cli import main
from inat.errors import ExitCode
from inat.results.dashboard import sweep_study
from inat.sweeps.jobs import override_value

pytestmark = pytest.mark.slow

STATES = {"done": "Complete", "pruned": "Pruned", "failed": "Fail"}
READY_S = 120  # the server's start on a busy 2-core machine: imports, reading the sweep


def _chromium() -> str:
    """The Chromium binary; the test skips without one (fails in CI, which installs it)."""
    binary = shutil.which("chromium")
    if binary is None:
        reason = "chromium is not installed: bash scripts/install-chromium.sh (root, Debian)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"this test must run in CI: {reason}")
        pytest.skip(reason)
    return binary


@dataclass
class Dashboard:
    """A running `inat results SWEEP --dashboard --port 0`."""

    process: subprocess.Popen[str]
    url: str  # the study's page, as printed
    base: str  # http://127.0.0.1:PORT

    def get_json(self, path: str) -> dict:
        """A JSON answer of the dashboard's API."""
        with urllib.request.urlopen(f"{self.base}{path}", timeout=30) as answer:
            return json.loads(answer.read())


def _wait_ready(base: str, process: subprocess.Popen[str]) -> None:
    """Poll the API until it answers (the server prints its URL once it listens)."""
    deadline = time.monotonic() + READY_S
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/studies", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError) as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"the dashboard at {base} did not answer: {e}") from e
        try:  # the poll's interval, and a server that died ends the wait
            code = process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"the dashboard ended (exit {code}) before it served")


@pytest.fixture
def dashboard(bayes_sweep: Path) -> Iterator[Dashboard]:
    """The bayes sweep served on a free port; stopped with Ctrl-C (SIGINT) afterwards."""
    process = subprocess.Popen(
        inat_command("results", str(bayes_sweep), "--dashboard", "--port", "0"),
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    line = process.stdout.readline()  # "NAME (N points) in optuna-dashboard: URL"
    assert " in optuna-dashboard: http://127.0.0.1:" in line, line
    url = line.rsplit(": ", 1)[1].strip()
    base = url.split("/dashboard", 1)[0]
    _wait_ready(base, process)
    yield Dashboard(process, url, base)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def _recorded(sweep: Path) -> dict[int, dict]:
    """Each point's status and validation accuracy per epoch, by index, from disk."""
    points = {}
    for claim_file in sorted((sweep / "claims").glob("*.json")):
        claim = json.loads(claim_file.read_text())
        run = sweep / claim["name"]
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        status = json.loads((run / "result.json").read_text())["status"]
        points[claim["index"]] = {"status": status, "val": [r["val_accuracy"] for r in rows]}
    return points


def test_the_api_lists_every_point_with_its_state_and_values(dashboard, bayes_sweep):
    (summary,) = dashboard.get_json("/api/studies")["study_summaries"]
    assert (summary["study_name"], summary["directions"]) == ("bayes", ["maximize"])
    study = dashboard.get_json(f"/api/studies/{summary['study_id']}?after=0")
    recorded = _recorded(bayes_sweep)
    assert [t["number"] for t in study["trials"]] == sorted(recorded)
    for trial in study["trials"]:
        point = recorded[trial["number"]]
        assert trial["state"] == STATES[point["status"]]
        steps = [v["value"] for v in sorted(trial["intermediate_values"], key=lambda v: v["step"])]
        assert steps == pytest.approx(point["val"])
        if point["status"] == "done":
            assert trial["values"] == pytest.approx([max(point["val"])])
        assert {p["name"] for p in trial["params"]} == {"model.dropout", "optimizer.lr"}


def test_chromium_shows_the_sweep_and_its_best_point(dashboard, bayes_sweep, tmp_path):
    chromium = _chromium()
    recorded = _recorded(bayes_sweep)
    done = {i: max(p["val"]) for i, p in recorded.items() if p["status"] == "done"}
    best = min(done, key=lambda i: (-done[i], i))
    browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    # The page draws its plots from the API's answers: let it run 20 s of virtual time.
    shown = [*browser, "--virtual-time-budget=20000", "--window-size=1400,1000"]
    screenshot = tmp_path / "dashboard.png"
    shot = subprocess.run(
        [*shown, f"--screenshot={screenshot}", dashboard.url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
    print(f"dashboard screenshot: {screenshot}")
    dom = subprocess.run(
        [*shown, "--dump-dom", dashboard.url], capture_output=True, text=True, timeout=300
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "bayes (id=0)" in dom.stdout  # the study's name in the page's header
    assert f"Best Trial (number={best})" in dom.stdout
    assert "Hyperparameter Importance" in dom.stdout and "Intermediate values" in dom.stdout


def test_ctrl_c_stops_the_dashboard_with_exit_0(dashboard):
    dashboard.process.send_signal(signal.SIGINT)
    assert dashboard.process.wait(timeout=60) == 0


def test_a_grid_sweep_on_s3_is_rebuilt_with_its_points_values(s3_sweep, aws_env):
    study = sweep_study(s3_sweep.uri)
    points = s3_sweep.points()
    assert [t.number for t in study.trials] == [p["index"] for p in points]
    for trial, point in zip(study.trials, points, strict=True):
        result = s3_sweep.read_json(f"{point['name']}/result.json")
        assert trial.state.name == "COMPLETE" and result["status"] == "done"
        assert trial.value == pytest.approx(result["best_val_accuracy"])
        swept = dict(override.split("=", 1) for override in point["swept"])
        assert {k: override_value(v) for k, v in trial.params.items()} == swept


def test_a_port_in_use_is_refused_naming_it(bayes_sweep, caplog):
    caplog.set_level(logging.ERROR, logger="inat")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["results", str(bayes_sweep), "--dashboard", "--port", str(port)])
    assert code == ExitCode.BAD_INPUT
    assert f"cannot serve on 127.0.0.1:{port}" in caplog.text

"""One process trains a run directory at a time: a second `inat train` of a run that is
being trained is refused with exit 75 (the scheduler retries later) and changes nothing;
once the first has ended, the run is done and a rerun says so."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from helpers.runs import TINY, inat_command, location, run_inat

pytestmark = pytest.mark.slow


def test_a_run_being_trained_is_refused_to_a_second_process(tmp_path: Path) -> None:
    args = ["train", *TINY, "trainer.epochs=4", *location(tmp_path)]
    first = subprocess.Popen(
        inat_command(*args),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in first.stdout:  # wait until it trains (it holds the lease by then)
        if "epoch 1/4 train_loss" in line:
            break
    # Paused while the second one tries: it cannot finish meanwhile, however slow the
    # second one's start. A stopped process is alive: its lease holds.
    first.send_signal(signal.SIGSTOP)
    try:
        second = run_inat(tmp_path, *args)
    finally:
        first.send_signal(signal.SIGCONT)
    first.stdout.read()
    assert first.wait(timeout=300) == 0
    output = second.stdout + second.stderr
    assert second.returncode == 75, output
    assert "being trained by" in output and "Not training it twice" in output
    run = tmp_path / "out" / "default"
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "done" and result["epochs"] == 4
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4  # one writer
    again = run_inat(tmp_path, *args)
    assert again.returncode == 0 and "already done" in again.stdout + again.stderr

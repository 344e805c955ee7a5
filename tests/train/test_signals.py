"""Ctrl-C (SIGINT) and a closed terminal (SIGHUP) stop a run as SIGTERM does: a checkpoint,
status interrupted, one log line, exit 75, no traceback; the next start resumes. train.log
keeps the lines of both attempts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.runs import TINY, inat_command, location, read_metrics, run_inat

pytestmark = pytest.mark.slow

MANY = ["train", *TINY, "trainer.epochs=200"]


def _start_and_signal(
    tmp_path: Path, sig: int, *extra: str, group: bool = False
) -> tuple[int, str]:
    """Start a long run, send `sig` once metrics.jsonl shows a finished epoch (to its
    whole process group, as a terminal sends Ctrl-C, with `group`); returns the exit code
    and the output."""
    out = tmp_path / "output.txt"
    metrics = tmp_path / "out" / "default" / "metrics.jsonl"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            inat_command(*MANY, *extra, *location(tmp_path)),
            cwd=tmp_path,
            env={**os.environ, "WANDB_MODE": "disabled"},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=group,
        )
        deadline = time.monotonic() + 300
        while not (metrics.exists() and metrics.read_text().strip()):
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, "no epoch finished in 300 s"
            time.sleep(0.05)  # polling the file, not a synchronisation by time
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        code = proc.wait(timeout=300)
    return code, out.read_text()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_sigint_and_sighup_checkpoint_exit_75_and_the_next_start_resumes(tmp_path, sig):
    code, output = _start_and_signal(tmp_path, sig)

    assert code == 75, output
    assert "Traceback" not in output
    assert output.count(f"received {signal.Signals(sig).name}: checkpointing and stopping") == 1
    run_dir = tmp_path / "out" / "default"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "interrupted" and "stopped by a signal" in result["error"]
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    finished = latest["epoch"]
    assert finished >= 1

    # Resumed with fewer epochs than planned (not fewer than finished): it ends there.
    args = [*MANY, f"trainer.epochs={finished + 1}", *location(tmp_path)]
    resumed = run_inat(tmp_path, *args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    final = json.loads((run_dir / "result.json").read_text())
    assert final["status"] == "done" and final["epochs"] == finished + 1
    assert [r["epoch"] for r in final["resumes"]] == [finished]
    assert len(read_metrics(run_dir)) == finished + 1

    # train.log: both attempts, in order, with the signal, the stop and the resume.
    log = (run_dir / "train.log").read_text()
    lines = [
        "resume: no: a new run",
        f"received {signal.Signals(sig).name}: checkpointing and stopping",
        "Interrupted: stopped by a signal",
        # The resume line says where the stop line said the run stopped.
        f"resuming {run_dir} from {latest['path']} ({_where(result['error'])}",
        f"resume: yes, from checkpoint {latest['path']} after epoch {finished}",
        "done: best val_acc=",
    ]
    positions = [log.find(line) for line in lines]
    assert -1 not in positions, log
    assert positions == sorted(positions)
    assert log.count("run directory: ") == 2


def test_ctrl_c_to_the_process_group_with_loader_workers_stops_the_same_way(tmp_path):
    # The workers get SIGINT too; they must neither die of it nor log it.
    code, output = _start_and_signal(tmp_path, signal.SIGINT, "data.num_workers=2", group=True)

    assert code == 75, output
    assert "Traceback" not in output
    assert output.count("received SIGINT: checkpointing and stopping") == 1
    result = json.loads((tmp_path / "out" / "default" / "result.json").read_text())
    assert result["status"] == "interrupted"


def _where(error: str) -> str:
    """ "in epoch 3" or "after epoch 2", from "stopped by a signal in epoch 3; ..."."""
    return error.split("stopped by a signal ")[1].split(";")[0]


@pytest.mark.parametrize(
    "moment",
    [
        "received SIGINT: checkpointing and stopping",  # the stop is asked for
        "saving checkpoint",  # the mid-epoch checkpoint is written
        "stopped by a signal in epoch 2; checkpoint saved",  # the process exits
    ],
)
def test_a_second_ctrl_c_while_stopping_changes_nothing(tmp_path, moment):
    """Ctrl-C twice, to the process group with loader workers, as an impatient user does:
    the second, once the log shows `moment` of the stop, is ignored; the checkpoint is
    intact and the next start resumes from it."""
    proc = subprocess.Popen(
        inat_command(*MANY, "data.num_workers=2", *location(tmp_path)),
        cwd=tmp_path,
        env={**os.environ, "WANDB_MODE": "disabled"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen, first = [], False
    for line in proc.stdout:
        seen.append(line)
        if first and moment in line:
            os.killpg(proc.pid, signal.SIGINT)
            break
        if not first and "epoch 2/200 5/20" in line:  # mid-epoch
            os.killpg(proc.pid, signal.SIGINT)
            first = True
    seen.append(proc.stdout.read())
    output = "".join(seen)
    assert proc.wait(timeout=120) == 75, output

    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert output.count("received SIGINT: checkpointing and stopping") == 1, output
    assert moment in output and "received SIGINT while" in output, output  # ignored
    run_dir = tmp_path / "out" / "default"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "interrupted", result
    finished = json.loads((run_dir / "checkpoints" / "latest.json").read_text())["epoch"]
    resumed = run_inat(tmp_path, *MANY, f"trainer.epochs={finished + 1}", *location(tmp_path))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resume: yes, from checkpoint" in resumed.stderr + resumed.stdout

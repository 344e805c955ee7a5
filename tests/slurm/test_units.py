"""The parts of the Slurm path that need no cluster: the point's command line (host,
container, several GPUs), the split of overrides, the controller's config and its checks,
exit codes in words, a point's process dying with its task, and shellcheck on the
scripts."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.runs import run_inat
from helpers.slurm import REPO, wait_for

from inat.errors import ConfigError
from inat.sweeps.slurm import queue
from inat.sweeps.slurm.controller import controller_config, split_overrides
from inat.sweeps.slurm.queue import exit_code_in_words
from inat.sweeps.slurm.submit import Container, point_command, processes_per_point
from inat.sweeps.slurm.task import exit_status

SCRIPTS = sorted([*(REPO / "slurm").glob("*.sh"), *(REPO / "scripts").glob("*.sh")])


def test_a_point_runs_inat_sweep_on_the_hosts_python_by_default():
    command = point_command("/logs/job.yaml", 3, ["output=s3://b/runs"], 1, Container())
    assert command == [
        *(sys.executable, "-m", "inat", "sweep", "--index", "3", "/logs/job.yaml"),
        "output=s3://b/runs",
    ]


def test_a_point_with_several_gpus_runs_one_process_per_gpu_under_inat_launch():
    assert processes_per_point(None) == processes_per_point(0) == 1
    command = point_command("job.yaml", 0, [], processes_per_point(4), Container())
    launch = command[: command.index("sweep")]
    assert launch[1:5] == ["-m", "inat", "launch", "--multi_gpu"]
    assert launch[launch.index("--num_processes") + 1] == "4"
    assert command[command.index("sweep") :] == ["sweep", "--index", "0", "job.yaml"]


def test_a_container_image_runs_the_point_with_apptainer_exec_nv_and_the_folders_bound():
    container = Container.from_config(
        {"image": "/images/inat.sif", "engine": "apptainer", "mounts": ["/scratch/data"]}
    )
    command = point_command(
        "/logs/job.yaml", 1, ["x=1"], 1, container, ["/home/me/sweeps", "/logs"]
    )
    assert command == [
        *("apptainer", "exec", "--nv", "--bind", "/home/me/sweeps,/logs,/scratch/data"),
        *("/images/inat.sif", "python", "-m", "inat", "sweep", "--index", "1", "/logs/job.yaml"),
        "x=1",
    ]


def test_an_unknown_container_engine_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"hydra.launcher.container.engine='docker'"):
        Container.from_config({"image": "inat.sif", "engine": "docker"})


def test_hydra_overrides_go_to_the_controller_and_the_others_to_every_point():
    points, controller = split_overrides(
        [
            "output=s3://b",
            "hydra.launcher.partition=gpu",
            "+hydra.launcher.x=1",
            "model.dropout=0.1",
        ]
    )
    assert points == ["output=s3://b", "model.dropout=0.1"]
    assert controller == ["hydra.launcher.partition=gpu", "+hydra.launcher.x=1"]


def test_the_controller_config_names_the_array_job_and_log_folder_after_the_sweep():
    cfg = controller_config("demo", ["hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher.name == "inat-demo"
    assert launcher.partition == "gpu"
    assert launcher.signal_delay_s > 0 and launcher.max_num_timeout > 0
    assert str(cfg.hydra.sweep.dir).startswith("logs/sweeps/demo/")


def test_a_misspelt_launcher_key_fails_before_anything_is_submitted():
    with pytest.raises(ConfigError, match=r"partiton.*configs/hydra/launcher/slurm.yaml"):
        controller_config("demo", ["hydra.launcher.partiton=gpu"])


def _submit(tmp_path, *overrides: str):
    """`inat sweep jobs/demo_sweep.yaml --launcher slurm OVERRIDES`, output in tmp_path."""
    job = str(REPO / "jobs" / "demo_sweep.yaml")
    return run_inat(
        tmp_path, "sweep", job, "--launcher", "slurm", *overrides, f"output={tmp_path}/out"
    )


def test_inat_sweep_on_slurm_refuses_a_bad_launcher_key_before_it_writes_anything(tmp_path):
    done = _submit(tmp_path, "hydra.launcher.partiton=gpu")
    assert done.returncode == 65, done.stderr
    assert "hydra.launcher.partiton" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_scripts_pass_shellcheck(script):
    if not shutil.which("shellcheck"):
        reason = "shellcheck is not installed: bash scripts/install-slurm.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(f"this test must run in CI: {reason}")
        pytest.skip(reason)
    done = subprocess.run(
        ["shellcheck", "--external-sources", str(script)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout


def test_a_warning_not_before_the_time_limit_is_refused_at_submission(tmp_path):
    overrides = ["hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=120"]
    with pytest.raises(ConfigError, match=r"signal_delay_s=120 is not below the time limit"):
        controller_config("demo", overrides)
    done = _submit(tmp_path, *overrides)
    assert done.returncode == 65, done.stderr
    assert "Raise timeout_min or lower signal_delay_s" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_warning_that_leaves_little_time_to_train_is_logged(caplog):
    controller_config("demo", ["hydra.launcher.timeout_min=4", "hydra.launcher.signal_delay_s=120"])
    assert "leaves 120 s of each attempt to train" in caplog.text


def test_slurm_exit_codes_are_put_in_words_with_the_signal_a_shell_would_report():
    assert exit_code_in_words("65:0") == "exit code 65"
    assert exit_code_in_words("137:0") == "exit code 137, signal SIGKILL"
    assert exit_code_in_words("0:9") == "exit code 0, signal SIGKILL"
    assert exit_code_in_words("0:0") == "exit code 0"
    assert exit_status(-signal.SIGKILL) == 137 and exit_status(65) == 65


def test_a_slurm_command_that_fails_warns_once_and_a_task_without_a_record_says_so(
    caplog, monkeypatch, tmp_path
):
    # No cluster: both commands fail at once on a config naming none. (A missing file
    # would make them look for a configless controller in DNS first, a minute each.)
    empty = tmp_path / "slurm.conf"
    empty.touch()
    monkeypatch.setenv("SLURM_CONF", str(empty))
    queue._warn_once.cache_clear()
    ends = {queue.how_it_ended("999_0") for _ in range(3)}
    assert ends == {"Slurm keeps no record of it (no accounting on this cluster)"}
    warnings = [r.getMessage().split(" ")[0] for r in caplog.records if r.levelname == "WARNING"]
    assert sorted(warnings) == ["sacct", "scontrol"]


def _state(pid: int) -> str | None:
    """Process `pid`'s state letter (Z: ended, not yet reaped), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_a_points_process_dies_with_the_task_process_that_started_it(tmp_path):
    # A stand-in for the task's wrapper: it starts a child as run_task does, then waits.
    wrapper = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, subprocess, sys\n"
            "from inat.processes import die_with_parent\n"
            "child = subprocess.Popen(['sleep', '600'],"
            " preexec_fn=lambda: die_with_parent(signal.SIGKILL))\n"
            "print(child.pid, flush=True)\n"
            "child.wait()\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    child = int(wrapper.stdout.readline())
    wrapper.kill()
    wrapper.wait(timeout=10)
    wait_for(lambda: _state(child) in (None, "Z"), 10, f"process {child} dies with its parent")

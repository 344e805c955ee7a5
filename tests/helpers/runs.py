"""Running inat in tests: the real config, shrunk to run in seconds on a CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import inat

CONFIG_DIR = str(Path(inat.__file__).parent / "configs")

# Small generated images, a small scratch CNN, a few short epochs: seconds on 2 cores.
TINY_DATA = [
    "data.synthetic.train_per_class=40",
    "data.synthetic.image_side=32",
    "data.image_size=32",
    "data.batch_size=16",
]
TINY_MODEL = [
    "model.filters=[8,16,16,32,32]",
    "model.kernel_size=3",
    "model.dense_neurons=32",
]
TINY_TRAINING = [
    "optimizer.lr=0.05",
    "scheduler=constant",
    "trainer.epochs=3",
    "trainer.log_every_n_steps=1",
]
# A fixed name: the tests find the run at OUTPUT/default (a run not given a name is named
# after its config: tests/train/test_run_names.py).
TINY = [*TINY_DATA, *TINY_MODEL, *TINY_TRAINING, "name=default"]
# On top of TINY: the tiny CNN with batch norm and Adam on a cosine schedule, which learns
# the generated images in 15 epochs of a few seconds.
LEARNS = [
    "model.batch_norm=true",
    "optimizer=adam",
    "optimizer.lr=0.003",
    "scheduler=cosine",
    "scheduler.warmup_epochs=0",
    "trainer.epochs=15",
]


def compose_cfg(tmp_path: Path, *overrides: str, base: list[str] = TINY) -> DictConfig:
    """The real train config with `base`, a run directory in tmp_path and `overrides` applied."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=[*location(tmp_path), *base, *overrides])


def location(tmp_path: Path) -> list[str]:
    """Overrides that keep a run's output and data cache inside tmp_path."""
    return [f"output={tmp_path}/out", f"data.cache_dir={tmp_path}/cache"]


def inat_command(*args: str) -> list[str]:
    """The command line of `inat` in a subprocess."""
    return [sys.executable, "-m", "inat", *args]


def run_inat(
    tmp_path: Path, *args: str, prefix: list[str] | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """Run `inat ARGS` in tmp_path and capture its output; `prefix` wraps the command."""
    env = {**os.environ, "WANDB_MODE": "disabled", **kwargs.pop("env", {})}
    command = [*(prefix or []), *inat_command(*args)]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, **kwargs)


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_timings(rows: list[dict]) -> list[dict]:
    """Metric rows without the wall-clock fields, which differ between identical runs."""
    return [
        {k: v for k, v in row.items() if k not in ("epoch_time", "images_per_sec")} for row in rows
    ]


def run_until(
    tmp_path: Path, args: list[str], marker: str, sig: int, env: dict | None = None
) -> subprocess.Popen:
    """Run `inat ARGS` in tmp_path and send it `sig` once its log shows `marker`.

    Returns the ended process; the marker is awaited by reading the log, never by sleeping.
    """
    env = {**os.environ, "WANDB_MODE": "disabled", **(env or {})}
    proc = subprocess.Popen(
        inat_command(*args, *location(tmp_path)),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            proc.send_signal(sig)
            break
    proc.stdout.read()
    proc.wait(timeout=120)
    assert any(marker in line for line in seen), "".join(seen)
    return proc


def train_on_two_processes(tmp_path: Path, args: list[str]) -> subprocess.CompletedProcess:
    """`inat train ARGS` in two DDP processes on the CPU."""
    # accelerate's --cpu flag starts one process; --multi_gpu starts torchrun's workers,
    # which run DDP over gloo when trainer.cpu=true.
    launch = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu"]
    return subprocess.run(
        [*launch, "--num_processes=2", "-m", "inat", "train", *args],
        cwd=tmp_path,
        env={**os.environ, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=600,
    )

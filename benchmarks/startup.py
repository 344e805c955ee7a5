"""How long inat takes to start and to end: `inat --help`, a bad config refused, `inat
train` to its first step, one sweep point from its worker's start to its first step, and a
finished run from its last line to the end of its process.

    python -m benchmarks.startup              # 5 repeats of each; writes benchmarks/results.md
    python -m benchmarks.startup --repeats 3 --workdir /tmp/inat-startup

Each figure is the median wall time of fresh processes, from the moment the process is
started until the line that shows the work begun (the help text's end, the log line of the
first training step). The training is the tests' tiny scratch CNN on generated 32x32
images with its data already prepared (a second start), so what is measured is the start:
Python, imports, config composition, the run directory, the model, the data loaders.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from benchmarks import RESULTS, TINY, write_section
from benchmarks.throughput import machine

ONE_EPOCH = [*TINY, "trainer.epochs=1", "trainer.log_every_n_steps=1"]
FIRST_STEP = re.compile(r"epoch 1/\d+ 1/\d+ ")
DONE = re.compile(r"done: best val_acc=")


def _inat(*args: str) -> list[str]:
    return [sys.executable, "-m", "inat", *args]


def seconds_until(
    command: Sequence[str],
    cwd: Path,
    marker: re.Pattern[str] | None,
    code: int = 0,
    after: bool = False,
) -> float:
    """Wall seconds from starting `command` until a line of its output matches `marker`
    (the process is then stopped), or with `marker` None until it exits with `code`; with
    `after`, from the marker's line to the exit."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker is not None and marker.search(line):
            if after:
                start = time.perf_counter()
                marker = None
                continue
            elapsed = time.perf_counter() - start
            proc.kill()
            proc.wait()
            return elapsed
    proc.wait()
    if marker is not None or proc.returncode != code:
        raise RuntimeError(f"{' '.join(command)} ended ({proc.returncode}):\n{''.join(seen)}")
    return time.perf_counter() - start


def imports_torch() -> bool:
    """Whether `import inat.cli` imports torch."""
    code = "import sys, inat.cli; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip() == "True"


def measure(workdir: Path, repeats: int) -> dict[str, list[float]]:
    """Each figure's times over `repeats` fresh processes."""
    cache = f"data.cache_dir={workdir}/cache"
    job = {
        "name": "startup",
        "overrides": [*ONE_EPOCH, "optimizer.lr=0.05"],
        "sweep": {"method": "grid", "parameters": {"model.dropout": {"values": [0.0, 0.1]}}},
    }
    job_file = workdir / "startup.yaml"
    job_file.write_text(yaml.safe_dump({"job": job}))
    # Prepare the data once, so that every start below finds it in the cache.
    seconds_until(_inat("train", *ONE_EPOCH, cache, f"output={workdir}/prepare"), workdir, None)
    times: dict[str, list[float]] = {
        "help": [],
        "bad config": [],
        "train": [],
        "sweep point": [],
        "exit": [],
    }
    for i in range(repeats):
        output = f"output={workdir}/out-{i}"  # a new run each time, never one to resume
        times["help"].append(seconds_until(_inat("--help"), workdir, None))
        bad = _inat("train", "model.activation=swish", output)
        times["bad config"].append(seconds_until(bad, workdir, None, code=65))
        train = _inat("train", *ONE_EPOCH, cache, output)
        times["train"].append(seconds_until(train, workdir, FIRST_STEP))
        point = _inat("sweep", str(job_file), "--index", "0", cache, output)
        times["sweep point"].append(seconds_until(point, workdir, FIRST_STEP))
        run = _inat("train", *ONE_EPOCH, cache, f"output={workdir}/whole-{i}")
        times["exit"].append(seconds_until(run, workdir, DONE, after=True))
    return times


def report(times: dict[str, list[float]], torch_in_cli: bool, info: dict[str, str]) -> str:
    """The results section."""
    labels = {
        "help": "`inat --help`, to its exit",
        "bad config": "`inat train model.activation=swish`, to its exit (65)",
        "train": "`inat train` (tiny CNN, data prepared), to its first step",
        "sweep point": "`inat sweep JOB --index 0` (one grid point), to its first step",
        "exit": "a finished `inat train`, from its `done:` line to the end of its process",
    }
    lines = [
        "# Benchmark: start-up",
        "",
        "Written by `python -m benchmarks.startup` (see its docstring).",
        "",
        *(f"- {key}: {value}" for key, value in info.items()),
        f"- `import inat.cli` imports torch: {'yes' if torch_in_cli else 'no'}",
        "",
        "| what | median | min | max |",
        "|---|---:|---:|---:|",
    ]
    for key, values in times.items():
        lines.append(
            f"| {labels[key]} | {statistics.median(values):.2f} s | {min(values):.2f} s "
            f"| {max(values):.2f} s |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line: measure, print the report, write it to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    info = machine()
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        times = measure(Path(folder), args.repeats)
    text = report(times, imports_torch(), info)
    print(text)
    write_section(args.out, text)


if __name__ == "__main__":
    main()

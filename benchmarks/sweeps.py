"""Random search against Bayesian search, with and without Hyperband's early stopping, on a
CPU-sized problem where the search matters.

    python -m benchmarks.sweeps                 # 3 sweep seeds; writes benchmarks/results.md
    python -m benchmarks.sweeps --seeds 5 --run-cap 16 --workdir /tmp/inat-sweeps

The problem: the tiny scratch CNN on generated 32x32 images, Adam with a learning rate drawn
log-uniformly from 1e-4 to 1.0 (above about 0.05 it does not learn at all) and a dropout
from 0 to 0.5, 9 epochs a point. Each method trains `run_cap` points with one worker (so
that each sweep replays exactly), for each sweep seed. Reported per method: the best
validation accuracy reached, the epochs trained in all, and for bayes + hyperband the
epochs it took to first reach random's best (of the same seed).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks import RESULTS, TINY, write_section
from benchmarks.throughput import machine
from inat.rundir import sweep_points
from inat.storage import open_storage
from inat.sweeps.run import run_all

EPOCHS = 9
POINT = [
    *TINY,
    "model.batch_norm=true",
    "optimizer=adam",
    "scheduler=constant",
    f"trainer.epochs={EPOCHS}",
]
SPACE = {
    "optimizer.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
    "model.dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
}
METHODS = {
    "random": {"method": "random"},
    "bayes": {"method": "bayes"},
    "bayes + hyperband": {
        "method": "bayes",
        "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 3},
    },
}


def run_sweep(workdir: Path, method: str, seed: int, run_cap: int) -> list[dict[str, Any]]:
    """Train one sweep; its points' rows (status, epochs, best_val_accuracy) by index."""
    name = f"{method.replace(' + ', '-')}-{seed}"
    job = {
        "name": name,
        "overrides": POINT,
        "sweep": {**METHODS[method], "run_cap": run_cap, "seed": seed, "parameters": SPACE},
    }
    job_file = workdir / f"{name}.yaml"
    job_file.write_text(yaml.safe_dump({"job": job}))
    overrides = [f"output={workdir}/out", f"data.cache_dir={workdir}/cache"]
    summary = run_all(job_file, job, overrides)
    assert summary is not None
    storage = open_storage(f"{workdir}/out/{name}")
    assert len(sweep_points(storage)) == run_cap
    return sorted(summary["points"], key=lambda row: row["index"])


def epochs_to_reach(rows: list[dict[str, Any]], target: float) -> int | None:
    """Epochs trained, in point order, until a point first reached `target` (None: never)."""
    spent = 0
    for row in rows:
        spent += row["epochs"]
        if (row["best_val_accuracy"] or 0.0) >= target:
            return spent
    return None


def _goal(results: dict[int, dict[str, list]]) -> str:
    """Whether bayes + hyperband reached random's best with at most half of random's epochs."""
    met = 0
    for by_method in results.values():
        target = max(r["best_val_accuracy"] or 0.0 for r in by_method["random"])
        budget = sum(r["epochs"] for r in by_method["random"]) / 2
        reach = epochs_to_reach(by_method["bayes + hyperband"], target)
        met += reach is not None and reach <= budget
    return (
        f"The goal, bayes + hyperband reaching random's best validation accuracy with at most "
        f"half of random's epochs, was met for {met} of {len(results)} seeds."
    )


def report(results: dict[int, dict[str, list]], info: dict[str, str], run_cap: int) -> str:
    """The markdown section of results.md."""
    lines = [
        "# Benchmark: random vs Bayesian search vs Bayesian search with Hyperband",
        "",
        "Written by `python -m benchmarks.sweeps` (see its docstring); numbers from one run.",
        "",
        *(f"- {key}: {value}" for key, value in info.items()),
        f"- problem: {run_cap} points a sweep, {EPOCHS} epochs a point, one worker; "
        "learning rate 1e-4..1.0 (log), dropout 0..0.5",
        "",
        "| seed | method | best val acc | epochs trained | epochs to reach random's best |",
        "|---:|---|---:|---:|---:|",
    ]
    for seed, by_method in results.items():
        target = max(r["best_val_accuracy"] or 0.0 for r in by_method["random"])
        for method, rows in by_method.items():
            best = max(r["best_val_accuracy"] or 0.0 for r in rows)
            reach = epochs_to_reach(rows, target)
            lines.append(
                f"| {seed} | {method} | {best:.3f} | {sum(r['epochs'] for r in rows)} | "
                f"{'never' if reach is None else reach} |"
            )
    lines += ["", _goal(results), "", "Means over the seeds:", ""]
    for method in METHODS:
        best = [max(r["best_val_accuracy"] or 0.0 for r in by[method]) for by in results.values()]
        spent = [sum(r["epochs"] for r in by[method]) for by in results.values()]
        lines.append(
            f"- {method}: best val acc {statistics.mean(best):.3f}, "
            f"{statistics.mean(spent):.0f} epochs"
        )
    return "\n".join(lines) + "\n"


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def main() -> None:
    """Command line: run every method for every seed, print the report, write it to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--run-cap", type=int, default=12)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "inat-sweeps-benchmark"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    info = machine()
    # A fresh folder each time: sweeps of the same name in an old one would resume, not run.
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=_made(args.workdir)))
    start = time.perf_counter()
    results: dict[int, dict[str, list]] = {}
    for seed in range(args.seeds):
        results[seed] = {}
        for method in METHODS:
            print(f"seed {seed}: {method} ...", flush=True)
            results[seed][method] = run_sweep(workdir, method, seed, args.run_cap)
    text = report(results, info, args.run_cap)
    text += f"\nThe whole benchmark took {(time.perf_counter() - start) / 60:.1f} min.\n"
    print(text)
    write_section(args.out, text)


if __name__ == "__main__":
    main()

"""How a sweep's search went: its method and budget, its pruned points, and
search_progress.png, the best metric so far against points finished and against the
training epochs spent (one curve per sweep when sweeps are compared).

The sweep's settings (method, metric, goal, run_cap) are its job's `sweep` block, as
sweep.json records it; a folder of runs without one (an `inat train -m` multirun) is
searched on validation accuracy, maximized.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from inat.errors import ConfigError
from inat.results import plots
from inat.results.collect import SWEEP, PointResult, Results, collect
from inat.rundir import MANIFEST, Status
from inat.sweeps.pruning import metric_values
from inat.sweeps.search import Search, parse_search
from inat.sweeps.study import objective

# A point that started and has not ended: training, or interrupted and waiting to resume.
_UNFINISHED = (Status.RUNNING, Status.INTERRUPTED)
_BUDGET = ("done", "pruned", "failed", "running")  # the budget line's states, in order


@dataclass(frozen=True)
class Ended:
    """A point that ended (done, pruned or failed), as search progress counts it."""

    index: int
    status: str
    value: float | None  # its best metric over its epochs; None without a finite one
    epochs: int  # epochs it trained
    ended_at: str  # ISO time of its end


@dataclass(frozen=True)
class Progress:
    """A sweep's search: its settings and its ended points, in the order they ended."""

    name: str
    search: Search
    ended: list[Ended]

    def best_so_far(self) -> list[float]:
        """The best value of the done points after each ended point (NaN before the first)."""
        better = max if self.search.goal == "maximize" else min
        best, curve = math.nan, []
        for point in self.ended:
            if point.status == Status.DONE and point.value is not None:
                best = point.value if math.isnan(best) else better(best, point.value)
            curve.append(best)
        return curve

    def epochs_spent(self) -> list[int]:
        """The training epochs of the ended points, summed, after each ended point."""
        total, spent = 0, []
        for point in self.ended:
            total += point.epochs
            spent.append(total)
        return spent


def sweep_search(results: Results) -> Search:
    """The search settings of the sweep: its job's `sweep` block (defaults without one)."""
    block = ((results.manifest or {}).get("job") or {}).get("sweep")
    if block:
        return parse_search(results.name, block)
    return Search(name=results.name, space={}, method="")


def _ended(search: Search, point: PointResult) -> Ended | None:
    """The point as search progress counts it, or None when it has not ended."""
    result = point.files.result or {}
    status = point.row["status"]
    if status not in (Status.DONE, Status.PRUNED, Status.FAILED):
        return None
    value = objective(search, metric_values(point.files.history, search.metric))
    ended_at = result.get("finished_at") or result.get("updated_at") or ""
    return Ended(point.row["index"], status, value, len(point.files.history), ended_at)


def progress(results: Results) -> Progress:
    """The sweep's ended points by the time they ended (then by index)."""
    search = sweep_search(results)
    ended = [e for p in results.points if (e := _ended(search, p)) is not None]
    return Progress(results.name, search, sorted(ended, key=lambda e: (e.ended_at, e.index)))


def counts(results: Results) -> dict[str, int]:
    """How many points of the sweep are done, pruned, failed and running (started, not
    ended: training, or interrupted and waiting to resume), then queued (not started) and
    unreadable if any are."""
    tally = dict.fromkeys(_BUDGET, 0)
    for point in results.points:
        status = "running" if point.row["status"] in _UNFINISHED else point.row["status"]
        tally[status] = tally.get(status, 0) + 1
    return tally


def method_text(method: str, sampler: str | None) -> str:
    """The method, with its sampler where it has one of another name: "bayes (tpe)"."""
    return f"{method} ({sampler})" if sampler and sampler != method else method


def budget_line(results: Results, search: Search) -> str:
    """E.g. "bayes (tpe) on val_accuracy (maximize): 6 of run_cap 6 taken: 3 done, 2 pruned,
    1 failed, 0 running"."""
    cap = f" of run_cap {search.run_cap}" if search.run_cap else ""
    states = ", ".join(f"{n} {status}" for status, n in counts(results).items())
    return (
        f"{method_text(search.method, search.sampler)} on {search.metric} ({search.goal}): "
        f"{len(results.points)}{cap} taken: {states}"
    )


def pruned(results: Results) -> list[dict[str, Any]]:
    """The pruned points: index, name, label, the epochs trained (of those planned) and the
    reason they stopped (result.json's stop_reason, from their early_stop.json decision)."""
    return [
        {
            "index": p.row["index"],
            "name": p.row["name"],
            "label": p.label,
            "epochs": p.row["epochs"],
            "epochs_planned": p.row["epochs_planned"],
            "reason": (p.files.result or {}).get("stop_reason"),
        }
        for p in results.points
        if p.row["status"] == Status.PRUNED
    ]


def _pruned_line(point: dict[str, Any]) -> str:
    planned = point["epochs_planned"]
    epochs = f"{point['epochs']} of {planned}" if planned else str(point["epochs"])
    reason = point["reason"] or "no reason recorded"
    return f"  #{point['index']} {point['label']}: after epoch {epochs}: {reason}"


def summary(results: Results) -> dict[str, Any] | None:
    """The search in numbers (for --json and the comparison of sweeps): method, sampler,
    metric, goal, run_cap, points taken and their states, epochs spent, the best value of
    a done point and the pruned points; None for runs without a sweep block."""
    search = sweep_search(results)
    if not search.method:
        return None
    ended = progress(results)
    best = ended.best_so_far()
    return {
        "name": results.name,
        "uri": results.storage.uri,
        "method": search.method,
        "sampler": search.sampler or None,
        "metric": search.metric,
        "goal": search.goal,
        "run_cap": search.run_cap or None,
        "taken": len(results.points),
        "counts": counts(results),
        "epochs_spent": sum(p.epochs for p in ended.ended),
        "best_value": None if not best or math.isnan(best[-1]) else best[-1],
        "pruned": pruned(results),
    }


def summary_text(results: Results) -> str | None:
    """The search's method, budget and pruned points; None for runs without a sweep block."""
    search = sweep_search(results)
    if not search.method:
        return None
    lines = [_pruned_line(p) for p in pruned(results)]
    return "\n".join(
        [f"search: {budget_line(results, search)}", *(["pruned:", *lines] if lines else [])]
    )


def _scale(metric: str) -> tuple[float, str]:
    """Accuracies in percent, as the other plots show them; other metrics as recorded."""
    return (100.0, f"{metric} (%)") if "accuracy" in metric else (1.0, metric)


_LINESTYLES = {"bayes": "-", "random": "--", "grid": ":"}


def _draw_sweep(axes: Sequence[Axes], sweep: Progress, colour: str, label: str) -> None:
    """One sweep's best-so-far curve and its points' values on both panels."""
    scale, _ = _scale(sweep.search.metric)
    xs = (list(range(1, len(sweep.ended) + 1)), sweep.epochs_spent())
    best = [scale * b for b in sweep.best_so_far()]
    style = _LINESTYLES.get(sweep.search.method, "-")
    for ax, x in zip(axes, xs, strict=True):
        ax.step(x, best, where="post", color=colour, linestyle=style, linewidth=2, label=label)
        for status, marker in ((Status.DONE, "o"), (Status.PRUNED, "x")):
            chosen = [
                (at, scale * p.value)
                for at, p in zip(x, sweep.ended, strict=True)
                if p.status == status and p.value is not None
            ]
            if chosen:
                ax.scatter(*zip(*chosen, strict=True), color=colour, marker=marker, s=30, alpha=0.7)


def check_one_metric(sweeps: Sequence[Progress]) -> None:
    """Refuse (ConfigError) to compare sweeps that optimize different metrics or goals."""
    targets = sorted({f"{s.search.metric} ({s.search.goal})" for s in sweeps})
    if len(targets) > 1:
        raise ConfigError(f"the sweeps optimize different metrics: {', '.join(targets)}")


def search_progress(sweeps: Sequence[Progress]) -> Figure | None:
    """The best metric of done points so far against points ended (left) and against the
    training epochs they spent (right), one curve per sweep (bayes solid, random dashed,
    grid dotted); each ended point's own best value is a dot (done) or a cross (pruned).
    None when no sweep has an ended point."""
    drawn = [s for s in sweeps if s.ended]
    if not drawn:
        return None
    check_one_metric(drawn)
    figure = Figure(figsize=(11, 4.4), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    for i, sweep in enumerate(drawn):
        label = f"{sweep.name} ({sweep.search.method or 'runs'}): best so far"
        _draw_sweep(axes, sweep, f"C{i}", label)
    _, ylabel = _scale(drawn[0].search.metric)
    goal = drawn[0].search.goal
    for ax, xlabel in zip(axes, ("points ended", "training epochs spent"), strict=True):
        ax.set_title(f"against {xlabel}")
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{ylabel}, {goal}d")
    markers = [
        Line2D([], [], color="grey", marker="o", linestyle="", label="a done point"),
        Line2D([], [], color="grey", marker="x", linestyle="", label="a pruned point"),
    ]
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(
        handles + markers,
        labels + [m.get_label() for m in markers],
        loc="outside lower center",
        ncols=min(4, len(handles) + 2),
    )
    names = " vs ".join(f"{s.name} ({s.search.method or 'runs'})" for s in drawn)
    figure.suptitle(f"Search progress of {names}")
    return figure


def figures(results: Results) -> dict[str, Figure]:
    """search_progress of a sweep with ended points, by file name (without .png)."""
    figure = search_progress([progress(results)]) if results.kind == SWEEP else None
    return {} if figure is None else {"search_progress": figure}


def _value_text(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    scale, _ = _scale(metric)
    return f"{scale * value:.2f}%" if scale != 1 else f"{value:.4g}"


def comparison_text(rows: Sequence[dict[str, Any]]) -> str:
    """A row per sweep: its method, points taken (of run_cap), their states, the epochs they
    spent and the best value of a done point."""
    metric = rows[0]["metric"]
    header = ["sweep", "method", "taken", *_BUDGET, "epochs", f"best {metric}"]
    lines = [
        [
            row["name"],
            method_text(row["method"], row["sampler"]),
            f"{row['taken']} of {row['run_cap']}" if row["run_cap"] else str(row["taken"]),
            *(str(row["counts"][s]) for s in _BUDGET),
            str(row["epochs_spent"]),
            _value_text(row["best_value"], metric),
        ]
        for row in rows
    ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()
        for cells in (header, *lines)
    )


def compare(uris: Sequence[str], fmt: str = "text", draw: bool = True) -> None:
    """Print a row per sweep of `uris` (text or JSON) after writing their search progress,
    compared in one plot, into the first sweep's plots/ folder (unless not `draw`):
    search_progress_vs_OTHER[_OTHER...].png."""
    sweeps = [collect(uri) for uri in uris]
    rows = [summary(results) for results in sweeps]
    for results, row in zip(sweeps, rows, strict=True):
        if row is None:
            raise ConfigError(
                f"{results.storage.uri} is not a sweep of a job file (no {MANIFEST} with a "
                "sweep block): only such sweeps are compared"
                + "".join(f"; {problem}" for problem in results.problems)
            )
    progresses = [progress(results) for results in sweeps]
    check_one_metric(progresses)
    figure = search_progress(progresses) if draw else None
    name = "search_progress_vs_" + "_".join(results.name for results in sweeps[1:])
    written = [] if figure is None else [plots.save(figure, sweeps[0].storage, name)]
    if fmt == "json":
        print(json.dumps({"sweeps": rows, "plots": written}, indent=2))
        return
    print(f"sweeps compared on {rows[0]['metric']} ({rows[0]['goal']}):\n")
    print(comparison_text(rows))
    if written:
        print("\nplots:", *written, sep="\n  ")

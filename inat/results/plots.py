"""The pictures of a sweep, drawn from its run directories: learning curves, validation
accuracy against the swept values (one panel per key, and parallel coordinates), and the
best point's test confusion matrix and per-class accuracy.

Each function returns a matplotlib Figure (no pyplot state); `save` writes one as a PNG
through the storage layer, so plots land next to the results on local disk or S3.
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass
from typing import Any

from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from inat.results.collect import PointResult, Results, value_text
from inat.rundir import Status
from inat.storage import Storage

PLOTS = "plots"
TOP = 5
_DPI = 110
_MAX_TICKS = 8


def save(figure: Figure, storage: Storage, name: str) -> str:
    """Write `figure` as plots/NAME.png below `storage`; returns its URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    relpath = f"{PLOTS}/{name}.png"
    storage.write_bytes(relpath, buffer.getvalue())
    return f"{storage.uri}/{relpath}"


def _legend_label(point: PointResult) -> str:
    return textwrap.shorten(f"#{point.row['index']} {point.label}", 70, placeholder="...")


def _percent(value: float) -> float:
    return 100 * value


def learning_curves(results: Results, top: int = TOP) -> Figure | None:
    """Train (solid) and validation (dashed) loss and accuracy per epoch of the top points."""
    points = [p for p in results.ranked() if p.files.history][:top]
    if not points:
        return None
    figure = Figure(figsize=(12, 5), layout="constrained")
    loss_ax, acc_ax = figure.subplots(1, 2)
    colours = [f"C{i}" for i in range(len(points))]
    for point, colour in zip(points, colours, strict=True):
        history = point.files.history
        epochs = [row["epoch"] for row in history]
        label = _legend_label(point)
        loss_ax.plot(epochs, [r["train_loss"] for r in history], "-o", color=colour, label=label)
        loss_ax.plot(epochs, [r["val_loss"] for r in history], "--o", color=colour)
        acc_ax.plot(epochs, [_percent(r["train_accuracy"]) for r in history], "-o", color=colour)
        acc_ax.plot(epochs, [_percent(r["val_accuracy"]) for r in history], "--o", color=colour)
    for ax, title, ylabel in (
        (loss_ax, "Loss", "cross-entropy loss"),
        (acc_ax, "Accuracy", "accuracy (%)"),
    ):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    styles = [
        Line2D([], [], color="grey", linestyle="-", label="train"),
        Line2D([], [], color="grey", linestyle="--", label="validation"),
    ]
    handles, labels = loss_ax.get_legend_handles_labels()
    figure.legend(
        handles + styles,
        labels + [s.get_label() for s in styles],
        loc="outside lower center",
        ncols=min(3, len(handles) + 2),
        fontsize="small",
    )
    which = f"the top {len(points)} points" if len(results.points) > 1 else "the run"
    figure.suptitle(f"Learning curves of {which} of {results.name} (by validation accuracy)")
    return figure


def _scored(results: Results) -> list[PointResult]:
    return [p for p in results.points if p.row["best_val_accuracy"] is not None]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class _Axis:
    """Where a swept key's values go on an axis."""

    coords: list[float]  # numbers by value (log10 when they span 10x), others by category
    ticks: list[tuple[float, str]]  # (coordinate, label) of each distinct value
    label: str


def _axis(key: str, values: list[Any]) -> _Axis:
    texts = [value_text(v) for v in values]
    if not all(_is_number(v) for v in values):
        categories = list(dict.fromkeys(texts))
        coords = [float(categories.index(t)) for t in texts]
        return _Axis(coords, sorted(set(zip(coords, texts, strict=True))), key)
    log = min(values) > 0 and max(values) / min(values) >= 10
    coords = [math.log10(v) if log else float(v) for v in values]
    ticks = sorted(set(zip(coords, texts, strict=True)))
    if len(ticks) > _MAX_TICKS:  # values from a continuous range: ticks spread evenly
        low, high = min(coords), max(coords)
        spread = [low + (high - low) * i / 4 for i in range(5)]
        ticks = [(c, f"{10**c if log else c:.3g}") for c in spread]
    return _Axis(coords, ticks, f"{key} (log scale)" if log else key)


def _set_ticks(ax: Any, ticks: list[tuple[float, str]]) -> None:
    ax.set_xticks([c for c, _ in ticks], [t for _, t in ticks], rotation=20, ha="right")


def accuracy_vs_params(results: Results) -> Figure | None:
    """The best validation accuracy of each point against each swept key, one panel per key;
    the best point is starred, points not done are drawn hollow."""
    points = _scored(results)
    if not results.keys or not points:
        return None
    columns = min(3, len(results.keys))
    rows = math.ceil(len(results.keys) / columns)
    figure = Figure(figsize=(4.5 * columns, 3.8 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    best = results.best()
    accuracy = [_percent(p.row["best_val_accuracy"]) for p in points]
    for ax, key in zip(axes, results.keys, strict=False):
        axis = _axis(key, [p.params.get(key) for p in points])
        for point, x, y in zip(points, axis.coords, accuracy, strict=True):
            done = point.row["status"] == Status.DONE
            ax.scatter(
                x,
                y,
                marker="*" if point is best else "o",
                s=180 if point is best else 40,
                color="C3" if point is best else "C0",
                facecolors=None if done else "none",
                zorder=3,
            )
        _set_ticks(ax, axis.ticks)
        ax.margins(x=0.15)
        ax.set_xlabel(axis.label)
        ax.set_ylabel("best validation accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in axes[len(results.keys) :]:
        ax.set_visible(False)
    unfinished = ", hollow: not done" if any(p.row["status"] != Status.DONE for p in points) else ""
    figure.suptitle(
        f"Validation accuracy against each swept value: {results.name} "
        f"({len(points)} points, best starred{unfinished})"
    )
    return figure


def parallel_coordinates(results: Results) -> Figure | None:
    """One line per point through an axis per swept key and the validation accuracy,
    coloured by validation accuracy; the best point is drawn thick."""
    points = _scored(results)
    if not results.keys or not points:
        return None
    accuracy = [_percent(p.row["best_val_accuracy"]) for p in points]
    axes = [_axis(key, [p.params.get(key) for p in points]) for key in results.keys]
    axes.append(_axis("val accuracy (%)", [round(a, 1) for a in accuracy]))
    spans = [(min(a.coords), max(a.coords)) for a in axes]

    def height(value: float, span: tuple[float, float]) -> float:
        low, high = span
        return (value - low) / (high - low) if high > low else 0.5

    figure = Figure(figsize=(max(6.0, 2.2 * len(axes)), 5), layout="constrained")
    ax = figure.subplots()
    colours = Normalize(min(accuracy), max(accuracy))
    scalar = ScalarMappable(colours, "viridis")
    best = results.best()
    for i, point in enumerate(sorted(points, key=lambda p: p.row["best_val_accuracy"])):
        index = points.index(point)
        ys = [height(a.coords[index], span) for a, span in zip(axes, spans, strict=True)]
        thick = point is best
        ax.plot(
            range(len(axes)),
            ys,
            color=scalar.to_rgba(accuracy[index]),
            linewidth=3.5 if thick else 1.5,
            alpha=1.0 if thick else 0.8,
            zorder=10 + i,
        )
    for x, (axis, span) in enumerate(zip(axes, spans, strict=True)):
        ax.axvline(x, color="black", linewidth=0.8)
        for coord, text in axis.ticks:
            ax.text(
                x + 0.03,
                height(coord, span),
                text,
                fontsize="small",
                va="center",
                zorder=100,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
            )
    ax.set_xticks(range(len(axes)), [a.label for a in axes], rotation=15, ha="right")
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(axes) - 0.6)
    ax.set_ylim(-0.05, 1.05)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    figure.colorbar(scalar, ax=ax, label="best validation accuracy (%)")
    figure.suptitle(f"Parallel coordinates of {results.name} ({len(points)} points)")
    return figure


def _best_test_scores(
    results: Results,
) -> tuple[PointResult, dict[str, Any], list[str]] | None:
    """The best point, its result.json's test scores and its classes; None without them."""
    best = results.best()
    result = (best.files.result if best else None) or {}
    if not result.get("test") or not result.get("classes"):
        return None
    return best, result["test"], result["classes"]


def confusion_matrix(results: Results) -> Figure | None:
    """The best point's test confusion matrix: counts, coloured by the share of each true class."""
    scores = _best_test_scores(results)
    if scores is None:
        return None
    best, test, classes = scores
    counts = test["confusion_matrix"]
    shares = [[n / max(1, sum(row)) for n in row] for row in counts]
    size = 1.6 + 0.65 * len(classes)
    figure = Figure(figsize=(size + 1.5, size), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i, row in enumerate(counts):
        for j, n in enumerate(row):
            colour = "white" if shares[i][j] > 0.5 else "black"
            ax.text(j, i, str(n), ha="center", va="center", color=colour, fontsize="small")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    figure.colorbar(image, ax=ax, label="share of the true class", shrink=0.8)
    ax.set_title(
        f"Test confusion matrix of {_legend_label(best)}\n"
        f"(test accuracy {_percent(test['accuracy']):.2f}%)"
    )
    return figure


def per_class_accuracy(results: Results) -> Figure | None:
    """The best point's test accuracy of each class, against its overall test accuracy."""
    scores = _best_test_scores(results)
    if scores is None:
        return None
    best, test, classes = scores
    values = [_percent(test["per_class_accuracy"][name]) for name in classes]
    figure = Figure(figsize=(8, 1.2 + 0.45 * len(classes)), layout="constrained")
    ax = figure.subplots()
    bars = ax.barh(classes, values, color="C0")
    ax.bar_label(bars, [f"{v:.1f}%" for v in values], padding=3, fontsize="small")
    overall = _percent(test["accuracy"])
    ax.axvline(overall, color="C3", linestyle="--", label=f"overall {overall:.2f}%")
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel("test accuracy (%)")
    ax.set_ylabel("class")
    ax.legend(loc="lower right")
    ax.set_title(f"Per-class test accuracy of {_legend_label(best)}")
    return figure


def draw(results: Results) -> dict[str, Figure]:
    """Every plot the run directories allow, by file name (without .png)."""
    figures = {
        "learning_curves": learning_curves(results),
        "val_accuracy_vs_params": accuracy_vs_params(results),
        "parallel_coordinates": parallel_coordinates(results),
        "test_confusion_matrix": confusion_matrix(results),
        "test_per_class_accuracy": per_class_accuracy(results),
    }
    return {name: figure for name, figure in figures.items() if figure is not None}

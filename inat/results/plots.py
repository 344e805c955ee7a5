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
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    StrMethodFormatter,
)

from inat.results.collect import PointResult, Results, value_text
from inat.rundir import Status
from inat.storage import Storage

PLOTS = "plots"
TOP = 5
_DPI = 110
_MAX_TICKS = 8


def save(figure: Figure, storage: Storage, name: str, folder: str = PLOTS) -> str:
    """Write `figure` as FOLDER/NAME.png below `storage` (by default plots/NAME.png; with
    folder "", NAME.png in `storage` itself); returns its URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    relpath = f"{folder}/{name}.png" if folder else f"{name}.png"
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
    top = _log_loss_axis(loss_ax, [r[k] for p in points for r in p.files.history for k in _LOSSES])
    diverged = top is not None and _mark_beyond(loss_ax, top)
    for ax, title, ylabel in (
        (loss_ax, "Loss (log scale)", "cross-entropy loss"),
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
    if diverged:
        styles.append(
            Line2D([], [], color="grey", marker="^", linestyle="", label="loss beyond the axis")
        )
    handles, labels = loss_ax.get_legend_handles_labels()
    figure.legend(
        handles + styles,
        labels + [s.get_label() for s in styles],
        loc="outside lower center",
        ncols=min(3, len(handles) + 2),
        fontsize="small",
    )
    if len(results.points) == 1:
        figure.suptitle(f"Learning curves of {results.name}")
    else:
        figure.suptitle(
            f"Learning curves of the top {len(points)} of {len(results.points)} points of "
            f"{results.name} (by validation accuracy)"
        )
    return figure


_LOSSES = ("train_loss", "val_loss")
_DIVERGED = 20  # a loss this many times the median is drawn at the top edge, marked


def _log_loss_axis(ax: Any, losses: list[Any]) -> float | None:
    """Put `ax` on a log scale whose range ends a factor _DIVERGED above the losses' median,
    so that a diverged point does not flatten the others; returns the range's top."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    finite = sorted(v for v in losses if _is_number(v) and math.isfinite(v) and v > 0)
    if not finite:
        return None
    top = min(finite[-1], _DIVERGED * finite[len(finite) // 2]) * 1.3
    ax.set_ylim(finite[0] / 1.3, top)
    return top


def _mark_beyond(ax: Any, top: float) -> bool:
    """Draw each line's points above `top` (or not finite) as triangles on the top edge;
    returns whether there were any."""
    marked = False
    for line in list(ax.get_lines()):
        beyond = [
            x
            for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True)
            if not (_is_number(y) and y <= top)
        ]
        if beyond:
            # A label starting with "_" keeps the triangles out of the legend's handles.
            ax.plot(
                beyond,
                [top / 1.05] * len(beyond),
                "^",
                color=line.get_color(),
                markersize=9,
                clip_on=False,
                label="_beyond",
            )
            marked = True
    return marked


def _scored(results: Results) -> list[PointResult]:
    return [p for p in results.points if p.row["best_val_accuracy"] is not None]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class _Axis:
    """Where a swept key's values go on an axis."""

    coords: list[float]  # numbers by value (log10 on a log scale), others by category
    ticks: list[tuple[float, str]]  # (coordinate, label) of each distinct value
    label: str
    log: bool = False  # coords are log10 of the values
    categorical: bool = False  # coords are the indices of the values' texts


# Keys drawn on a log scale whatever their values span: their values are multiples.
LOG_SCALE_KEYS = frozenset({"lr", "weight_decay"})


def _log_scale(key: str, values: list[Any]) -> bool:
    """Whether a swept key's values go on a log scale, in every plot: positive numbers of a
    key in LOG_SCALE_KEYS (e.g. optimizer.lr) or spanning a factor of 10 or more."""
    if not values or not all(_is_number(v) and v > 0 for v in values):
        return False
    return key.rsplit(".", 1)[-1] in LOG_SCALE_KEYS or max(values) / min(values) >= 10


def _axis(key: str, values: list[Any]) -> _Axis:
    texts = [value_text(v) for v in values]
    if not all(_is_number(v) for v in values):
        categories = list(dict.fromkeys(texts))
        coords = [float(categories.index(t)) for t in texts]
        return _Axis(coords, sorted(set(zip(coords, texts, strict=True))), key, categorical=True)
    log = _log_scale(key, values)
    coords = [math.log10(v) if log else float(v) for v in values]
    ticks = sorted(set(zip(coords, texts, strict=True)))
    if len(ticks) > _MAX_TICKS:  # values from a continuous range: ticks spread evenly
        low, high = min(coords), max(coords)
        spread = [low + (high - low) * i / 4 for i in range(5)]
        ticks = [(c, f"{10**c if log else c:.3g}") for c in spread]
    return _Axis(coords, ticks, f"{key} (log scale)" if log else key, log)


class _RoundLogTicks(LogLocator):
    """Major ticks of a log axis at round values, few and far enough apart for their labels:
    the 1-2-5 multiples of the powers of ten where at most 5 of them are in view, else the
    powers of ten (every few where many are), else (a range within a factor of a few)
    evenly spaced round values."""

    def __init__(self) -> None:
        super().__init__(numticks=6)
        self._one_two_five = LogLocator(subs=(1, 2, 5), numticks=6)
        self._even = MaxNLocator(nbins=4)

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        """The ticks between `vmin` and `vmax`."""
        vmin, vmax = sorted((vmin, vmax))
        # The 1-2-5 ticks are spaced unevenly (1 to 2 is 0.3 of a decade): fewer of them fit.
        for locator, most in ((self._one_two_five, 5), (super(), 6)):
            ticks = [t for t in locator.tick_values(vmin, vmax) if vmin <= t <= vmax]
            if 2 <= len(ticks) <= most:
                return ticks
        return [t for t in self._even.tick_values(vmin, vmax) if vmin <= t <= vmax]


def _value_ticks(ax: Any, axis: _Axis, values: list[Any]) -> None:
    """Ticks for a swept key's `values` on the x axis of `ax`: one per category, or round
    numbers on a scale, as many as the labels leave room for."""
    if axis.categorical:
        ax.set_xticks(
            [c for c, _ in axis.ticks], [t for _, t in axis.ticks], rotation=20, ha="right"
        )
    elif axis.log:
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.xaxis.set_major_locator(_RoundLogTicks())
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    elif all(isinstance(v, int) for v in values):
        ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", integer=True))


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
        values = [p.params.get(key) for p in points]
        axis = _axis(key, values)
        xs = axis.coords if axis.categorical else values
        for point, x, y in zip(points, xs, accuracy, strict=True):
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
        _value_ticks(ax, axis, values)
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
    axes.append(_metric_axis("val accuracy (%)", accuracy))
    spans = [(min(a.coords), max(a.coords)) for a in axes]
    offsets = [_jitter(axis.coords, accuracy) for axis in axes]

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
        ys = [
            height(a.coords[index], span) + offset[index]
            for a, span, offset in zip(axes, spans, offsets, strict=True)
        ]
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
                bbox={"facecolor": "white", "edgecolor": "grey", "alpha": 0.9, "pad": 1.5},
            )
    ax.set_xticks(range(len(axes)), [a.label for a in axes], rotation=15, ha="right")
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(axes) - 0.6)
    ax.set_ylim(-0.05, 1.05)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    figure.colorbar(scalar, ax=ax, label="best validation accuracy (%)")
    figure.suptitle(
        f"Parallel coordinates of {results.name} ({len(points)} points; lines that share a "
        "value are spread apart)"
    )
    return figure


def _metric_axis(label: str, values: list[float]) -> _Axis:
    """An axis of a metric: its values, with a scale of evenly spaced round ticks."""
    low, high = min(values), max(values)
    ticks = [t for t in MaxNLocator(nbins=5).tick_values(low, high) if low <= t <= high]
    return _Axis(list(values), [(t, f"{t:g}") for t in ticks or [low]], label)


_SPREAD = 0.12  # the height over which lines that share a value on an axis are spread


def _jitter(coords: list[float], accuracy: list[float]) -> list[float]:
    """Per point, a small vertical offset on an axis, so that points sharing a value there
    (identical points too) are drawn apart: ordered by accuracy within the value."""
    offsets = [0.0] * len(coords)
    for value in set(coords):
        sharing = sorted((i for i, c in enumerate(coords) if c == value), key=accuracy.__getitem__)
        step = min(0.03, _SPREAD / len(sharing))
        for rank, i in enumerate(sharing):
            offsets[i] = (rank - (len(sharing) - 1) / 2) * step
    return offsets


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
    # Below the axes, where no bar can be: bars reach 100% on either side.
    figure.legend(loc="outside lower center", frameon=False)
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

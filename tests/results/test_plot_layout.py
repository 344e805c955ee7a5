"""The plots' layout, on a multirun written as the trainer writes one: a learning rate swept
over a factor of 4, a diverged point, two identical points and a bookkeeping key whose
values differ. Each figure renders to a PNG of a printable size."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from inat.data import CLASS_NAMES
from inat.results import plots, table
from inat.results.collect import collect
from inat.storage import LocalStorage

CLASSES = list(CLASS_NAMES)


def _write_run(folder: Path, config: dict, losses: list[float], accuracy: float) -> None:
    """A finished run directory: config.yaml, metrics.jsonl and result.json."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [
        {
            "epoch": epoch,
            "train_loss": loss,
            "val_loss": loss * 1.1,
            "train_accuracy": accuracy * epoch / len(losses),
            "val_accuracy": accuracy * epoch / len(losses),
        }
        for epoch, loss in enumerate(losses, start=1)
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    per_class = {c: (1.0 if i % 3 == 0 else 0.3 + 0.05 * i) for i, c in enumerate(CLASSES)}
    confusion = [[5 if i == j else 1 for j in range(10)] for i in range(10)]
    result = {
        "status": "done",
        "epochs": len(losses),
        "epochs_planned": len(losses),
        "best_val_accuracy": accuracy,
        "classes": CLASSES,
        "test": {
            "accuracy": accuracy,
            "per_class_accuracy": per_class,
            "confusion_matrix": confusion,
        },
    }
    (folder / "result.json").write_text(json.dumps(result))


def _config(output: Path, name: str, run_dir: Path, lr: float, dropout: float, workers: int):
    return {
        "output": str(output),
        "name": name,
        "run_dir": str(run_dir),
        "optimizer": {"lr": lr},
        "model": {"dropout": dropout},
        "data": {"num_workers": workers},
    }


@pytest.fixture
def multirun(tmp_path) -> Path:
    """4 points of `inat train -m name=sweep`; #3 repeats #0, #2 diverged."""
    output = tmp_path / "out"
    points = [
        ((0.001, 0.0, 0), [2.2, 1.6, 1.2], 0.50),
        ((0.002, 0.0, 2), [2.1, 1.4, 0.9], 0.60),
        ((0.004, 0.3, 0), [2.3, 80.0, 1e6], 0.10),
        ((0.001, 0.0, 0), [2.2, 1.6, 1.2], 0.50),
    ]
    for index, (settings, losses, accuracy) in enumerate(points):
        folder = output / "sweep" / f"{index:03d}-point"
        _write_run(folder, _config(output, "sweep", folder, *settings), losses, accuracy)
    return output / "sweep"


def _png(figure, folder: Path) -> Image.Image:
    """The figure as `inat results` saves it."""
    uri = plots.save(figure, LocalStorage(folder), "figure")
    return Image.open(io.BytesIO(Path(uri).read_bytes()))


def test_every_figure_renders_at_a_printable_size(multirun, tmp_path):
    figures = plots.draw(collect(str(multirun)))
    assert set(figures) == {
        "learning_curves",
        "val_accuracy_vs_params",
        "parallel_coordinates",
        "test_confusion_matrix",
        "test_per_class_accuracy",
    }
    for name, figure in figures.items():
        image = _png(figure, tmp_path / name)
        width, height = image.size
        assert 500 <= width <= 2000 and 300 <= height <= 1400, (name, image.size)
        assert np.asarray(image.convert("L")).std() > 10, name  # something is drawn


def test_bookkeeping_keys_are_never_swept_and_no_column_is_repeated(multirun, tmp_path):
    results = collect(str(multirun))
    assert sorted(results.keys) == ["model.dropout", "optimizer.lr"]  # not data.num_workers
    header = table.to_csv(results).splitlines()[0].split(",")
    assert len(header) == len(set(header))

    side_by_side = tmp_path / "runs"
    for name, lr in (("a", 0.01), ("b", 0.1)):
        folder = side_by_side / name
        _write_run(folder, _config(side_by_side, name, folder, lr, 0, 0), [1.0], 0.5)
    runs = collect(str(side_by_side))
    assert runs.kind == "runs"
    header = table.to_csv(runs).splitlines()[0].split(",")
    assert len(header) == len(set(header)) and "name" in header


def test_loss_is_on_a_log_scale_that_a_diverged_point_does_not_flatten(multirun):
    figure = plots.learning_curves(collect(str(multirun)), top=4)
    loss = figure.axes[0]
    assert loss.get_yscale() == "log"
    low, high = loss.get_ylim()
    assert low < 0.9 and 2.3 < high < 1000  # the others' range, not the diverged 1e6
    marks = [line for line in loss.get_lines() if line.get_marker() == "^"]
    # Epochs 2 and 3 of #2, train and validation, drawn at the top edge.
    assert [list(line.get_xdata()) for line in marks] == [[2, 3], [2, 3]]
    assert all(line.get_ydata()[0] < high for line in marks)
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend[-1] == "loss beyond the axis"


def test_a_single_runs_learning_curves_are_titled_with_its_name(multirun):
    figure = plots.learning_curves(collect(str(multirun / "001-point")))
    assert figure.get_suptitle() == "Learning curves of 001-point"


def test_the_learning_rate_is_on_a_log_axis_in_every_plot(multirun):
    results = collect(str(multirun))
    panels = {ax.get_xlabel(): ax for ax in plots.accuracy_vs_params(results).axes}
    assert panels["optimizer.lr (log scale)"].get_xscale() == "log"
    assert panels["model.dropout"].get_xscale() == "linear"
    [ax] = [a for a in plots.parallel_coordinates(results).axes if a.get_xticklabels()]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "optimizer.lr (log scale)" in labels


def test_parallel_coordinates_spread_identical_points_and_scale_the_metric(multirun):
    results = collect(str(multirun))
    figure = plots.parallel_coordinates(results)
    [ax] = [a for a in figure.axes if a.get_xticklabels()]
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
    assert len(lines) == 4
    heights = sorted(tuple(np.round(line.get_ydata(), 6)) for line in lines)
    assert len(set(heights)) == 4  # #0 and #3 are the same point, drawn apart
    metric_x = len(results.keys)
    metric_ticks = [t for t in ax.texts if abs(t.get_position()[0] - metric_x - 0.03) < 1e-9]
    values = [float(t.get_text()) for t in metric_ticks]
    assert len(values) >= 3 and values == sorted(values)
    steps = np.diff(values)
    assert np.allclose(steps, steps[0])  # an even scale, not each point's value
    assert all(t.get_bbox_patch() is not None and t.zorder > 50 for t in ax.texts)


def test_the_per_class_legend_covers_no_bar(multirun):
    figure = plots.per_class_accuracy(collect(str(multirun)))
    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # lays the figure out as saving it does
    renderer = canvas.get_renderer()
    ax = figure.axes[0]
    [legend] = [*figure.legends, *([ax.get_legend()] if ax.get_legend() else [])]
    box = legend.get_window_extent(renderer)
    bars = ax.patches
    assert len(bars) == 10 and max(bar.get_width() for bar in bars) == 100
    assert not any(box.overlaps(bar.get_window_extent(renderer)) for bar in bars)

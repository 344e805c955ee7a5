"""The x axes of val_accuracy_vs_params: round ticks from matplotlib's locators, fewer than
the swept values and with labels that do not overlap, however close together or far apart
the learning rates of a sweep are."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from inat.results import plots
from inat.results.collect import collect
from inat.storage import LocalStorage

POINTS = 24
LEARNING_RATES = {
    # 8 distinct values, 3 points each: a tick per value (as before) overlaps.
    "8-close-values": np.tile(np.geomspace(1e-3, 1.3e-3, 8), POINTS // 8),
    "within-5-percent": np.geomspace(1e-3, 1.05e-3, POINTS),
    "a-decade": np.geomspace(1e-3, 1e-2, POINTS),
    "four-decades": np.geomspace(1e-5, 0.1, POINTS),
    "seven-decades": np.geomspace(1e-7, 1.0, POINTS),
}


def _ticks(ax) -> list[tuple[float, Text]]:
    """The major ticks of the x axis of `ax` in view: (value, label)."""
    low, high = sorted(ax.get_xlim())
    ticks = zip(ax.xaxis.get_majorticklocs(), ax.get_xticklabels(), strict=True)
    return [(where, label) for where, label in ticks if low <= where <= high]


@pytest.mark.parametrize("spread", list(LEARNING_RATES))
def test_every_panel_has_fewer_ticks_than_values_and_no_labels_that_overlap(
    tmp_path, write_multirun, spread
):
    columns = {
        "optimizer.lr": [float(lr) for lr in LEARNING_RATES[spread]],
        "model.dropout": [float(d) for d in np.linspace(0.1, 0.5, POINTS)],
        "model.dense_neurons": list(range(16, 16 + 2 * POINTS, 2)),
    }
    points = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    write_multirun(LocalStorage(tmp_path / "out" / "sweep"), points)

    figure = plots.accuracy_vs_params(collect(str(tmp_path / "out" / "sweep")))
    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # lays the figure out as saving it does
    renderer = canvas.get_renderer()
    panels = {ax.get_xlabel().split()[0]: ax for ax in figure.axes if ax.get_visible()}
    assert sorted(panels) == sorted(columns)

    for key, ax in panels.items():
        ticks = _ticks(ax)
        texts = [label.get_text() for _, label in ticks]
        boxes = [label.get_window_extent(renderer) for _, label in ticks]
        overlapping = [
            (texts[i], texts[j])
            for i in range(len(boxes))
            for j in range(i)
            if boxes[i].overlaps(boxes[j])
        ]
        assert not overlapping, (key, overlapping)
        assert 2 <= len(ticks) < min(len(set(columns[key])), 8), (key, texts)
        assert all(texts), (key, texts)

    lr_axis = panels["optimizer.lr"]
    assert lr_axis.get_xscale() == "log"
    assert lr_axis.get_xlabel() == "optimizer.lr (log scale)"
    for where, label in _ticks(lr_axis):  # plain numbers (0.001, 1e-05), the ticks' values
        assert float(label.get_text().replace("\N{MINUS SIGN}", "-")) == pytest.approx(where)
    neurons = [label.get_text() for _, label in _ticks(panels["model.dense_neurons"])]
    assert all(text.isdigit() for text in neurons), neurons  # whole numbers of neurons

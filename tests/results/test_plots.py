"""The plots of `inat results`: written next to the sweep on S3 and listed, and drawn from
the right figures (curves per point, labels, class names, the best point's matrix)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inat.cli import main
from inat.results import plots
from inat.results.classifier import load_classifier
from inat.results.collect import collect, value_text
from inat.results.grid import RIGHT, WRONG, prediction_grid
from inat.results.predict import load_images, probabilities

pytestmark = pytest.mark.slow

PLOT_NAMES = {
    "learning_curves",
    "val_accuracy_vs_params",
    "parallel_coordinates",
    "test_confusion_matrix",
    "test_per_class_accuracy",
    "test_predictions",
    "search_progress",
}


def test_every_plot_is_written_to_the_sweeps_plots_folder_on_s3_and_listed(
    s3_sweep, aws_env, capsys
):
    assert main(["results", s3_sweep.uri, "--grid", "--cache-dir", str(s3_sweep.cache)]) == 0
    out = capsys.readouterr().out
    listed = [line.strip() for line in out.split("\nplots:\n")[1].splitlines()]
    assert {uri.removeprefix(f"{s3_sweep.uri}/plots/") for uri in listed} == {
        f"{name}.png" for name in PLOT_NAMES
    }
    for uri in listed:
        key = uri.removeprefix(f"s3://{s3_sweep.bucket}/")
        data = s3_sweep.client.get_object(Bucket=s3_sweep.bucket, Key=key)["Body"].read()
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG"
            assert min(image.size) > 300
            pixels = np.asarray(image.convert("L"))
            assert pixels.std() > 10  # something is drawn, not a blank canvas


def _texts(figure) -> list[str]:
    return [t.get_text() for t in figure.findobj(lambda a: hasattr(a, "get_text"))]


def test_learning_curves_draw_train_and_validation_loss_and_accuracy_of_the_top_points(
    s3_sweep, aws_env
):
    results = collect(s3_sweep.uri)
    figure = plots.learning_curves(results, top=3)
    loss, accuracy = figure.axes
    top = results.ranked()[:3]
    for ax in (loss, accuracy):
        assert len(ax.get_lines()) == 2 * len(top)  # train and validation per point
        assert ax.get_xlabel() == "epoch"
    assert loss.get_ylabel() == "cross-entropy loss" and accuracy.get_ylabel() == "accuracy (%)"
    # The validation accuracy curve of the best point is its metrics.jsonl, in percent.
    history = top[0].files.history
    val_curve = accuracy.get_lines()[1]
    assert list(val_curve.get_xdata()) == [row["epoch"] for row in history]
    assert list(val_curve.get_ydata()) == pytest.approx([100 * r["val_accuracy"] for r in history])
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == [*(f"#{p.row['index']} {p.label}" for p in top), "train", "validation"]
    assert "demo-sweep" in figure.get_suptitle()


def test_accuracy_against_swept_values_has_a_panel_per_key_and_a_line_per_point(s3_sweep, aws_env):
    results = collect(s3_sweep.uri)
    figure = plots.accuracy_vs_params(results)
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in panels] == results.keys
    for ax in panels:
        assert len(ax.collections) == len(results.points)
    by_key = dict(zip(results.keys, panels, strict=True))
    # A number scale for the dropout, each point at its value; a tick per activation.
    xs = [points.get_offsets()[0][0] for points in by_key["model.dropout"].collections]
    assert xs == pytest.approx([p.params["model.dropout"] for p in results.points])
    labels = {t.get_text() for t in by_key["model.activation"].get_xticklabels()}
    assert labels == {value_text(p.params["model.activation"]) for p in results.points}

    figure = plots.parallel_coordinates(results)
    [ax] = [a for a in figure.axes if a.get_xticklabels()]
    polylines = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
    assert len(polylines) == len(results.points)
    assert [t.get_text() for t in ax.get_xticklabels()] == [*results.keys, "val accuracy (%)"]
    # The best point is drawn thickest, at the top of the accuracy axis.
    thickest = max(polylines, key=lambda line: line.get_linewidth())
    assert thickest.get_ydata()[-1] == pytest.approx(1.0)


def test_the_confusion_matrix_and_per_class_accuracy_are_the_best_points_test_figures(
    s3_sweep, aws_env
):
    results = collect(s3_sweep.uri)
    best = results.best()
    test = best.files.result["test"]
    classes = best.files.result["classes"]

    figure = plots.confusion_matrix(results)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == classes
    assert [t.get_text() for t in ax.get_yticklabels()] == classes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    counts = [int(t.get_text()) for t in ax.texts]
    assert counts == [n for row in test["confusion_matrix"] for n in row]
    assert f"{100 * test['accuracy']:.2f}%" in ax.get_title()

    figure = plots.per_class_accuracy(results)
    ax = figure.axes[0]
    widths = [bar.get_width() for bar in ax.patches]
    assert widths == pytest.approx([100 * test["per_class_accuracy"][c] for c in classes])
    assert [t.get_text() for t in ax.get_yticklabels()] == classes


def test_the_prediction_grid_shows_three_test_images_per_class_with_true_and_predicted_labels(
    s3_sweep, aws_env
):
    results = collect(s3_sweep.uri)
    classifier = load_classifier(results.best().run.uri)
    figure = prediction_grid(classifier, "synthetic", str(s3_sweep.cache))
    # Wide, to fit a page across: 3 rows of 10 classes, a column per class under its name.
    width, height = figure.get_size_inches()
    assert width > 2 * height
    grid = np.array(figure.axes).reshape(3, 10)
    assert all(ax.images for ax in grid.ravel())
    for column, name in enumerate(classifier.classes):
        assert [t.get_text() for t in grid[0][column].texts] == [name]
        assert len({round(ax.get_position().x0, 6) for ax in grid[:, column]}) == 1
    # The labels are the model's answers on those very images.
    [test_root] = s3_sweep.cache.glob("synthetic-*/val")
    files = [
        sorted((test_root / name).iterdir())[i] for name in classifier.classes for i in range(3)
    ]
    predicted = probabilities(classifier, load_images(files)).argmax(dim=1).tolist()
    right = [p == i // 3 for i, p in enumerate(predicted)]
    # In each column the misclassified images first, then the right ones, in file order.
    shown = [i for c in range(10) for i in sorted(range(3 * c, 3 * c + 3), key=right.__getitem__)]
    cells = [grid[row][column] for column in range(10) for row in range(3)]
    titles = [ax.get_title() for ax in cells]
    assert [t.split(" ")[1] for t in titles] == [classifier.classes[predicted[i]] for i in shown]
    # Right and wrong, marked with a sign besides the colour.
    assert [t[0] for t in titles] == [RIGHT if right[i] else WRONG for i in shown]
    assert [ax.title.get_color() for ax in cells] == ["green" if right[i] else "red" for i in shown]
    assert f"{sum(right)} of 30 right" in figure.get_suptitle()
    assert classifier.uri not in figure.get_suptitle() and "s3://" not in figure.get_suptitle()

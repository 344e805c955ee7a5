"""How a sweep's search went, in `inat results`: the method and budget of an adaptive sweep
as its claims and run directories record them, its pruned points with their epoch and
reason, search_progress.png, and sweeps compared (`inat results A B`)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from PIL import Image

from inat.cli import main
from inat.errors import ExitCode
from inat.results import search
from inat.results.collect import collect, value_text

pytestmark = pytest.mark.slow

BUDGET = re.compile(
    r"^search: (\w+) \((\w+)\) on val_accuracy \(maximize\): (\d+) of run_cap (\d+) taken: "
    r"(\d+) done, (\d+) pruned, (\d+) failed, (\d+) running$",
    re.MULTILINE,
)


def _points(sweep: Path) -> list[dict]:
    """Each claimed point's claim with its result.json, metrics and decisions, from disk."""
    points = []
    for claim_file in sorted((sweep / "claims").glob("*.json")):
        claim = json.loads(claim_file.read_text())
        run = sweep / claim["name"]
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        decisions = run / "early_stop.json"
        points.append(
            {
                **claim,
                "result": json.loads((run / "result.json").read_text()),
                "val": [row["val_accuracy"] for row in metrics],
                "decisions": json.loads(decisions.read_text()) if decisions.exists() else [],
            }
        )
    return points


def test_the_budget_line_counts_the_claims_and_their_statuses(bayes_sweep, capsys):
    assert main(["results", str(bayes_sweep), "--no-plots"]) == 0
    out = capsys.readouterr().out
    match = BUDGET.search(out)
    assert match, out
    method, sampler, taken, cap, done, pruned, failed, running = match.groups()
    points = _points(bayes_sweep)
    statuses = [p["result"]["status"] for p in points]
    assert (method, sampler) == ("bayes", "tpe")
    assert (int(taken), int(cap)) == (len(points), 6)
    assert [int(done), int(pruned), int(failed)] == [
        statuses.count(s) for s in ("done", "pruned", "failed")
    ]
    assert int(running) == 0 and int(done) + int(pruned) + int(failed) == len(points)
    assert int(pruned) > 0, "Hyperband pruned no point of the tiny sweep"


def test_each_pruned_point_is_listed_with_its_epoch_and_reason(bayes_sweep, capsys):
    assert main(["results", str(bayes_sweep), "--no-plots"]) == 0
    out = capsys.readouterr().out
    listed = out.split("\npruned:\n")[1].split("\n\n")[0].splitlines()
    pruned = [p for p in _points(bayes_sweep) if p["result"]["status"] == "pruned"]
    assert len(listed) == len(pruned)
    for line, point in zip(listed, pruned, strict=True):
        stopped = point["decisions"][-1]
        assert stopped["prune"] and stopped["epoch"] == len(point["val"])
        assert line.startswith(f"  #{point['index']} ")
        assert f": after epoch {len(point['val'])} of 3: " in line
        assert line.endswith(point["result"]["stop_reason"])
        assert f"(epoch {stopped['epoch']})" in point["result"]["stop_reason"]


def test_json_holds_the_search_summary(bayes_sweep, capsys):
    assert main(["results", str(bayes_sweep), "--json", "--no-plots"]) == 0
    summary = json.loads(capsys.readouterr().out)["search"]
    points = _points(bayes_sweep)
    statuses = [p["result"]["status"] for p in points]
    assert summary["method"] == "bayes" and summary["run_cap"] == 6
    assert summary["taken"] == len(points)
    assert summary["counts"] == {s: statuses.count(s) for s in ("done", "pruned", "failed")} | {
        "running": 0
    }
    assert summary["epochs_spent"] == sum(len(p["val"]) for p in points)
    done = [max(p["val"]) for p in points if p["result"]["status"] == "done"]
    assert summary["best_value"] == pytest.approx(max(done))
    assert [p["index"] for p in summary["pruned"]] == [
        p["index"] for p in points if p["result"]["status"] == "pruned"
    ]


def test_search_progress_is_written_and_its_best_so_far_never_falls(bayes_sweep, capsys):
    assert main(["results", str(bayes_sweep)]) == 0
    png = bayes_sweep / "plots" / "search_progress.png"
    assert str(png) in capsys.readouterr().out
    with Image.open(png) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width > 1000 and 400 < height < width
    progress = search.progress(collect(str(bayes_sweep)))
    figure = search.search_progress([progress])
    by_points, by_epochs = figure.axes
    assert by_points.get_xlabel() == "points ended"
    assert by_epochs.get_xlabel() == "training epochs spent"
    points = _points(bayes_sweep)
    ended = sorted(points, key=lambda p: p["result"]["finished_at"])
    for ax in figure.axes:
        (curve,) = [line for line in ax.get_lines() if line.get_label().endswith("best so far")]
        ys = [y for y in curve.get_ydata() if not math.isnan(y)]
        assert ys == sorted(ys), "the best so far fell"
        done = [max(p["val"]) for p in points if p["result"]["status"] == "done"]
        assert ys[-1] == pytest.approx(100 * max(done))
    spent = list(by_epochs.get_lines()[0].get_xdata())
    assert spent == [sum(len(p["val"]) for p in ended[: i + 1]) for i in range(len(ended))]
    assert list(by_points.get_lines()[0].get_xdata()) == list(range(1, len(ended) + 1))


def test_two_sweeps_are_compared_in_a_table_and_one_plot(bayes_sweep, random_sweep, capsys):
    assert main(["results", str(bayes_sweep), str(random_sweep)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:5] if line}
    assert rows["bayes"][1:3] == ["bayes", "(tpe)"] and rows["random"][1] == "random"
    for name, sweep in (("bayes", bayes_sweep), ("random", random_sweep)):
        statuses = [
            json.loads((run / "result.json").read_text())["status"]
            for run in sweep.iterdir()
            if (run / "result.json").exists()
        ]
        counts = [str(statuses.count(s)) for s in ("done", "pruned", "failed")]
        assert rows[name][-6:-3] == counts, out
    png = bayes_sweep / "plots" / "search_progress_vs_random.png"
    assert str(png) in out and png.exists()
    progresses = [search.progress(collect(str(s))) for s in (bayes_sweep, random_sweep)]
    figure = search.search_progress(progresses)
    curves = [line for line in figure.axes[0].get_lines() if line.get_label().endswith("so far")]
    assert [c.get_label() for c in curves] == [
        "bayes (bayes): best so far",
        "random (random): best so far",
    ]
    assert curves[0].get_linestyle() != curves[1].get_linestyle()
    assert curves[0].get_color() != curves[1].get_color()


def test_a_random_sweep_gets_its_search_progress_too(random_sweep, capsys):
    assert main(["results", str(random_sweep)]) == 0
    out = capsys.readouterr().out
    assert "search: random on val_accuracy (maximize): 6 of run_cap 6 taken: " in out
    assert (random_sweep / "plots" / "search_progress.png").exists()


def test_several_paths_take_no_single_sweep_option(bayes_sweep, random_sweep):
    for option in ("--best", "--dashboard", "--csv"):
        assert main(["results", str(bayes_sweep), str(random_sweep), option]) == ExitCode.BAD_INPUT


def test_values_drawn_from_a_range_are_shown_to_four_digits() -> None:
    assert value_text(0.012318867413449957) == "0.01232"
    assert value_text(0.0003) == "0.0003"  # a value as written stays as written
    assert value_text(1e-4) == "0.0001"
    assert value_text("relu") == "relu" and value_text(3) == "3"

"""`inat results`: the leaderboard with its plots, the best point's config, a point's checkpoint."""

from __future__ import annotations

import json
import shlex
import sys
from collections import Counter
from pathlib import Path

from inat.results import plots, search, table
from inat.results.classifier import download, load_classifier
from inat.results.collect import PointResult, Results, collect
from inat.results.configs import config_file, overrides_for
from inat.results.grid import prediction_grid
from inat.storage import open_storage


def _describe(point: PointResult) -> str:
    row = point.row
    figures = ", ".join(
        f"{what} {100 * row[key]:.2f}%"
        for what, key in (("validation", "best_val_accuracy"), ("test", "test_accuracy"))
        if row[key] is not None
    )
    return f"#{row['index']} {point.label} ({table.status_text(row)}): {figures}"


def write_plots(
    results: Results,
    grid: bool,
    data: str | None = None,
    cache_dir: str | None = None,
    plots_dir: str | None = None,
) -> list[str]:
    """Draw every plot the results allow into the sweep's (or run's) plots/ folder, or into
    the folder `plots_dir` instead (local or s3://, created if missing), which leaves the
    sweep as it is.

    `grid` adds the best checkpoint's predictions on test images of `data` (default: the
    data source it was trained on). Returns the URIs written.
    """
    figures = {**plots.draw(results), **search.figures(results)}
    if grid:
        classifier = load_classifier(results.point("best").run.uri)
        source = data or classifier.config["data"]["source"]
        figures["test_predictions"] = prediction_grid(classifier, source, cache_dir)
    storage, folder = (
        (results.storage, plots.PLOTS) if plots_dir is None else (open_storage(plots_dir), "")
    )
    return [plots.save(figure, storage, name, folder) for name, figure in figures.items()]


def show(
    uri: str,
    fmt: str = "text",
    draw: bool = True,
    grid: bool = False,
    data: str | None = None,
    cache_dir: str | None = None,
    plots_dir: str | None = None,
) -> None:
    """Print the leaderboard of the sweep or run at `uri` as text, JSON or CSV, after
    writing its plots (unless not `draw`) into its plots/ folder or `plots_dir`."""
    results = collect(uri)
    written = write_plots(results, grid, data, cache_dir, plots_dir) if draw else []
    best = results.best()
    if fmt == "json":
        document = {
            "name": results.name,
            "uri": results.storage.uri,
            "kind": results.kind,
            "swept": results.keys,
            "points": table.records(results),
            "best": best.row["name"] if best else None,
            "problems": results.problems,
            "search": search.summary(results),
            "plots": written,
        }
        print(json.dumps(document, indent=2))
        return
    if fmt == "csv":
        print(table.to_csv(results), end="")
        for problem in results.problems:  # CSV has no place for them
            print(problem, file=sys.stderr)
        return
    counts = Counter(p.row["status"] for p in results.points)
    states = ", ".join(f"{n} {status}" for status, n in counts.most_common())
    print(f"{results.kind} {results.name} ({results.storage.uri}): {states}\n")
    if (searched := search.summary_text(results)) is not None:
        print(f"{searched}\n")
    print(table.text(results))
    if best is not None:
        print(f"\nbest: {_describe(best)}\n  {best.run.uri}")
    if written:
        print("\nplots:", *written, sep="\n  ")


def show_best(uri: str, save: Path, as_json: bool = False) -> None:
    """Print the best point's config as `inat train` overrides and save it as a config file."""
    results = collect(uri)
    point = results.point("best")
    config = point.config()
    overrides = overrides_for(config)
    name = f"{results.name}-best"
    save = save.expanduser().resolve()
    retrain = ["inat", "train", "--config-dir", str(save.parent), "--config-name", save.stem]
    header = (
        f"The best point of {results.name}: {_describe(point)}\n"
        f"Its resolved config, from {point.run.uri}.\n"
        "Retrain or fine-tune from it; any key can be overridden, e.g.\n"
        f"  {shlex.join(retrain)} output=s3://bucket/runs trainer.epochs=20"
    )
    save.parent.mkdir(parents=True, exist_ok=True)
    save.write_text(config_file(config, name, header))
    if as_json:
        document = {"point": point.row, "overrides": overrides, "config": config, "file": str(save)}
        print(json.dumps(document, indent=2))
        return
    print(f"best point of {results.name}: {_describe(point)}\n  {point.run.uri}\n")
    print("its config as overrides of inat train's defaults (add output=... to choose where):")
    print(f"  {shlex.join(['inat', 'train', *overrides])}\n")
    print(f"its config saved as {save}; retrain or fine-tune from it (any key can be overridden):")
    print(f"  {shlex.join(retrain)} output=...")


def fetch(uri: str, which: str, dest: Path) -> None:
    """Copy a point's best checkpoint and config.yaml into the local folder `dest`."""
    point = collect(uri).point(which)
    files = download(point.run, dest)
    print(f"point {_describe(point)}\n  {point.run.uri}")
    print("downloaded:", *files, sep="\n  ")
    print(f"evaluate it: {shlex.join(['inat', 'evaluate', str(dest), 'DATA'])}")

"""The leaderboard: one row per point, best validation accuracy first, as text, CSV or JSON."""

from __future__ import annotations

import csv
import io
from typing import Any

from inat.results.collect import RUN_COLUMNS, Results, value_text
from inat.rundir import Status

_FIELDS = [
    "index",
    "name",
    "status",
    "resumes",
    "epochs",
    "epochs_planned",
    "best_val_accuracy",
    "test_accuracy",
    "test_top5_accuracy",
    "wall_seconds",
    "train_seconds",
]


def status_text(row: dict[str, Any]) -> str:
    """The status column: e.g. "done", or "done, resumed 2x" for a preempted and resumed point."""
    resumes = f", resumed {row['resumes']}x" if row["resumes"] else ""
    return f"{row['status']}{resumes}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _epochs(row: dict[str, Any]) -> str:
    if row["status"] == Status.QUEUED:
        return "-"
    planned = row["epochs_planned"]
    return f"{row['epochs']}/{planned}" if planned else str(row["epochs"])


def records(results: Results) -> list[dict[str, Any]]:
    """The leaderboard as plain rows (best first): point_row plus `params` (the swept values),
    `settings` (the table's config columns: see Results.columns) and `run_dir`."""
    return [
        {**p.row, "params": p.params, "settings": p.settings, "run_dir": p.run.uri}
        for p in results.ranked()
    ]


def text(results: Results) -> str:
    """The leaderboard as an aligned table, with a line per file of the folder and of each
    point that has problems. A test top-5 column where some point has one (over 5 classes)."""
    top5 = any(p.row["test_top5_accuracy"] is not None for p in results.points)
    figures = ["val acc", "test acc", *(["test top5"] if top5 else []), "wall"]
    header = ["#", *_short(results.columns), "status", "epochs", *figures]
    lines = []
    for point in results.ranked():
        row = point.row
        lines.append(
            [
                str(row["index"]),
                *(value_text(point.settings.get(key)) for key in results.columns),
                status_text(row),
                _epochs(row),
                _percent(row["best_val_accuracy"]),
                _percent(row["test_accuracy"]),
                *([_percent(row["test_top5_accuracy"])] if top5 else []),
                _duration(row["wall_seconds"]),
            ]
        )
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]
    numeric = {0, *range(len(header) - len(figures) - 1, len(header))}
    table = [
        "  ".join(
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()
        for cells in (header, *lines)
    ]
    return "\n".join(table + _notes(results))


def _short(keys: list[str]) -> list[str]:
    """Column names: each key's last part (model.dropout -> dropout) unless two share it."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return [part if last.count(part) == 1 else key for part, key in zip(last, keys, strict=True)]


def _notes(results: Results) -> list[str]:
    notes = list(results.problems)
    for point in results.points:
        row = point.row
        for problem in row["problems"]:
            notes.append(f"point {row['index']}: {problem}")
        if row["error"] and row["status"] != Status.DONE:
            # Hydra's errors go on for lines (search path, options): the first one says it.
            notes.append(f"point {row['index']} ({row['status']}): {row['error'].splitlines()[0]}")
    return ["", *notes] if notes else []


def to_csv(results: Results) -> str:
    """The leaderboard as CSV: one column per config column (the swept keys), raw numbers
    (accuracy as a fraction)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    # A run's folder ("run" of a table of runs) is the name column already.
    columns = [key for key in results.columns if key != RUN_COLUMNS[0]]
    writer.writerow([*_FIELDS[:2], *columns, *_FIELDS[2:], "run_dir"])
    for point in results.ranked():
        row = point.row
        params = [value_text(point.settings.get(key)) for key in columns]
        values = ["" if row[f] is None else row[f] for f in _FIELDS]
        writer.writerow([*values[:2], *params, *values[2:], point.run.uri])
    return out.getvalue()

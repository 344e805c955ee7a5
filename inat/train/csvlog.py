"""<run>/metrics.csv, laid out as Lightning's CSVLogger writes it: one row per logged step,
epoch and test, one column per metric in the order first seen, blank where a row has none.

Spreadsheets and pandas read it as it is (`pandas.read_csv(run / "metrics.csv")`); the
per-step training loss is here and nowhere else in the run directory. The file is rewritten
whole (an object store cannot append); a resumed attempt keeps the rows up to the step it
resumes from and drops what the earlier attempt logged after it.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from inat.storage import Storage

METRICS_CSV = "metrics.csv"


class CsvLog:
    """The rows of metrics.csv, kept in memory and written by `write()`."""

    def __init__(self, run: Storage, resumed_step: int) -> None:
        self.run = run
        self.rows: list[dict[str, Any]] = []
        if resumed_step and run.exists(METRICS_CSV):
            earlier = csv.DictReader(io.StringIO(run.read_text(METRICS_CSV)))
            self.rows = [
                {k: v for k, v in row.items() if v != ""}
                for row in earlier
                if int(row["step"]) <= resumed_step
            ]

    def add(self, row: dict[str, Any]) -> None:
        """Append one row (it must hold `step`)."""
        self.rows.append(row)

    def write(self) -> None:
        """Rewrite metrics.csv with every row so far."""
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        self.run.write_text(METRICS_CSV, buffer.getvalue())

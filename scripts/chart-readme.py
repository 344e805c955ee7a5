"""Write the values table of charts/inat/README.md from the `# --` comments of values.yaml.

    python scripts/chart-readme.py

helm-docs' convention, without helm-docs: a comment block that starts with `# --` right
above a key describes that key (a map's keys need no row of their own: its default shows
them). In the description, comment lines indented further than the first are examples,
kept as code on lines of their own. Every value needs a description, its own or its map's.
The README is written by hand down to MARKER; the table after it is this script's, and
tests/chart/test_readme.py fails when it is not what this script writes now.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "charts" / "inat"
MARKER = (
    "<!-- The table below is written by scripts/chart-readme.py from the `# --` comments"
    " of values.yaml: edit those, then run it. -->"
)
_KEY = re.compile(r"^(?P<indent> *)(?P<key>\w[\w./-]*):(?: |$)")


def describe(comment: list[str]) -> str:
    """A table cell from the text of `# --` comment lines (after each "#")."""
    cell = comment[0].removeprefix(" --").strip()
    example = False
    for text in comment[1:]:
        if text.startswith("   "):  # "#   ...": an example line
            cell += f"<br>`{text[3:]}`"
        else:
            cell += ("<br>" if example else " ") + text.strip()
        example = text.startswith("   ")
    return cell.replace("|", r"\|")


def documented(values_yaml: str) -> list[tuple[tuple[str, ...], str]]:
    """(key path, description) of every key under a `# --` comment, in the file's order."""
    rows, comment, path = [], [], []
    for line in values_yaml.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped[1:])
            continue
        key = _KEY.match(line)
        if key:
            indent = len(key["indent"])
            path = [(i, k) for i, k in path if i < indent] + [(indent, key["key"])]
            starts = [n for n, text in enumerate(comment) if text.startswith(" --")]
            if starts:
                rows.append((tuple(k for _, k in path), describe(comment[starts[0] :])))
        comment = []  # a comment describes only the line right below it
    return rows


def leaves(values: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every value that is not a map with keys."""
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, (*path, key))
        else:
            yield (*path, key)


def table(values_yaml: str) -> str:
    """The values table: key, default (as JSON) and description of each documented key."""
    values = yaml.safe_load(values_yaml)
    rows = documented(values_yaml)
    for leaf in leaves(values):
        if not any(leaf[: len(path)] == path for path, _ in rows):
            raise SystemExit(f"values.yaml: {'.'.join(leaf)} has no `# --` comment, nor its map")
    lines = ["| Key | Default | Description |", "|---|---|---|"]
    for path, description in rows:
        default = values
        for key in path:
            default = default[key]
        default = json.dumps(default, separators=(",", ":")).replace("|", r"\|")
        lines.append(f"| `{'.'.join(path)}` | `{default}` | {description} |")
    return "\n".join(lines)


def readme(readme_md: str, values_yaml: str) -> str:
    """`readme_md` down to MARKER, then the values table of `values_yaml`."""
    head, marker, _ = readme_md.partition(MARKER)
    if not marker:
        raise SystemExit(f"README.md has no line {MARKER} for the table to follow")
    return f"{head}{MARKER}\n\n{table(values_yaml)}\n"


if __name__ == "__main__":
    path = CHART / "README.md"
    path.write_text(readme(path.read_text(), (CHART / "values.yaml").read_text()))
    print(f"wrote {path}")

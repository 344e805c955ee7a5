"""The text of `inat evaluate`: a confusion matrix that stays readable with long class
names that share a prefix (species of one genus)."""

from __future__ import annotations

import re

from inat.results.evaluate import report

CLASSES = [
    "Digitaria sanguinalis",
    "Digitaria ischaemum",
    "Digitaria ciliaris",
    "Digitaria",
    "Eleusine indica",
    "Setaria viridis",
    "Setaria pumila",
    "Setaria faberi",
    "Setaria italica",
    "Setaria verticillata",
    "Paspalum dilatatum",
]
MATRIX = [[120 if i == j else (i * j) % 4 for j in range(len(CLASSES))] for i in range(11)]


def _ends(line: str) -> list[int]:
    """Where each word of `line` ends."""
    return [match.end() for match in re.finditer(r"\S+", line)]


def test_rows_carry_whole_class_names_and_columns_the_rows_numbers():
    evaluation = {
        "checkpoint": "runs/default/checkpoints/epoch_003/state.pt",
        "data": "photos",
        "images": sum(map(sum, MATRIX)),
        "accuracy": 0.9,
        "top5_accuracy": 0.95,
        "tta": "none",
        "loss": 0.3,
        "per_class_accuracy": dict.fromkeys(CLASSES, 0.9),
        "confusion_matrix": MATRIX,
        "classes": CLASSES,
    }
    lines = report(evaluation).splitlines()
    assert "test accuracy 90.00%, top-5 95.00%, loss 0.3000 (test-time augmentation: none)" in lines
    start = lines.index(
        "confusion matrix (rows: true class; columns: predicted class, numbered as the rows):"
    )
    header, *rows = lines[start + 1 :]
    assert header.split() == [str(i) for i in range(1, 12)]
    assert len(rows) == len(CLASSES)
    for number, (line, name, counts) in enumerate(zip(rows, CLASSES, MATRIX, strict=True), 1):
        # "<number>  <the whole name>  <counts>": the name reads back exactly, apart from
        # the others that start the same.
        tag, rest = line.split(maxsplit=1)
        assert tag == str(number)
        assert rest.startswith(f"{name} ")
        assert rest.removeprefix(name).split() == [str(n) for n in counts]
        # Each count right-aligned under its column's number.
        assert _ends(line)[-len(counts) :] == _ends(header)

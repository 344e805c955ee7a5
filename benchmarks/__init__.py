"""Benchmarks of inat, run from the repository root: python -m benchmarks.throughput,
python -m benchmarks.sweeps, python -m benchmarks.startup, python -m
benchmarks.trainer_overhead. Each writes its own section of benchmarks/results.md."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("results.md")
# The tiny scratch CNN on generated 32x32 images: seconds an epoch on 2 CPUs.
TINY = [
    "data.synthetic.train_per_class=40",
    "data.synthetic.image_side=32",
    "data.image_size=32",
    "data.batch_size=16",
    "model.filters=[8,16,16,32,32]",
    "model.kernel_size=3",
    "model.dense_neurons=32",
]


def write_section(path: Path, text: str) -> None:
    """Put `text` (a section starting with its `# ` title line) into the file at `path`,
    in place of the section with the same title, keeping every other section."""
    title = text.splitlines()[0]
    sections: list[str] = []
    for line in (path.read_text() if path.exists() else "").splitlines(keepends=True):
        if line.startswith("# ") or not sections:
            sections.append("")
        sections[-1] += line
    kept = [s for s in sections if s.strip() and s.splitlines()[0] != title]
    body = [s.rstrip("\n") + "\n" for s in [*kept, text]]
    path.write_text("\n".join(body))

"""The README stays an on-ramp, and every link between the README and docs/ lands: on a
page that exists, at a heading it has (GitHub's anchors)."""

from __future__ import annotations

import re
from itertools import takewhile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of the headings of `page`."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return found


def test_the_readme_is_short_and_links_every_docs_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert PAGES
    for page in PAGES:
        assert f"(docs/{page.name})" in text, page.name


@pytest.mark.parametrize("page", [README, *PAGES, ROOT / "benchmarks" / "README.md"], ids=str)
def test_every_relative_link_lands_on_a_page_and_a_heading(page: Path) -> None:
    for target in _LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name}: {target}"


def _first_cells(page: Path, heading: str) -> list[str]:
    """The first cell of each row of the first table below `heading` in `page`."""
    after = page.read_text().split(f"\n{heading}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(after) if line.startswith("|"))
    table = list(takewhile(lambda line: line.startswith("|"), after[start:]))
    return [row.split("|")[1].strip().strip("`").split("`")[0] for row in table[2:]]


def test_the_tables_that_copy_the_code_name_what_the_code_defines() -> None:
    # A table in the docs that lists what the code defines is compared with it.
    from inat.errors import ExitCode
    from inat.results.export import FILES
    from inat.schema import TRACKERS

    docs = ROOT / "docs"
    codes = _first_cells(docs / "configs.md", "## Exit codes")
    assert [int(code) for code in codes] == sorted(int(code) for code in ExitCode)
    assert _first_cells(docs / "configs.md", "## Logging") == list(TRACKERS)
    assert _first_cells(docs / "results.md", "## Export") == list(FILES)

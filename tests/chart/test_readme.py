"""charts/inat/README.md: its values table is what scripts/chart-readme.py writes from the
`# --` comments of values.yaml now, and it says how to install and test the chart."""

from __future__ import annotations

import re
import runpy

import pytest
import yaml

from .helm import CHART, REPO

README = CHART / "README.md"
VALUES = CHART / "values.yaml"
SCRIPT = runpy.run_path(str(REPO / "scripts" / "chart-readme.py"))


def test_the_values_table_is_what_the_script_writes_now():
    text = README.read_text()
    assert SCRIPT["readme"](text, VALUES.read_text()) == text, (
        "charts/inat/README.md is out of date: run python scripts/chart-readme.py"
    )


def test_the_table_has_a_row_for_every_value():
    rows = re.findall(r"^\| `([^`]+)` \|", README.read_text(), flags=re.MULTILINE)
    assert len(rows) == len(set(rows))
    for key in yaml.safe_load(VALUES.read_text()):
        assert any(row == key or row.startswith(f"{key}.") for row in rows), key


def test_the_readme_says_how_to_install_and_test_and_links_the_guide():
    text = README.read_text()
    assert "helm install NAME charts/inat -f cluster.yaml -f jobs/scratch_sweep.yaml" in text
    assert "helm test NAME" in text
    assert "(../../docs/kubernetes.md)" in text
    assert (README.parent / "../../docs/kubernetes.md").resolve().is_file()
    assert "(../charts/inat/README.md)" in (REPO / "docs" / "kubernetes.md").read_text()


SAMPLE = """\
# Values of a chart: not a value's description.

# A group: its keys are described one by one.
s3:
  # -- The server, e.g. http://minio:9000;
  # empty: AWS.
  endpoint: ""
# -- Tolerations, e.g.
#   - {key: gpu, operator: Exists}
#   - key: b
#     effect: NoSchedule
# after the examples.
tolerations: []
# -- A map described whole: IfNotPresent | Always.
resources:
  # Its keys show in its default.
  requests:
    nvidia.com/gpu: 1
"""


def test_descriptions_join_prose_and_keep_examples_as_code():
    assert SCRIPT["table"](SAMPLE).splitlines() == [
        "| Key | Default | Description |",
        "|---|---|---|",
        '| `s3.endpoint` | `""` | The server, e.g. http://minio:9000; empty: AWS. |',
        "| `tolerations` | `[]` | Tolerations, e.g.<br>`- {key: gpu, operator: Exists}`"
        "<br>`- key: b`<br>`  effect: NoSchedule`<br>after the examples. |",
        '| `resources` | `{"requests":{"nvidia.com/gpu":1}}` | A map described whole: '
        r"IfNotPresent \| Always. |",
    ]


@pytest.mark.parametrize(
    ("values_yaml", "undescribed"),
    [
        ("# A comment, not a description.\nparallelism: 4\n", "parallelism"),
        ("# -- Separated from its key.\n\nparallelism: 4\n", "parallelism"),
        ("s3:\n  # -- The server.\n  endpoint: ''\n  region: ''\n", "s3.region"),
    ],
)
def test_a_value_without_a_description_is_refused(values_yaml, undescribed):
    with pytest.raises(SystemExit, match=rf"values.yaml: {undescribed} has no `# --` comment"):
        SCRIPT["table"](values_yaml)


def test_the_readme_keeps_what_is_written_by_hand():
    marker = SCRIPT["MARKER"]
    written = SCRIPT["readme"](f"# Chart\n\nBy hand.\n\n{marker}\n\nan old table\n", SAMPLE)
    assert written.startswith(f"# Chart\n\nBy hand.\n\n{marker}\n\n| Key |")
    assert "an old table" not in written
    with pytest.raises(SystemExit, match="no line"):
        SCRIPT["readme"]("# Chart\n", SAMPLE)

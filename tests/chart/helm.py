"""The real helm binary on the chart: render, lint, and read the rendered manifests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate.utils import ValidationError, all_versions, validate

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "inat"
JOB_FILES = sorted((REPO / "jobs").glob("*.yaml"))
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
# Where the chart's outputs go in tests; no bucket is touched unless a test runs a pod.
OUTPUT = "s3://inat-test/runs"


def _minor(version: str) -> tuple[int, int]:
    """(major, minor) of a version such as 1.29.0 or 1.29.0-0."""
    major, minor = re.match(r"^v?(\d+)\.(\d+)", version).groups()
    return int(major), int(minor)


def supported_versions(kube_version: str, known: Sequence[str]) -> list[str]:
    """The versions in `known` (kubernetes-validate's, e.g. 1.37.0) that Chart.yaml's
    kubeVersion admits: from its lower bound (">=1.29.0-0") to its upper one if any
    ("<1.40.0-0"), else to the newest known; a constraint of another form is an error."""
    bounds = [b for b in re.split(r"[\s,]+", kube_version.strip()) if b]
    lower, upper = None, None
    for bound in bounds:
        if bound.startswith(">="):
            lower = _minor(bound[2:])
        elif bound.startswith("<") and not bound.startswith("<="):
            upper = _minor(bound[1:])
        else:
            raise ValueError(f"kubeVersion {kube_version!r}: only >=X.Y and <X.Y are understood")
    if lower is None:
        raise ValueError(f"kubeVersion {kube_version!r} has no lower bound (>=X.Y)")
    versions = sorted(set(known), key=_minor)
    return [v for v in versions if lower <= _minor(v) and (upper is None or _minor(v) < upper)]


# Every Kubernetes minor version the chart claims (Chart.yaml's kubeVersion) that
# kubernetes-validate has schemas of, e.g. 1.29.0 ... 1.37.0: a new one is picked up.
KUBE_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
KUBERNETES_VERSIONS = supported_versions(KUBE_VERSION, all_versions())


def helm_binary() -> str:
    """The helm that scripts/install-helm.sh put beside this Python, else helm on PATH.

    Skipped with the reason outside CI when there is none; CI must have it.
    """
    beside = Path(sys.executable).with_name("helm")
    found = str(beside) if beside.is_file() else shutil.which("helm")
    if found:
        return found
    reason = "no helm binary: run `bash scripts/install-helm.sh` (scripts/test.sh does)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def helm(*args: str) -> subprocess.CompletedProcess:
    """Run `helm ARGS` and capture its output."""
    return subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def value_args(values_files: Sequence[Path], values: dict[str, Any]) -> list[str]:
    """helm's arguments for values files, then top-level `values` (merged like a values file)."""
    args = [arg for path in values_files for arg in ("-f", str(path))]
    for key, value in values.items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    return args


def template(
    values_files: Sequence[Path] = (),
    values: dict[str, Any] | None = None,
    release: str = "test",
) -> subprocess.CompletedProcess:
    """`helm template` of the chart with these values (output=OUTPUT unless given)."""
    return helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        "ml",
        *value_args(values_files, {"output": OUTPUT, **(values or {})}),
    )


def lint(values_files: Sequence[Path]) -> subprocess.CompletedProcess:
    """`helm lint --strict` of the chart with these values (output=OUTPUT)."""
    return helm("lint", "--strict", str(CHART), *value_args(values_files, {"output": OUTPUT}))


def render(
    values_files: Sequence[Path] = (),
    values: dict[str, Any] | None = None,
    release: str = "test",
) -> list[dict[str, Any]]:
    """The manifests the chart renders, each checked against the Kubernetes schemas of
    KUBERNETES_VERSIONS (every supported version), strictly (no unknown fields); a
    rendering error fails the test."""
    done = template(values_files, values, release)
    assert done.returncode == 0, done.stderr
    manifests = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    for manifest in manifests:
        for version in KUBERNETES_VERSIONS:
            try:
                validate(manifest, version, True)
            except ValidationError as e:
                pytest.fail(f"{manifest['kind']} is not valid for Kubernetes {version}: {e}")
    return manifests


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The one manifest of this kind."""
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, [m["kind"] for m in manifests]
    return found[0]


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The Job's one container."""
    containers = one(manifests, "Job")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The container's env entries by name."""
    return {e["name"]: e for e in container(manifests)["env"]}

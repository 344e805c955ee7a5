"""requirements.lock against pyproject.toml and the installed environment: the lock pins a
version inside every range pyproject names, names no direct dependency pyproject dropped,
and is what scripts/setup.sh installed. `bash scripts/lock.sh` refreshes it."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
FIX = "refresh the lock with `bash scripts/lock.sh`"


def declared() -> dict[str, Requirement]:
    """pyproject's requirements, the application's and every extra's, by package name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    lines = [*project["dependencies"], *(line for extra in extras for line in extra)]
    return {canonicalize_name(r.name): r for r in map(Requirement, lines)}


def locked() -> tuple[dict[str, str], set[str]]:
    """The lock's pins by package name, and the names it lists as pyproject's own."""
    pins: dict[str, str] = {}
    direct: set[str] = set()
    name = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if pin := re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line):
            name = canonicalize_name(pin[1])
            pins[name] = pin[2]
        elif "inat (pyproject.toml)" in line:
            direct.add(name)
    return pins, direct


def test_the_lock_pins_a_version_inside_every_declared_range() -> None:
    pins, _ = locked()
    for name, requirement in declared().items():
        assert name in pins, f"{name} is in pyproject.toml but not in requirements.lock: {FIX}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject's "
            f"'{requirement}': {FIX}"
        )


def test_the_lock_names_no_dependency_pyproject_dropped() -> None:
    _, direct = locked()
    assert direct == set(declared()), f"pyproject.toml and requirements.lock differ: {FIX}"


def test_the_environment_holds_the_locked_versions() -> None:
    pins, _ = locked()
    for name in declared():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # an extra this environment was not set up with
        # A local label (torch's +cpu, +cu130) is a build of the same release.
        assert installed.split("+")[0] == pins[name], (
            f"{name} {installed} is installed, the lock says {pins[name]}: "
            "run `bash scripts/setup.sh`"
        )


def test_the_lock_has_the_pytorch_of_the_image() -> None:
    pins, _ = locked()
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name, arg in (("torch", "TORCH_VERSION"), ("torchvision", "TORCHVISION_VERSION")):
        image = re.search(rf"^ARG {arg}=(\S+)$", dockerfile, re.MULTILINE)[1]
        assert pins[name] == image, f"the Dockerfile installs {name} {image}: {FIX}"

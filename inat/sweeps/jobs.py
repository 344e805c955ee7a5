"""Job definitions and their expansion into the ordered points of a sweep.

A job file (`jobs/*.yaml`) is read by every backend: the local runner, the Slurm
controller and the Helm chart (which takes the same file as values). Its `job`
block says what to train:

    job:
      name: scratch-sweep                 # the folder below `output`
      overrides: [experiment=original_scratch]   # Hydra overrides of every point
      sweep:                              # absent for a single run
        method: random                    # grid | random | bayes (`strategy` is read too)
        run_cap: 20                       # random, bayes (`num_points` is read as well)
        seed: 0                           # random, bayes
        parameters:                       # W&B's grammar (inat.sweeps.space)
          optimizer.lr: {distribution: log_uniform_values, min: 1.0e-4, max: 0.1}
          model.dropout: {values: [0.2, 0.3]}

`params: {optimizer.lr: [0.01, 0.001]}` lists values as before.

`expand` turns a grid or random sweep into points (a bayes sweep's points are chosen as
its workers take them: inat.sweeps.claims); a point's name is a pure function of its index and
swept overrides, so every backend, every retry and every reader agrees on it.
The Helm chart gets the job as values, which keep neither key order nor the
difference between 0.0 and 0, and reads 1e-4 as a number: so swept keys are taken
in sorted order, integral floats are written as integers, and `load_job` reads
exponent floats as numbers, and the same job expands to the same points everywhere.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inat.errors import ConfigError
from inat.sweeps.search import parse_search
from inat.sweeps.study import draw

_JOB_KEYS = {"name", "overrides", "sweep"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")
_MAX_READABLE = 60
_PLAIN = re.compile(r"^[A-Za-z0-9_./:+-]+$")


def point_name(index: int, overrides: Sequence[str]) -> str:
    """`003-lr=0.01,dropout=0.3-1a2b3c`: index, readable overrides, short hash of the overrides."""
    joined = ",".join(overrides)
    digest = hashlib.sha1(joined.encode()).hexdigest()[:6]
    readable = _UNSAFE.sub("_", joined)[:_MAX_READABLE].strip("_,")
    return "-".join(part for part in (f"{index:03d}", readable, digest) if part)


@dataclass(frozen=True)
class Point:
    """One training run of a sweep."""

    index: int
    name: str
    swept: tuple[str, ...]  # the overrides that differ between points
    overrides: tuple[str, ...]  # the job's overrides, then the swept ones


def override_value(value: Any) -> str:
    """`value` written in Hydra's override grammar: true, null, [1,2], 'a string', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in sorted(value.items())) + "}"
    text = str(value)
    return text if _PLAIN.match(text) else "'" + text.replace("'", "\\'") + "'"


def _check_keys(where: str, given: Mapping, allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def expand(job: Mapping[str, Any]) -> list[Point]:
    """The ordered points of a job's `job` block (one point when it has no sweep).

    A grid takes every combination of the values; random draws `run_cap` points: without
    replacement from the combinations when every key has a list of values (at most all of
    them), else from the distributions with Optuna's random (or QMC) sampler.
    """
    _check_keys("job", job, _JOB_KEYS)
    sweep = job.get("sweep")
    if not sweep:
        base = tuple(str(o) for o in job.get("overrides") or ())
        return [Point(0, point_name(0, ()), (), base)]
    search = parse_search(str(job.get("name")), sweep)
    swept = {k: p for k, p in search.space.items() if p.distribution is not None}
    if search.adaptive:
        raise ConfigError(
            f"job {job.get('name')}: method {search.method} chooses each point when a worker "
            "takes it; its points are not known in advance (inat sweep runs its workers)"
        )
    if search.method == "random" and not all(p.finite for p in swept.values()):
        combos = [tuple(swept[k].value_of(d[k]) for k in swept) for d in draw(search)]
    else:
        combos = list(itertools.product(*(swept[k].choices() for k in swept)))
        if search.method == "random":
            rng = random.Random(search.seed)
            combos = rng.sample(combos, min(search.run_cap, len(combos)))
    return [
        make_point(job, index, dict(zip(swept, combo, strict=True)))
        for index, combo in enumerate(combos)
    ]


def make_point(job: Mapping[str, Any], index: int, values: Mapping[str, Any]) -> Point:
    """Point `index` of the job's sweep with the swept keys set to `values` (config values,
    in the order of the search space); the job's overrides and constants come first."""
    search = parse_search(str(job.get("name")), job["sweep"])
    base = tuple(str(o) for o in job.get("overrides") or ())
    constants = tuple(
        f"{k}={override_value(p.value)}" for k, p in search.space.items() if p.distribution is None
    )
    swept = tuple(f"{k}={override_value(v)}" for k, v in values.items())
    return Point(index, point_name(index, swept), swept, base + constants + swept)


class _JobLoader(yaml.SafeLoader):
    """YAML with 1.2's floats: `1e-4` is a number (YAML 1.1 reads it as a string)."""


_JobLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_job(path: str | Path) -> dict[str, Any]:
    """The `job` block of a job file."""
    try:
        document = yaml.load(Path(path).read_text(), Loader=_JobLoader)
    except OSError as e:
        raise ConfigError(f"cannot read job file {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"job file {path} is not valid YAML: {e}") from e
    if not isinstance(document, dict) or not isinstance(document.get("job"), dict):
        raise ConfigError(f"job file {path} has no `job:` block; see jobs/*.yaml for examples")
    return document["job"]

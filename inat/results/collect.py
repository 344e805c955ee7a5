"""Find and read a sweep or a run: `inat results OUTPUT[/SWEEP]` accepts

- a sweep folder (holding sweep.json): its points in the manifest's order, queued ones too;
- a run directory (holding result.json or config.yaml): one point;
- a folder of run directories without a manifest: an `inat train -m` multirun (each run's
  config says it is a point of that folder) is a sweep whose swept keys are those whose
  values differ between the runs' configs; other runs side by side (`inat train name=a`,
  `inat train name=b`) are a table of runs, each named by its folder, nothing swept;
- an output folder holding exactly one sweep.

A sweep folder whose sweep.json or claim is damaged is read as a folder of run
directories, with a note naming the file and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from inat import rundir
from inat.errors import ConfigError
from inat.results.status import PointFiles, best_row, point_row, read_point
from inat.rundir import (
    MANIFEST,
    UNCOMPARED_KEYS,
    DamagedFile,
    RunDir,
    flatten,
    read_manifest,
    sweep_points,
    under,
)
from inat.storage import Storage, open_storage
from inat.sweeps.jobs import override_value

_INDEX = re.compile(r"^(\d+)-")
SWEEP, RUN, RUNS = "sweep", "run", "runs"  # the kinds of Results
# The columns of a table of runs side by side: its folder and key settings (the table's
# epochs column shows trainer.epochs as planned).
RUN_COLUMNS = ["run", "model", "lr"]
# Keys that say where a run reads, writes and logs or how fast it computes, not what it
# trains: never swept keys of a leaderboard or a plot, even where their values differ.
BOOKKEEPING_KEYS = tuple(key for key in UNCOMPARED_KEYS if key != "trainer.epochs")


@dataclass
class PointResult:
    """One point: its leaderboard row, its files, its swept values and its table values."""

    row: dict[str, Any]
    files: PointFiles
    run: Storage
    params: dict[str, Any]  # swept key -> value
    settings: dict[str, Any]  # the table's column -> value (see Results.columns)

    @property
    def label(self) -> str:
        """The swept values in short, e.g. "dropout=0.3, activation=gelu"."""
        values = ", ".join(
            f"{k.rsplit('.', 1)[-1]}={value_text(v)}" for k, v in self.params.items()
        )
        return values or self.row["name"]

    def config(self) -> dict[str, Any]:
        """The run's resolved config (config.yaml)."""
        config = RunDir(self.run).config()
        if config is None:
            raise ConfigError(
                f"{self.run.uri} has no {rundir.CONFIG} yet: the point has not started"
            )
        return config


@dataclass
class Results:
    """A sweep (or a single run, as a sweep of one point) as its run directories show it."""

    name: str
    storage: Storage  # the sweep folder, the run directory of a single run, a folder of runs
    kind: str  # SWEEP, RUN or RUNS (runs side by side, not a sweep)
    keys: list[str]  # the swept keys, in order
    points: list[PointResult] = field(default_factory=list)  # in index order
    manifest: dict[str, Any] | None = None  # sweep.json of a sweep folder
    problems: list[str] = field(default_factory=list)  # the folder's files that cannot be read

    @property
    def columns(self) -> list[str]:
        """The config columns of the table: the swept keys, or RUN_COLUMNS for runs."""
        return RUN_COLUMNS if self.kind == RUNS else self.keys

    def ranked(self) -> list[PointResult]:
        """Points by best validation accuracy, highest first; points without one last."""
        return sorted(
            self.points,
            key=lambda p: (
                p.row["best_val_accuracy"] is None,
                -(p.row["best_val_accuracy"] or 0.0),
                p.row["index"],
            ),
        )

    def best(self) -> PointResult | None:
        """The winning point (see status.best_row), or None while no point has a figure."""
        row = best_row([p.row for p in self.points])
        return None if row is None else self.point(str(row["index"]))

    def point(self, which: str) -> PointResult:
        """The point named `which`: "best", an index or a point's folder name."""
        if which == "best":
            best = self.best()
            if best is None:
                raise ConfigError(
                    f"no point of {self.storage.uri} has finished an epoch yet: nothing is best"
                )
            return best
        for point in self.points:
            if which in (str(point.row["index"]), point.row["name"]):
                return point
        raise ConfigError(
            f"{self.storage.uri} has no point {which!r}: use best, an index "
            f"(0-{len(self.points) - 1}) or a point's folder name"
        )


def value_text(value: Any) -> str:
    """A swept value as the sweep wrote it (Hydra override syntax for non-strings), a float
    drawn from a range to 4 significant digits (0.0123, not 0.012318867413449957)."""
    if isinstance(value, float) and len(repr(value)) > 8:
        return f"{value:.4g}"
    return value if isinstance(value, str) else override_value(value)


def parse_swept(swept: Sequence[str]) -> dict[str, Any]:
    """["model.dropout=0.3", ...] -> {"model.dropout": 0.3, ...} (values as YAML reads them)."""
    params = {}
    for override in swept:
        key, _, text = override.partition("=")
        try:
            params[key] = yaml.safe_load(text)
        except yaml.YAMLError:
            params[key] = text
    return params


def _point(
    run: Storage,
    entry: dict[str, Any],
    params: dict[str, Any],
    settings: dict[str, Any] | None = None,
    problems: Sequence[str] = (),
) -> PointResult:
    """A point read from `run`, with `problems` of its files read already; its table values
    are its swept ones unless `settings`."""
    files = read_point(run)
    files.problems[:0] = problems
    return PointResult(
        point_row(entry, files), files, run, params, params if settings is None else settings
    )


def _sweep(storage: Storage) -> Results:
    manifest = read_manifest(storage)
    entries = sweep_points(storage)
    keys = list(_swept(entries[0])) if entries else []
    results = Results(manifest["name"], storage, SWEEP, keys, manifest=manifest)
    results.points = [_point(storage.child(e["name"]), e, _swept(e)) for e in entries]
    return results


def _swept(entry: dict[str, Any]) -> dict[str, Any]:
    """A manifest entry's swept values, without bookkeeping keys."""
    params = parse_swept(entry["swept"])
    return {k: v for k, v in params.items() if not under(k, BOOKKEEPING_KEYS)}


def _single_run(storage: Storage) -> Results:
    name = storage.uri.rstrip("/").rsplit("/", 1)[-1]
    results = Results(name, storage, RUN, [])
    results.points = [_point(storage, {"index": 0, "name": name, "swept": []}, {})]
    return results


def _config(run: Storage, problems: list[str]) -> dict[str, Any]:
    """The run's config.yaml, or {} when it has none (yet) or it cannot be read (noted in
    `problems`)."""
    try:
        return RunDir(run).config() or {}
    except FileNotFoundError:
        return {}
    except DamagedFile as e:
        problems.append(e.note)
        return {}


def _is_point(folder: str, config: dict[str, Any]) -> bool:
    """Whether the run's config says it is the point `folder` of a multirun or sweep: its
    run directory is <output>/<name>/<folder>, where a run of its own has <output>/<name>."""
    return config.get("run_dir") == f"{config.get('output')}/{config.get('name')}/{folder}"


def _settings(folder: str, config: dict[str, Any]) -> dict[str, Any]:
    """The RUN_COLUMNS values of a run: its folder, model (backbone or class) and lr."""
    model = config.get("model") or {}
    target = model.get("_target_")
    return {
        "run": folder,
        "model": model.get("backbone") or (target.rsplit(".", 1)[-1] if target else None),
        "lr": (config.get("optimizer") or {}).get("lr"),
    }


def _runs(storage: Storage, folders: list[str]) -> Results:
    """Run directories side by side: a multirun when every readable config says it is one
    of its points, else a table of runs."""
    problems: dict[str, list[str]] = {folder: [] for folder in folders}
    configs = [_config(storage.child(folder), problems[folder]) for folder in folders]
    known = [(folder, config) for folder, config in zip(folders, configs, strict=True) if config]
    name = storage.uri.rstrip("/").rsplit("/", 1)[-1]
    if not known or not all(_is_point(folder, config) for folder, config in known):
        results = Results(name, storage, RUNS, [])
        for index, (folder, config) in enumerate(zip(folders, configs, strict=True)):
            entry = {"index": index, "name": folder, "swept": []}
            results.points.append(
                _point(
                    storage.child(folder),
                    entry,
                    {},
                    _settings(folder, config),
                    problems=problems[folder],
                )
            )
        return results
    flat = [flatten(config) for config in configs]
    keys = [
        key
        for key in dict.fromkeys(k for c in flat for k in c)
        if not under(key, BOOKKEEPING_KEYS) and len({repr(c.get(key)) for c in flat if c}) > 1
    ]
    results = Results(name, storage, SWEEP, keys)
    for position, (folder, config) in enumerate(zip(folders, flat, strict=True)):
        params = {key: config.get(key) for key in keys} if config else {}
        index = int(match[1]) if (match := _INDEX.match(folder)) else position
        swept = [f"{key}={override_value(value)}" for key, value in params.items()]
        entry = {"index": index, "name": folder, "swept": swept}
        results.points.append(
            _point(storage.child(folder), entry, params, problems=problems[folder])
        )
    return results


def _run_folders(paths: list[list[str]]) -> list[str]:
    """The folders among `paths` (a listing, split at "/") that are run directories."""
    return sorted({p[0] for p in paths if len(p) == 2 and p[1] in (rundir.RESULT, rundir.CONFIG)})


def _by_folders(storage: Storage, damaged: DamagedFile) -> Results:
    """The sweep in `storage`, whose list of points (sweep.json or a claim) is `damaged`,
    read from its points' run directories as a folder of runs; `damaged` when none has
    started."""
    runs = _run_folders([path.split("/") for path in storage.list()])
    if not runs:
        raise damaged
    results = _runs(storage, runs)
    results.problems.append(
        f"{damaged.note}. Meanwhile the points are read from their folders (those not "
        "started yet are not shown)"
    )
    return results


def collect(location: str | Storage) -> Results:
    """Read the sweep or run at `location`: a local path or s3:// URI (opened with the
    default storage settings), or a storage already opened with a run's settings; see the
    module docstring."""
    storage = location if isinstance(location, Storage) else open_storage(location.rstrip("/"))
    if storage.exists(MANIFEST):
        try:
            return _sweep(storage)
        except DamagedFile as e:
            return _by_folders(storage, e)
    if storage.exists(rundir.RESULT) or storage.exists(rundir.CONFIG):
        return _single_run(storage)
    paths = [path.split("/") for path in storage.list()]
    runs = _run_folders(paths)
    if runs:
        return _runs(storage, runs)
    # Below an output folder: sweeps (with a manifest) and multiruns (folders of runs).
    sweeps = sorted(
        {p[0] for p in paths if p[1:] == [MANIFEST] or (len(p) == 3 and p[2] == rundir.RESULT)}
    )
    if len(sweeps) == 1:
        return collect(storage.child(sweeps[0]))
    if sweeps:
        raise ConfigError(
            f"{storage.uri} holds several sweeps ({', '.join(sweeps)}): name one, e.g. "
            f"inat results {storage.uri}/{sweeps[0]}"
        )
    raise ConfigError(
        f"found no sweep or run at {storage.uri}: give a sweep folder (holding {MANIFEST}), a run "
        f"directory (holding {rundir.RESULT}) or the output folder above them, e.g. "
        "inat results outputs/demo-sweep"
    )

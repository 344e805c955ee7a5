"""An adaptive sweep's settings: the `job.sweep` block's method, sampler, metric, budget and
early termination, in W&B's sweep grammar where W&B has a name for it.

    sweep:
      method: bayes                 # grid | random | bayes (`strategy` is read as well)
      sampler: tpe                  # bayes: tpe (default) | gp; random: random (default) | qmc
      metric: {name: val_accuracy, goal: maximize}   # goal: minimize unless said, as in W&B
      run_cap: 24                   # points trained in all (`num_points` is read as well)
      seed: 0
      early_terminate: {type: hyperband, min_iter: 1, eta: 3}   # hyperband | asha | median
      parallelism: 4                # workers at once
      workers_per_gpu: 1
      parameters: {...}             # see inat.sweeps.space
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inat.errors import ConfigError
from inat.rundir import EPOCH_METRICS
from inat.sweeps.space import Parameter, parse_space

METHODS = ("grid", "random", "bayes")
SAMPLERS = {"bayes": ("tpe", "gp"), "random": ("random", "qmc"), "grid": ()}
PRUNERS = ("hyperband", "asha", "median")
GOALS = ("maximize", "minimize")
SWEEP_KEYS = frozenset(
    {
        "method",
        "strategy",
        "sampler",
        "metric",
        "run_cap",
        "num_points",
        "seed",
        "early_terminate",
        "parallelism",
        "workers_per_gpu",
        "parameters",
        "params",
    }
)
_TERMINATE_KEYS = frozenset({"type", "min_iter", "eta", "max_iter"})


@dataclass(frozen=True)
class EarlyTerminate:
    """W&B's `early_terminate` block: stop weak points at rungs of min_iter * eta**k epochs."""

    type: str  # hyperband | asha | median
    min_iter: int = 1
    eta: int = 3
    max_iter: int | None = None  # hyperband's largest budget; None: the points' epochs


@dataclass(frozen=True)
class Search:
    """What a sweep searches and how: the sampler, the metric, the budget, the pruner."""

    name: str  # the sweep's name: the study's name
    space: Mapping[str, Parameter]
    method: str = "bayes"
    sampler: str = "tpe"
    metric: str = "val_accuracy"
    goal: str = "maximize"
    seed: int = 0
    run_cap: int = 20
    early_terminate: EarlyTerminate | None = None
    parallelism: int = 1
    workers_per_gpu: int = 1

    @property
    def adaptive(self) -> bool:
        """Whether each point is chosen when a worker takes it, from the points before it."""
        return self.method == "bayes"


def _int(where: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{where}={value!r}: use a whole number >= {low}")
    return value


def _one_of(where: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}={value!r} is not allowed; use one of {', '.join(allowed)}")
    return value


def _alias(sweep: Mapping[str, Any], name: str, alias: str, default: Any) -> Any:
    if name in sweep and alias in sweep:
        raise ConfigError(f"job.sweep: give {name} or {alias}, not both")
    return sweep.get(name, sweep.get(alias, default))


def _terminate(block: Any) -> EarlyTerminate | None:
    where = "job.sweep.early_terminate"
    if block is None:
        return None
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where} must be a block such as {{type: hyperband, min_iter: 1}}")
    unknown = sorted(set(block) - _TERMINATE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_TERMINATE_KEYS)}")
    kind = _one_of(f"{where}.type", block.get("type"), PRUNERS)
    min_iter = _int(f"{where}.min_iter", block.get("min_iter", 1), 1)
    eta = _int(f"{where}.eta", block.get("eta", 3), 2)
    max_iter = block.get("max_iter")
    if max_iter is not None:
        _int(f"{where}.max_iter", max_iter, min_iter + 1)
    return EarlyTerminate(kind, min_iter, eta, max_iter)


def _metric(block: Any) -> tuple[str, str]:
    """The metric's name and goal. As in W&B, a metric block without a goal is minimized;
    without a metric block, val_accuracy is maximized. The name must be a column of
    metrics.jsonl: a misspelt one would leave the search and early termination blind."""
    if block is None:
        return "val_accuracy", "maximize"
    if not isinstance(block, Mapping) or set(block) - {"name", "goal"}:
        raise ConfigError("job.sweep.metric must be {name: val_accuracy, goal: maximize}")
    name = block.get("name")
    if name not in EPOCH_METRICS:
        close = difflib.get_close_matches(str(name), EPOCH_METRICS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(
            f"job.sweep.metric.name={name!r} is not a metric inat records: {hint}use one of "
            f"{', '.join(EPOCH_METRICS)} (the columns of metrics.jsonl)"
        )
    return name, _one_of("job.sweep.metric.goal", block.get("goal", "minimize"), GOALS)


def parse_search(name: str, sweep: Mapping[str, Any]) -> Search:
    """The settings of the `job.sweep` block of job `name`; ConfigError naming a bad key."""
    unknown = sorted(set(sweep) - SWEEP_KEYS)
    if unknown:
        raise ConfigError(f"job.sweep: unknown key(s) {unknown}; allowed: {sorted(SWEEP_KEYS)}")
    method = _one_of("job.sweep.method", _alias(sweep, "method", "strategy", "grid"), METHODS)
    space = parse_space(sweep)
    if method == "grid":
        continuous = [key for key, parameter in space.items() if not parameter.finite]
        if continuous:
            raise ConfigError(
                f"job.sweep.parameters.{continuous[0]} is a distribution: a grid needs lists "
                "of values (values: [...]); use method: random or bayes to sample it"
            )
    samplers = SAMPLERS[method]
    sampler = sweep.get("sampler", samplers[0] if samplers else None)
    if method == "grid" and "sampler" in sweep:
        raise ConfigError("job.sweep.sampler: a grid has no sampler; remove it")
    if samplers:
        _one_of(f"job.sweep.sampler (method {method})", sampler, samplers)
    metric_name, goal = _metric(sweep.get("metric"))
    run_cap = _alias(sweep, "run_cap", "num_points", None)
    if method != "grid" or run_cap is not None:
        run_cap = _int("job.sweep.run_cap", run_cap, 1)
    return Search(
        name=name,
        space=space,
        method=method,
        sampler=sampler or "",
        metric=metric_name,
        goal=goal,
        seed=_int("job.sweep.seed", sweep.get("seed", 0), 0),
        run_cap=run_cap or 0,
        early_terminate=_terminate(sweep.get("early_terminate")),
        parallelism=_int("job.sweep.parallelism", sweep.get("parallelism", 1), 1),
        workers_per_gpu=_int("job.sweep.workers_per_gpu", sweep.get("workers_per_gpu", 1), 1),
    )

"""An Optuna study rebuilt in memory from what a sweep's points recorded: no database.

Every decision of an adaptive sweep is a pure function of the sweep's config, a point's
index and the records of the points at that moment:

- `suggest`: the hyperparameters of a new point of a bayes sweep. Done points are
  COMPLETE trials, pruned ones PRUNED with their intermediate values, claimed but
  unfinished ones (running, or interrupted and waiting to resume) RUNNING, so that
  TPE's constant liar keeps parallel workers apart; failed points (a bad config, a bug)
  are FAIL and steer nothing. The sampler is seeded from the sweep's seed and the
  point's index, and asked once.
- `draw`: the points of a random sweep, one sequence of Optuna's random or QMC sampler.
- `judge`: whether a point stops at this epoch. The pruners' rung bookkeeping (the system
  attributes `completed_rung_K` of the successive-halving pruners) is restored from the
  decisions each point recorded; trial numbers are point indices and the study is named
  after the sweep, so Hyperband puts a point in the same bracket at every rebuild.
"""

from __future__ import annotations

import hashlib
import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, SuccessiveHalvingPruner
from optuna.samplers import BaseSampler, GPSampler, QMCSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState, create_trial

from inat.rundir import Status
from inat.sweeps.search import EarlyTerminate, Search
from inat.sweeps.space import distributions

# Optuna's own notes (a missing optional speed-up) are not the user's.
optuna.logging.set_verbosity(optuna.logging.ERROR)

_RUNG = "completed_rung_"


@dataclass(frozen=True)
class PointRecord:
    """What one point of a sweep recorded, as the rebuild reads it."""

    index: int
    params: Mapping[str, Any]  # the values the sampler drew (Optuna's, before `value_of`)
    status: Status | None = None  # None: claimed, not started yet
    metrics: Sequence[float] = ()  # the metric after each epoch: epoch 1 first
    rungs: Mapping[int, float] = field(default_factory=dict)  # rung -> value on reaching it


@dataclass(frozen=True)
class Decision:
    """An early-stop decision at an epoch's end, recorded in the point's run directory."""

    epoch: int
    value: float
    prune: bool
    rungs: dict[int, float]  # every rung this point has reached, with its value there
    rung: int | None = None  # the rung judged at this epoch (median: the epoch); None: none
    threshold: float | None = None  # the value the point had to reach to go on
    compared: int = 0  # how many points' values at that rung (or epoch) it was compared with

    def as_dict(self) -> dict[str, Any]:
        """The decision as a JSON object."""
        return {
            "epoch": self.epoch,
            "value": self.value,
            "prune": self.prune,
            "rung": self.rung,
            "threshold": self.threshold,
            "compared": self.compared,
            "rungs": {str(k): v for k, v in self.rungs.items()},
        }


def point_seed(seed: int, index: int) -> int:
    """The sampler seed of point `index`: the same on every backend and every rerun."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:4], "big")


def startup_trials(run_cap: int) -> int:
    """Points drawn at random before the model-based samplers take over: 10 (Optuna's
    default), but at most a quarter of the budget so that small sweeps learn too."""
    return max(2, min(10, run_cap // 4))


def make_sampler(search: Search, index: int) -> BaseSampler:
    """The sampler that suggests point `index` of a bayes sweep, seeded from the sweep's seed
    and `index`."""
    seed = point_seed(search.seed, index)
    startup = startup_trials(search.run_cap)
    if search.sampler == "gp":
        return GPSampler(seed=seed, n_startup_trials=startup)
    return TPESampler(seed=seed, n_startup_trials=startup, multivariate=True, constant_liar=True)


def draw(search: Search) -> list[dict[str, Any]]:
    """The `run_cap` points of a random sweep: one sequence of Optuna's random sampler (or
    its QMC sampler: low-discrepancy points, the first drawn at random), seeded by the sweep."""
    if search.sampler == "qmc":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler: BaseSampler = QMCSampler(seed=search.seed, scramble=True)
    else:
        sampler = RandomSampler(seed=search.seed)
    study = optuna.create_study(sampler=sampler, storage=optuna.storages.InMemoryStorage())
    dists = distributions(search.space)
    return [dict(study.ask(dists).params) for _ in range(search.run_cap)]


def make_pruner(terminate: EarlyTerminate, epochs: int) -> BasePruner:
    """Optuna's pruner for W&B's `early_terminate` block; `epochs`: a point's epochs."""
    if terminate.type == "median":
        return MedianPruner(n_startup_trials=1, n_warmup_steps=terminate.min_iter - 1)
    if terminate.type == "asha":
        return SuccessiveHalvingPruner(
            min_resource=terminate.min_iter, reduction_factor=terminate.eta
        )
    return HyperbandPruner(
        min_resource=terminate.min_iter,
        max_resource=terminate.max_iter or epochs,
        reduction_factor=terminate.eta,
    )


def objective(search: Search, metrics: Sequence[float]) -> float | None:
    """A done point's value: its best metric over epochs (the trainer keeps that checkpoint)."""
    finite = [m for m in metrics if math.isfinite(m)]
    if not finite:
        return None
    return max(finite) if search.goal == "maximize" else min(finite)


def _trial(search: Search, record: PointRecord, dists: dict[str, BaseDistribution]) -> FrozenTrial:
    params = {k: v for k, v in record.params.items() if k in dists}
    system = {f"{_RUNG}{rung}": value for rung, value in record.rungs.items()}
    steps = {epoch: value for epoch, value in enumerate(record.metrics, start=1)}
    value = objective(search, record.metrics)
    state = {
        Status.DONE: TrialState.COMPLETE,
        Status.PRUNED: TrialState.PRUNED,
        Status.FAILED: TrialState.FAIL,
    }.get(record.status, TrialState.RUNNING)
    if state == TrialState.COMPLETE and value is None:
        state = TrialState.FAIL  # done without a finite metric: nothing to learn from
    return create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params=params,
        distributions={k: dists[k] for k in params},
        intermediate_values=steps,
        system_attrs=system,
    )


def build_study(
    search: Search, records: Sequence[PointRecord], size: int | None = None
) -> optuna.Study:
    """An in-memory study holding one trial per point, numbered by the point's index.

    It holds `size` trials (default: up to the highest index recorded); a missing index
    (no claim yet) becomes a FAIL trial, so that trial numbers stay point indices.
    """
    study = optuna.create_study(
        study_name=search.name,
        direction=search.goal,  # Optuna names the goals as W&B does
        storage=optuna.storages.InMemoryStorage(),
    )
    dists = distributions(search.space)
    by_index = {r.index: r for r in records}
    for index in range(max(by_index, default=-1) + 1 if size is None else size):
        record = by_index.get(index)
        if record is None:
            study.add_trial(create_trial(state=TrialState.FAIL))
        else:
            study.add_trial(_trial(search, record, dists))
    return study


def suggest(search: Search, index: int, records: Sequence[PointRecord]) -> dict[str, Any]:
    """The values the sampler draws for point `index`, given the other points' records.

    Returns Optuna's values (store them in the claim); `Parameter.value_of` turns each into
    the config value.
    """
    study = build_study(search, [r for r in records if r.index < index], size=index)
    study.sampler = make_sampler(search, index)
    return dict(study.ask(distributions(search.space)).params)


def judge(
    search: Search, record: PointRecord, records: Sequence[PointRecord], epochs: int
) -> Decision:
    """Whether `record`'s point stops after its latest epoch, from every point's records.

    `records` are the sweep's points (this one's entry is replaced by `record`); `epochs`
    the point's planned epochs (Hyperband's largest budget unless max_iter is given).
    """
    terminate = search.early_terminate
    assert terminate is not None, "judge needs an early_terminate block"
    epoch = len(record.metrics)
    value = record.metrics[-1]
    mine = PointRecord(record.index, record.params, Status.RUNNING, record.metrics, record.rungs)
    study = build_study(search, [*(r for r in records if r.index != record.index), mine])
    trial = study.trials[record.index]
    pruner = make_pruner(terminate, epochs)
    prune = bool(pruner.prune(study, trial))
    after = study._storage.get_trial(trial._trial_id).system_attrs
    rungs = {int(k.removeprefix(_RUNG)): v for k, v in after.items() if k.startswith(_RUNG)}
    decision = Decision(epoch=epoch, value=value, prune=prune, rungs=rungs)
    if terminate.type == "median":
        return _median_decision(decision, study, trial, terminate)
    judged = sorted(set(rungs) - set(record.rungs))
    if not judged:
        return decision
    rung = judged[-1]
    peers = _rung_peers(study, trial, pruner, rung)
    threshold = _rung_threshold([*peers, rungs[rung]], terminate.eta, search.goal)
    return Decision(epoch, value, prune, rungs, rung, threshold, len(peers))


def _rung_peers(
    study: optuna.Study, trial: FrozenTrial, pruner: BasePruner, rung: int
) -> list[float]:
    """The values other points recorded at `rung` (within this point's Hyperband bracket)."""
    key = f"{_RUNG}{rung}"
    others = [t for t in study.trials if t.number != trial.number and key in t.system_attrs]
    if isinstance(pruner, HyperbandPruner):
        bracket = pruner._get_bracket_id(study, trial)
        others = [t for t in others if pruner._get_bracket_id(study, t) == bracket]
    return [t.system_attrs[key] for t in others]


def _rung_threshold(values: list[float], eta: int, goal: str) -> float:
    """The value a point needs at a rung to be in the top 1/eta (Optuna's own rule)."""
    ranked = sorted(values, reverse=goal == "maximize")
    return ranked[max(len(ranked) // eta - 1, 0)]


def _median_decision(
    decision: Decision, study: optuna.Study, trial: FrozenTrial, terminate: EarlyTerminate
) -> Decision:
    """The median rule's threshold: the median of the other points' values at this epoch."""
    if decision.epoch < terminate.min_iter:
        return decision
    peers = [
        t.intermediate_values[decision.epoch]
        for t in study.trials
        if t.number != trial.number
        and t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        and decision.epoch in t.intermediate_values
    ]
    threshold = statistics.median(peers) if peers else None
    return Decision(
        decision.epoch,
        decision.value,
        decision.prune,
        decision.rungs,
        decision.epoch,
        threshold,
        len(peers),
    )

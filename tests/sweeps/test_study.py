"""The in-memory study rebuilt from point records: what was recorded, suggestions that
replay exactly, parallel points kept apart, and early-stop decisions from Optuna's pruners."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from inat.rundir import Status
from inat.sweeps.search import EarlyTerminate, Search
from inat.sweeps.space import parse_space
from inat.sweeps.study import PointRecord, build_study, judge, suggest

SPACE = parse_space(
    {
        "parameters": {
            "optimizer.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
            "model.dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
            "model.activation": {"values": ["relu", "gelu"]},
        }
    }
)


def _search(**settings) -> Search:
    return Search(name="sweep", space=SPACE, run_cap=16, **settings)


def _score(params: dict) -> list[float]:
    """A made-up learning curve: best near lr=0.01, three epochs."""
    import math

    peak = 1 - abs(math.log10(params["optimizer.lr"]) + 2) / 4
    return [peak * 0.6, peak * 0.8, peak]


def _sweep(search: Search, n: int) -> list[PointRecord]:
    """n points suggested and finished one after another (one worker)."""
    records: list[PointRecord] = []
    for index in range(n):
        params = suggest(search, index, records)
        records.append(PointRecord(index, params, Status.DONE, _score(params)))
    return records


def test_the_rebuilt_study_holds_what_the_points_recorded() -> None:
    records = _sweep(_search(), 3)
    records += [
        PointRecord(3, suggest(_search(), 3, records), Status.PRUNED, [0.1], {0: 0.1}),
        PointRecord(4, suggest(_search(), 4, records), Status.RUNNING, [0.2]),
        PointRecord(5, suggest(_search(), 5, records), None),
        PointRecord(6, suggest(_search(), 6, records), Status.INTERRUPTED, [0.3]),
        PointRecord(7, suggest(_search(), 7, records), Status.FAILED),
    ]
    study = build_study(_search(), records)
    trials = study.trials
    assert [t.number for t in trials] == list(range(8))
    assert [t.state for t in trials] == [
        *[TrialState.COMPLETE] * 3,
        TrialState.PRUNED,
        TrialState.RUNNING,  # running
        TrialState.RUNNING,  # claimed, not started
        TrialState.RUNNING,  # preempted: never a result, never a bad point
        TrialState.FAIL,
    ]
    for record, trial in zip(records, trials, strict=True):
        assert trial.params == dict(record.params)
        assert trial.intermediate_values == dict(enumerate(record.metrics, start=1))
    assert [t.value for t in trials[:3]] == [max(r.metrics) for r in records[:3]]
    assert trials[3].system_attrs == {"completed_rung_0": 0.1}
    assert study.study_name == "sweep"


@pytest.mark.parametrize("sampler", ["tpe", "gp"])
def test_with_one_worker_the_suggestions_replay_exactly(sampler: str) -> None:
    first = _sweep(_search(sampler=sampler), 8)
    again = _sweep(_search(sampler=sampler), 8)
    assert [r.params for r in first] == [r.params for r in again]
    assert len({r.params["optimizer.lr"] for r in first}) == 8  # no point twice


def test_claimed_points_keep_parallel_workers_apart() -> None:
    search = _search()
    records = _sweep(search, 6)
    # Two workers ask for points 6 and 7 before either has a metric: the claim of 6 is in
    # the study as running, so 7 gets other values than 6 (TPE's constant liar).
    six = PointRecord(6, suggest(search, 6, records), None)
    seven = suggest(search, 7, [*records, six])
    assert seven != six.params
    assert suggest(search, 7, [*records, six]) == seven  # a pure function of the records


def test_a_weak_point_is_pruned_at_its_rung_and_the_decision_says_why() -> None:
    search = _search(early_terminate=EarlyTerminate("asha", min_iter=1, eta=3))
    others = [
        PointRecord(i, {}, Status.DONE, [0.9 - 0.1 * i, 0.95], {0: 0.9 - 0.1 * i}) for i in range(5)
    ]
    weak = judge(search, PointRecord(5, {}, Status.RUNNING, [0.3]), others, epochs=9)
    assert weak.prune and weak.rung == 0 and weak.compared == 5
    assert weak.threshold == pytest.approx(0.8)  # top third of 6 values: the 2nd best
    strong = judge(search, PointRecord(5, {}, Status.RUNNING, [0.85]), others, epochs=9)
    assert not strong.prune and strong.rungs == {0: 0.85}
    # Between rungs nothing is judged: epoch 2 is below the next rung (3 epochs).
    between = judge(search, PointRecord(5, {}, Status.RUNNING, [0.85, 0.5], {0: 0.85}), others, 9)
    assert not between.prune and between.rung is None


def test_a_rebuilt_study_prunes_with_the_recorded_rungs_restored() -> None:
    # Without the recorded rungs the successive-halving pruners see no competitor and
    # never prune; with them they compare with every point that reached the rung.
    search = _search(early_terminate=EarlyTerminate("asha", min_iter=1, eta=2))
    without = [PointRecord(i, {}, Status.DONE, [0.9, 0.9]) for i in range(4)]
    assert not judge(search, PointRecord(4, {}, Status.RUNNING, [0.1]), without, 4).prune
    recorded = [PointRecord(i, {}, Status.DONE, [0.9, 0.9], {0: 0.9}) for i in range(4)]
    assert judge(search, PointRecord(4, {}, Status.RUNNING, [0.1]), recorded, 4).prune


def test_hyperband_keeps_a_point_in_one_bracket_across_rebuilds() -> None:
    search = _search(early_terminate=EarlyTerminate("hyperband", min_iter=1, eta=3))
    others = [PointRecord(i, {}, Status.DONE, [0.5 + 0.01 * i] * 9, {0: 0.5}) for i in range(9)]
    decisions = [judge(search, PointRecord(9, {}, Status.RUNNING, [0.2]), others, 9) for _ in "ab"]
    assert decisions[0] == decisions[1] and decisions[0].compared < len(others)


def test_the_median_rule_compares_with_the_other_points_at_the_same_epoch() -> None:
    search = _search(early_terminate=EarlyTerminate("median", min_iter=1))
    others = [PointRecord(i, {}, Status.DONE, [0.5 + 0.1 * i]) for i in range(5)]
    weak = judge(search, PointRecord(5, {}, Status.RUNNING, [0.55]), others, epochs=3)
    assert weak.prune and weak.threshold == pytest.approx(0.7) and weak.compared == 5
    assert not judge(search, PointRecord(5, {}, Status.RUNNING, [0.75]), others, 3).prune

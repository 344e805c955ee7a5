"""Job files expand to points: W&B's grammar for grids and random draws from distributions."""

from __future__ import annotations

import math

import pytest

from inat.errors import ConfigError
from inat.sweeps.jobs import expand


def _job(sweep: dict) -> dict:
    return {"name": "s", "overrides": ["trainer.epochs=2"], "sweep": sweep}


def test_a_grid_in_w_and_b_grammar_equals_the_same_grid_in_params_lists() -> None:
    grammar = _job(
        {
            "method": "grid",
            "parameters": {
                "model": {"parameters": {"dropout": {"values": [0.0, 0.3]}}},
                "optimizer.lr": {"values": [0.1, 0.01]},
            },
        }
    )
    lists = _job(
        {"strategy": "grid", "params": {"model.dropout": [0.0, 0.3], "optimizer.lr": [0.1, 0.01]}}
    )
    assert expand(grammar) == expand(lists)
    assert [p.swept for p in expand(grammar)][:2] == [
        ("model.dropout=0", "optimizer.lr=0.1"),
        ("model.dropout=0", "optimizer.lr=0.01"),
    ]


def test_a_constant_is_an_override_of_every_point_not_a_swept_key() -> None:
    points = expand(
        _job(
            {
                "parameters": {
                    "trainer.epochs": {"value": 5},
                    "model.dropout": {"values": [0.1, 0.2]},
                }
            }
        )
    )
    assert [p.swept for p in points] == [("model.dropout=0.1",), ("model.dropout=0.2",)]
    assert all(p.overrides[:2] == ("trainer.epochs=2", "trainer.epochs=5") for p in points)


def test_random_draws_run_cap_points_from_distributions_the_same_every_time() -> None:
    job = _job(
        {
            "method": "random",
            "run_cap": 12,
            "seed": 3,
            "parameters": {
                "optimizer.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
                "model.dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
                "model.dense_neurons": {
                    "distribution": "q_log_uniform_values",
                    "min": 16,
                    "max": 512,
                    "q": 16,
                },
                "model.activation": {"values": ["relu", "gelu"]},
            },
        }
    )
    points = expand(job)
    assert points == expand(job)
    assert len(points) == 12 and len({p.name for p in points}) == 12
    values = [dict(o.split("=", 1) for o in p.swept) for p in points]
    lrs = [float(v["optimizer.lr"]) for v in values]
    assert all(1e-4 <= lr <= 1.0 for lr in lrs)
    assert max(map(math.log10, lrs)) - min(map(math.log10, lrs)) > 2  # log-uniform spread
    assert all(0.0 <= float(v["model.dropout"]) <= 0.5 for v in values)
    assert all(int(v["model.dense_neurons"]) % 16 == 0 for v in values)
    assert {v["model.activation"] for v in values} == {"relu", "gelu"}
    other_seed = expand({**job, "sweep": {**job["sweep"], "seed": 4}})
    assert [p.swept for p in other_seed] != [p.swept for p in points]


def test_qmc_draws_differ_from_random_and_replay() -> None:
    sweep = {
        "method": "random",
        "run_cap": 9,
        "parameters": {"optimizer.lr": {"distribution": "uniform", "min": 0.0, "max": 1.0}},
    }
    qmc = expand(_job({**sweep, "sampler": "qmc"}))
    assert qmc == expand(_job({**sweep, "sampler": "qmc"}))
    assert [p.swept for p in qmc] != [p.swept for p in expand(_job(sweep))]
    # Low discrepancy: after the first point (Optuna draws it at random), 8 Sobol points put
    # one point in each eighth of [0, 1).
    eighths = {int(8 * float(p.swept[0].split("=")[1])) for p in qmc[1:]}
    assert eighths == set(range(8))


@pytest.mark.parametrize(
    ("sweep", "match"),
    [
        (
            {
                "method": "grid",
                "parameters": {"optimizer.lr": {"distribution": "uniform", "min": 0, "max": 1}},
            },
            r"optimizer\.lr is a distribution: a grid needs lists",
        ),
        (
            {"method": "bayes", "sampler": "qmc", "run_cap": 4, "params": {"a": [1, 2]}},
            r"sampler \(method bayes\)='qmc' is not allowed; use one of tpe, gp",
        ),
        (
            {"method": "bayes", "run_cap": 4, "parallelism": 0, "params": {"a": [1]}},
            "parallelism=0",
        ),
        ({"strategy": "grid", "params": {"a": []}}, "non-empty list"),
        ({"strategy": "random", "params": {"a": [1]}}, r"run_cap=None"),
    ],
)
def test_a_bad_sweep_block_is_refused_naming_the_key(sweep: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        expand(_job(sweep))

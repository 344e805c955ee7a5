"""The sweep grammar: W&B's parameters and sweep keys, as Optuna distributions and settings."""

from __future__ import annotations

import math

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from inat.errors import ConfigError, ExitCode
from inat.sweeps.search import parse_search
from inat.sweeps.space import parse_space


def _one(block: dict):
    return parse_space({"parameters": {"k": block}})["k"]


@pytest.mark.parametrize(
    ("block", "distribution"),
    [
        ({"values": [1, 2, 3]}, CategoricalDistribution((1, 2, 3))),
        (
            {"distribution": "categorical", "values": ["a", "b"]},
            CategoricalDistribution(("a", "b")),
        ),
        ({"distribution": "uniform", "min": 0.0, "max": 0.5}, FloatDistribution(0.0, 0.5)),
        (
            {"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1},
            FloatDistribution(1e-4, 0.1, log=True),
        ),
        (
            {"distribution": "log_uniform", "min": -2, "max": 0},
            FloatDistribution(math.exp(-2), 1.0, log=True),
        ),
        ({"distribution": "int_uniform", "min": 16, "max": 256}, IntDistribution(16, 256)),
        (
            {"distribution": "q_uniform", "min": 0.0, "max": 0.5, "q": 0.1},
            FloatDistribution(0.0, 0.5, step=0.1),
        ),
        (
            {"distribution": "q_log_uniform_values", "min": 8, "max": 512, "q": 8},
            FloatDistribution(8, 512, log=True),
        ),
    ],
)
def test_every_distribution_of_the_grammar_becomes_optunas(block, distribution) -> None:
    assert _one(block).distribution == distribution


def test_a_constant_and_lists_keep_the_values_as_written() -> None:
    constant = _one({"value": 10})
    assert constant.distribution is None and constant.choices() == (10,)
    filters = _one({"values": [[32, 64], [16, 32]]})
    assert filters.distribution.choices == ("[32,64]", "[16,32]")  # Optuna holds scalars only
    assert filters.value_of("[16,32]") == [16, 32]
    assert filters.choices() == ([32, 64], [16, 32])


def test_q_log_uniform_rounds_the_drawn_value_to_q() -> None:
    parameter = _one({"distribution": "q_log_uniform_values", "min": 8, "max": 512, "q": 8})
    assert parameter.value_of(37.3) == 40
    assert isinstance(parameter.value_of(37.3), int)


def test_nested_parameters_and_params_lists_give_dotted_keys_in_order() -> None:
    space = parse_space(
        {
            "parameters": {
                "optimizer": {"parameters": {"lr": {"values": [0.1, 0.01]}}},
                "model.dropout": {"value": 0.3},
            }
        }
    )
    assert list(space) == ["model.dropout", "optimizer.lr"]
    legacy = parse_space({"params": {"b": [1, 2], "a": ["x"]}})
    assert list(legacy) == ["a", "b"] and legacy["b"].choices() == (1, 2)


@pytest.mark.parametrize(
    ("block", "match"),
    [
        ({"distribution": "normal", "mu": 0, "sigma": 1}, "distribution='normal' is not supported"),
        ({"distribution": "uniform", "min": 1, "max": 0}, "min=1 must be below max=0"),
        ({"distribution": "uniform", "min": 0, "max": "x"}, r"k\.max='x': give a finite number"),
        ({"distribution": "uniform", "min": 0, "max": float("inf")}, "finite number"),
        ({"distribution": "log_uniform_values", "min": 0, "max": 1}, "needs min > 0"),
        ({"distribution": "int_uniform", "min": 0.5, "max": 4}, "whole numbers"),
        ({"distribution": "q_uniform", "min": 0, "max": 1, "q": 0}, r"q=0 must be above 0"),
        ({"distribution": "uniform", "min": 0, "max": 1, "q": 0.1}, "q is only read by"),
        (
            {"distribution": "uniform", "min": 0, "max": 1, "mean": 2},
            r"unknown key\(s\) \['mean'\]",
        ),
        ({"values": []}, "non-empty list"),
        ({"values": [1, 1]}, "lists a value twice"),
        ({"value": 1, "values": [2]}, "stands alone"),
        ([0.1, 0.2], "write {values: \\[...\\]}"),
    ],
)
def test_bad_parameters_are_refused_naming_the_key_with_exit_65(block, match) -> None:
    with pytest.raises(ConfigError, match=match) as refused:
        _one(block)
    assert "job.sweep.parameters.k" in str(refused.value)
    assert refused.value.exit_code == ExitCode.BAD_INPUT


def test_the_metric_block_means_what_it_means_in_w_and_b() -> None:
    sweep = {"method": "random", "run_cap": 2, "params": {"a": [1]}}
    minimized = parse_search("s", {**sweep, "metric": {"name": "val_loss"}})
    assert (minimized.metric, minimized.goal) == ("val_loss", "minimize")  # W&B's default goal
    unnamed = parse_search("s", sweep)
    assert (unnamed.metric, unnamed.goal) == ("val_accuracy", "maximize")


def test_min_and_max_without_a_distribution_are_inferred_as_w_and_b_does() -> None:
    whole = _one({"min": 1, "max": 5})
    assert whole.distribution == IntDistribution(1, 5)
    real = _one({"min": 0, "max": 0.5})
    assert real.distribution == FloatDistribution(0.0, 0.5)


def test_parse_search_reads_w_and_b_keys_and_todays_aliases() -> None:
    search = parse_search(
        "s",
        {
            "method": "bayes",
            "metric": {"name": "val_loss", "goal": "minimize"},
            "run_cap": 24,
            "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 3},
            "parallelism": 8,
            "parameters": {"optimizer.lr": {"distribution": "uniform", "min": 0.1, "max": 1}},
        },
    )
    assert (search.method, search.sampler, search.metric, search.goal) == (
        "bayes",
        "tpe",
        "val_loss",
        "minimize",
    )
    assert (search.run_cap, search.parallelism, search.workers_per_gpu) == (24, 8, 1)
    assert search.early_terminate.type == "hyperband" and search.early_terminate.min_iter == 2
    legacy = parse_search("s", {"strategy": "random", "num_points": 5, "params": {"a": [1, 2]}})
    assert (legacy.method, legacy.sampler, legacy.run_cap) == ("random", "random", 5)
    grid = parse_search("s", {"params": {"a": [1, 2]}})
    assert (grid.method, grid.sampler) == ("grid", "")


@pytest.mark.parametrize(
    ("sweep", "match"),
    [
        ({"method": "hyper"}, "method='hyper' is not allowed; use one of grid, random, bayes"),
        (
            {
                "method": "grid",
                "parameters": {"lr": {"distribution": "uniform", "min": 0, "max": 1}},
            },
            r"parameters\.lr is a distribution: a grid needs lists",
        ),
        ({"method": "bayes", "params": {"a": [1]}}, r"run_cap=None: use a whole number >= 1"),
        (
            {"method": "bayes", "sampler": "cmaes", "run_cap": 2, "params": {"a": [1]}},
            "sampler .method bayes.='cmaes' is not allowed; use one of tpe, gp",
        ),
        (
            {"method": "random", "run_cap": 2, "num_points": 3, "params": {"a": [1]}},
            "run_cap or num_points, not both",
        ),
        (
            {
                "method": "bayes",
                "run_cap": 2,
                "params": {"a": [1]},
                "metric": {"name": "val_accuracy", "goal": "up"},
            },
            "goal='up' is not allowed",
        ),
        (
            {"method": "bayes", "run_cap": 2, "params": {"a": [1]}, "metric": {"name": "val_acc"}},
            r"metric.name='val_acc' is not a metric inat records: did you mean val_accuracy\? "
            "use one of epoch, step, train_loss",
        ),
        (
            {
                "method": "bayes",
                "run_cap": 2,
                "params": {"a": [1]},
                "early_terminate": {"type": "bohb"},
            },
            "type='bohb' is not allowed",
        ),
        (
            {
                "method": "bayes",
                "run_cap": 2,
                "params": {"a": [1]},
                "early_terminate": {"type": "asha", "eta": 1},
            },
            r"eta=1: use a whole number >= 2",
        ),
        (
            {
                "method": "bayes",
                "run_cap": 2,
                "params": {"a": [1]},
                "early_terminate": {"type": "asha", "s": 2},
            },
            r"unknown key\(s\) \['s'\]",
        ),
        (
            {"method": "bayes", "run_cap": 2, "params": {"a": [1]}, "parallelism": 0},
            "parallelism=0",
        ),
        (
            {"method": "bayes", "run_cap": 2, "params": {"a": [1]}, "budget": 3},
            r"unknown key\(s\) \['budget'\]",
        ),
    ],
)
def test_bad_sweep_blocks_are_refused_naming_the_key(sweep, match) -> None:
    with pytest.raises(ConfigError, match=match) as refused:
        parse_search("s", sweep)
    assert refused.value.exit_code == ExitCode.BAD_INPUT

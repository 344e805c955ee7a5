"""The search space of a sweep, in W&B's sweep grammar, as Optuna distributions.

A job file's `job.sweep.parameters` is written as in a W&B sweep config, so a notebook's
sweep block carries over by copying it:

    parameters:
      optimizer.lr: {distribution: log_uniform_values, min: 1.0e-4, max: 0.1}
      model.dropout: {distribution: uniform, min: 0.0, max: 0.5}
      model.activation: {values: [relu, gelu, silu]}
      trainer.epochs: {value: 10}
      model:                           # nested, as W&B allows: model.kernel_size
        parameters:
          kernel_size: {values: [3, 5]}

Today's `params:` lists (`optimizer.lr: [0.01, 0.001]`) are categorical values. Keys are
Hydra keys of the train config. Values that Optuna cannot hold as a categorical choice (a
list such as `model.filters`) are held as their override text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from inat.errors import ConfigError

DISTRIBUTIONS = (
    "categorical",
    "uniform",
    "log_uniform_values",
    "log_uniform",
    "int_uniform",
    "q_uniform",
    "q_log_uniform_values",
)
_RANGE_KEYS = {"distribution", "min", "max", "q"}
_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Parameter:
    """One swept key: an Optuna distribution, or a constant (`value:`)."""

    key: str
    distribution: BaseDistribution | None = None  # None: the constant `value`
    value: Any = None
    q: float | None = None  # q_log_uniform_values: the drawn value is rounded to a multiple
    values: tuple[Any, ...] = ()  # categorical: the values as written, one per choice

    @property
    def finite(self) -> bool:
        """Whether the key takes one of a list of values (a grid can enumerate it)."""
        return self.distribution is None or isinstance(self.distribution, CategoricalDistribution)

    def choices(self) -> tuple[Any, ...]:
        """The values of a finite parameter, in the order written."""
        if self.distribution is None:
            return (self.value,)
        if not isinstance(self.distribution, CategoricalDistribution):
            raise ConfigError(f"job.sweep.parameters.{self.key} has no list of values")
        return self.values

    def value_of(self, drawn: Any) -> Any:
        """The config value of what Optuna drew: the value as written for a categorical
        choice, rounded to `q` where the grammar says so."""
        if isinstance(self.distribution, CategoricalDistribution):
            return self.values[self.distribution.choices.index(drawn)]
        if self.q is None:
            return drawn
        rounded = round(drawn / self.q) * self.q
        return int(rounded) if float(self.q).is_integer() else rounded

    def drawn(self, value: Any) -> Any:
        """What Optuna drew for the config value `value`: `value_of`'s inverse (a rounded
        value stands for itself)."""
        if isinstance(self.distribution, CategoricalDistribution):
            return self.distribution.choices[self.values.index(value)]
        return value


def _number(where: str, block: Mapping[str, Any], name: str) -> float:
    value = block.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}.{name}={value!r}: give a finite number")
    return value


def _choice(value: Any) -> Any:
    """A categorical choice Optuna can hold: scalars as they are, others as override text."""
    if isinstance(value, _SCALARS):
        return value
    from inat.sweeps.jobs import override_value

    return override_value(value)


def _values(where: str, values: Any) -> Parameter:
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise ConfigError(f"{where}.values must be a non-empty list, got {values!r}")
    choices = tuple(_choice(v) for v in values)
    if len(set(map(repr, choices))) != len(choices):
        raise ConfigError(f"{where}.values lists a value twice: {list(values)!r}")
    key = where.removeprefix("job.sweep.parameters.")
    return Parameter(key, CategoricalDistribution(choices), values=tuple(values))


def _range(where: str, kind: str, block: Mapping[str, Any]) -> Parameter:
    """A `distribution:` block (with min/max and for q_* q) as a Parameter."""
    key = where.removeprefix("job.sweep.parameters.")
    unknown = sorted(set(block) - _RANGE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_RANGE_KEYS)}")
    low, high = _number(where, block, "min"), _number(where, block, "max")
    if not low < high:
        raise ConfigError(f"{where}: min={low!r} must be below max={high!r}")
    q = _number(where, block, "q") if kind.startswith("q_") else None
    if q is not None and q <= 0:
        raise ConfigError(f"{where}.q={q!r} must be above 0")
    if "q" in block and q is None:
        raise ConfigError(f"{where}.q is only read by q_uniform and q_log_uniform_values")
    if kind == "int_uniform":
        if not all(isinstance(v, int) for v in (low, high)):
            raise ConfigError(f"{where}: int_uniform takes whole numbers, got {low!r}..{high!r}")
        return Parameter(key, IntDistribution(int(low), int(high)))
    if kind == "uniform":
        return Parameter(key, FloatDistribution(low, high))
    if kind == "q_uniform":
        # Optuna's step is the grammar's q (its grid starts at min, as W&B's rounds from 0).
        return Parameter(key, FloatDistribution(low, high, step=q))
    if kind == "log_uniform":  # W&B: min and max are natural-log exponents
        return Parameter(key, FloatDistribution(math.exp(low), math.exp(high), log=True))
    if low <= 0:
        raise ConfigError(f"{where}: {kind} needs min > 0, got {low!r}")
    return Parameter(key, FloatDistribution(low, high, log=True), q=q)


def _inferred(block: Mapping[str, Any]) -> str | None:
    """The distribution W&B infers where none is given: categorical for values; for min and
    max int_uniform if both are whole numbers, else uniform."""
    if "values" in block:
        return "categorical"
    if "min" in block and "max" in block:
        whole = all(
            isinstance(block[k], int) and not isinstance(block[k], bool) for k in ("min", "max")
        )
        return "int_uniform" if whole else "uniform"
    return None


def _parameter(where: str, block: Any) -> Parameter:
    key = where.removeprefix("job.sweep.parameters.")
    if not isinstance(block, Mapping):
        raise ConfigError(
            f"{where}={block!r}: write {{values: [...]}}, {{value: x}} or "
            "{distribution: ..., min: ..., max: ...}"
        )
    if "value" in block:
        if len(block) != 1:
            raise ConfigError(f"{where}: `value` stands alone (a constant), got {sorted(block)}")
        return Parameter(key, None, block["value"])
    kind = block.get("distribution", _inferred(block))
    if kind == "categorical":
        extra = sorted(set(block) - {"values", "distribution"})
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {extra} beside values")
        return _values(where, block.get("values"))
    if kind not in DISTRIBUTIONS:
        raise ConfigError(
            f"{where}.distribution={kind!r} is not supported; use one of "
            f"{', '.join(DISTRIBUTIONS)} (or values: [...] / value: x)"
        )
    return _range(where, kind, block)


def _flatten(block: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """W&B's nested `parameters` blocks as dotted keys."""
    flat: dict[str, Any] = {}
    for name, spec in block.items():
        key = f"{prefix}{name}"
        if isinstance(spec, Mapping) and "parameters" in spec:
            if len(spec) != 1 or not isinstance(spec["parameters"], Mapping):
                raise ConfigError(
                    f"job.sweep.parameters.{key}: a nested block holds only parameters"
                )
            flat.update(_flatten(spec["parameters"], f"{key}."))
        else:
            flat[key] = spec
    return flat


def parse_space(sweep: Mapping[str, Any]) -> dict[str, Parameter]:
    """The swept keys of a `job.sweep` block, sorted by key (the Helm chart keeps no order).

    Reads `parameters` (W&B's grammar) or `params` (lists of values); raises ConfigError
    naming the key and what is allowed.
    """
    if "parameters" in sweep and "params" in sweep:
        raise ConfigError("job.sweep: give parameters (W&B's grammar) or params, not both")
    if "params" in sweep:
        params = sweep["params"]
        if not isinstance(params, Mapping) or not params:
            raise ConfigError("job.sweep.params must map each swept key to a list of values")
        blocks = {key: {"values": values} for key, values in params.items()}
    else:
        blocks = sweep.get("parameters")
        if not isinstance(blocks, Mapping) or not blocks:
            raise ConfigError(
                "job.sweep needs parameters: each swept key with {values: [...]}, {value: x} "
                "or {distribution: ..., min: ..., max: ...}"
            )
        blocks = _flatten(blocks)
    return {key: _parameter(f"job.sweep.parameters.{key}", blocks[key]) for key in sorted(blocks)}


def distributions(space: Mapping[str, Parameter]) -> dict[str, BaseDistribution]:
    """The Optuna distributions of the swept (not constant) keys."""
    return {k: p.distribution for k, p in space.items() if p.distribution is not None}

"""The search space and settings of an optimisation, read from TOML.

.. code-block:: toml

    strategy = "sma"            # which strategy of the deployment (default: the only one)

    [params]
    fast = { type = "int", low = 5, high = 50, step = 5 }
    slow = { type = "int", low = 20, high = 200, step = 10 }
    fraction = { type = "float", low = 0.05, high = 1.0, log = true }
    long_short = { choices = [true, false] }
    quantity = 10               # a plain value is fixed, not searched

    [optimize]
    sampler = "tpe"             # grid | random | tpe | cmaes | nsga2
    trials = 200                # ignored by grid (it runs every combination)
    seed = 42
    batch = 8                   # trials proposed together, then evaluated in parallel
    objectives = ["sharpe"]     # or ["total_return", "max_drawdown"]: a Pareto front
    constraints = ["num_trades >= 10", "max_drawdown >= -0.3"]
    partitions = 16             # CSCV blocks for the probability of backtest overfitting

Every field is validated with pydantic; a mistake gives one :class:`~tradeloom.errors.ConfigError`
naming the field (``params.fast.step``) and what to write instead.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tradeloom.errors import ConfigError

__all__ = [
    "BUILTIN_OBJECTIVES",
    "Categorical",
    "Constraint",
    "FloatRange",
    "IntRange",
    "OptimizeSettings",
    "SearchSpace",
    "WalkForwardSettings",
    "load_space",
]

BUILTIN_OBJECTIVES = (
    "sharpe",
    "sortino",
    "calmar",
    "total_return",
    "cagr",
    "max_drawdown",
    "final_equity",
    "num_trades",
)
"""Metrics every trial has. All are maximised by default; ``max_drawdown`` is a fraction
<= 0, so maximising it asks for the shallowest drawdown."""

SAMPLERS = ("grid", "random", "tpe", "cmaes", "nsga2")

SPAN = re.compile(r"^\s*(\d+)\s*([dwmy])\s*$", re.IGNORECASE)
"""A calendar span: days, weeks, months or years."""
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w.:]*)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IntRange(_Model):
    """Whole numbers from ``low`` to ``high`` inclusive, every ``step`` (or log-uniform)."""

    type: Literal["int"]
    low: int
    high: int
    step: int = 1
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> IntRange:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        if self.step < 1:
            raise ValueError(f"step must be >= 1, got {self.step}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("log = true needs low >= 1 and step = 1")
        return self

    def grid(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5)))
            return min(max(round(value), self.low), self.high)
        return int(self.low + self.step * rng.integers(0, (self.high - self.low) // self.step + 1))


class FloatRange(_Model):
    """Real numbers from ``low`` to ``high``: continuous, every ``step``, or log-uniform."""

    type: Literal["float"]
    low: float
    high: float
    step: float | None = None
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> FloatRange:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite numbers")
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        if self.step is not None and not self.step > 0:
            raise ValueError(f"step must be > 0, got {self.step}")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("log = true needs low > 0 and no step")
        return self

    def grid(self) -> list[float]:
        if self.step is None:
            raise ValueError(
                "a continuous float range has no grid; give it a step (e.g. step = 0.1) or use "
                "another sampler"
            )
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        return [round(self.low + i * self.step, 12) for i in range(count)]

    def sample(self, rng: np.random.Generator) -> float:
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        if self.step is not None:
            return self.grid()[int(rng.integers(0, len(self.grid())))]
        return float(rng.uniform(self.low, self.high))


class Categorical(_Model):
    """One of ``choices`` (numbers, strings or booleans)."""

    choices: list[bool | int | float | str] = Field(min_length=1)
    type: Literal["categorical"] = "categorical"

    def grid(self) -> list[Any]:
        return list(self.choices)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.choices[int(rng.integers(0, len(self.choices)))]


Dimension = Annotated[IntRange | FloatRange | Categorical, Field(union_mode="left_to_right")]


class Constraint(_Model):
    """``metric op bound``, e.g. ``num_trades >= 10``: a trial that breaks it is infeasible
    (kept in the table, never chosen as best)."""

    metric: str
    op: Literal[">=", "<=", ">", "<"]
    bound: float

    @classmethod
    def parse(cls, text: str) -> Constraint:
        match = _CONSTRAINT.match(text)
        if not match:
            raise ValueError(
                f"cannot read constraint {text!r}; write 'metric >= number', e.g. "
                "'num_trades >= 10' (operators: >=, <=, >, <)"
            )
        try:
            bound = float(match.group(3))
        except ValueError:
            raise ValueError(f"constraint {text!r}: {match.group(3)!r} is not a number") from None
        return cls(metric=match.group(1), op=match.group(2), bound=bound)  # type: ignore[arg-type]

    def violation(self, value: float | None) -> float:
        """How far ``value`` is from meeting the constraint: <= 0 when met (optuna's
        convention); ``inf`` for a missing value."""
        if value is None or not math.isfinite(value):
            return math.inf
        if self.op in (">=", ">"):
            gap = self.bound - value
            return gap if self.op == ">=" else (gap if gap > 0 else (1e-12 if gap == 0 else gap))
        gap = value - self.bound
        return gap if self.op == "<=" else (gap if gap > 0 else (1e-12 if gap == 0 else gap))

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


class OptimizeSettings(_Model):
    """The ``[optimize]`` table."""

    sampler: Literal["grid", "random", "tpe", "cmaes", "nsga2"] = "tpe"
    trials: int = Field(default=100, ge=1)
    seed: int = Field(default=0, ge=0)
    batch: int = Field(default=8, ge=1)
    """Trials proposed together and evaluated in parallel. The trials depend on it (not on
    the executor or the number of workers), so keep it when comparing executors."""
    objectives: list[str] = Field(default_factory=lambda: ["sharpe"], min_length=1)
    directions: list[Literal["maximize", "minimize"]] | None = None
    """One per objective; default: maximise every one."""
    constraints: list[Constraint] = Field(default_factory=list)
    partitions: int = Field(default=16, ge=2)
    """``S`` of the CSCV behind the probability of backtest overfitting (even)."""
    population: int | None = Field(default=None, ge=2)
    """NSGA-II's population (default: max(batch, 20))."""

    @field_validator("constraints", mode="before")
    @classmethod
    def _parse_constraints(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [Constraint.parse(v) if isinstance(v, str) else v for v in value]
        return value

    @field_validator("objectives", mode="before")
    @classmethod
    def _one_objective(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("partitions")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even (CSCV splits the blocks in halves), got {value}")
        return value

    @model_validator(mode="after")
    def _check(self) -> OptimizeSettings:
        for name in self.objectives:
            if name not in BUILTIN_OBJECTIVES and ":" not in name:
                raise ValueError(
                    f"objectives: unknown metric {name!r}; use one of "
                    f"{', '.join(BUILTIN_OBJECTIVES)} or a custom 'package.module:function'"
                )
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError("objectives: each metric may appear once")
        if self.directions is not None and len(self.directions) != len(self.objectives):
            raise ValueError(
                f"directions: give one per objective ({len(self.objectives)}), "
                f"got {len(self.directions)}"
            )
        if len(self.objectives) > 1 and self.sampler == "cmaes":
            raise ValueError(
                "sampler: cmaes optimises one objective; use nsga2, tpe, random or grid for "
                f"{len(self.objectives)} objectives"
            )
        return self

    @property
    def resolved_directions(self) -> list[str]:
        return list(self.directions or ["maximize"] * len(self.objectives))


class WalkForwardSettings(_Model):
    """The ``[walkforward]`` table of a space file (or the command's options)."""

    train: int | str
    """Training window: bars, or a span such as ``"3y"``."""
    test: int | str
    """Test window that follows each training window."""
    step: int | str | None = None
    """How far each fold moves (default: ``test``, so test windows tile the data)."""
    anchored: bool = False
    """Every training window starts at the first bar (it grows) instead of sliding."""
    min_test_bars: int = Field(default=2, ge=1)
    """A last, shorter test window is kept when it has at least this many bars."""

    @field_validator("train", "test", "step")
    @classmethod
    def _length(cls, value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, bool):
            raise ValueError("a length is a number of bars or a span like '3y'")
        if isinstance(value, int):
            if value < 1:
                raise ValueError(f"a number of bars must be >= 1, got {value}")
            return value
        if not SPAN.match(str(value)):
            raise ValueError(
                f"cannot read {value!r}; write a number of bars (252) or a span: "
                "'90d', '12w', '6m', '3y'"
            )
        if int(SPAN.match(str(value)).group(1)) < 1:  # type: ignore[union-attr]
            raise ValueError(f"a span must be at least 1, got {value!r}")
        return str(value).strip().lower()


class SearchSpace(_Model):
    """A whole space file."""

    strategy: str | None = None
    params: dict[str, Dimension | bool | int | float | str] = Field(min_length=1)
    optimize: OptimizeSettings = Field(default_factory=OptimizeSettings)
    walkforward: WalkForwardSettings | None = None
    """Windows of ``tradeloom walkforward`` (its options override them)."""

    @field_validator("params", mode="before")
    @classmethod
    def _dimensions(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        out = {}
        for name, spec in value.items():
            if isinstance(spec, Mapping) and "choices" not in spec and "type" not in spec:
                raise ValueError(
                    f'{name}: say what to search: {{ type = "int", low = 1, high = 10 }}, '
                    f'{{ type = "float", low = 0.1, high = 1.0 }} or {{ choices = [...] }}'
                )
            out[name] = spec
        return out

    @model_validator(mode="after")
    def _searched(self) -> SearchSpace:
        if not self.dimensions:
            raise ValueError("params: nothing to search; give at least one range or choices")
        if self.optimize.sampler == "grid":
            for name, dim in self.dimensions.items():
                try:
                    dim.grid()
                except ValueError as exc:
                    raise ValueError(f"params.{name}: {exc}") from None
        return self

    @property
    def dimensions(self) -> dict[str, IntRange | FloatRange | Categorical]:
        """The searched params, in file order."""
        return {
            k: v
            for k, v in self.params.items()
            if isinstance(v, IntRange | FloatRange | Categorical)
        }

    @property
    def fixed(self) -> dict[str, Any]:
        """Params given a plain value."""
        return {
            k: v
            for k, v in self.params.items()
            if not isinstance(v, IntRange | FloatRange | Categorical)
        }

    def grid_size(self) -> int:
        return math.prod(len(d.grid()) for d in self.dimensions.values())

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every combination, the last param varying fastest."""
        names = list(self.dimensions)
        for values in itertools.product(*(d.grid() for d in self.dimensions.values())):
            yield dict(zip(names, values, strict=True))

    def sample(self, seed: int, number: int) -> dict[str, Any]:
        """Trial ``number``'s random draw: a function of ``(seed, number)`` alone, so that a
        resumed or parallel random search proposes the same trials."""
        rng = np.random.default_rng([seed, number])
        return {name: dim.sample(rng) for name, dim in self.dimensions.items()}

    def digest(self) -> str:
        """SHA-256 of the space's canonical JSON: a study can only resume with the same."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def load_space(path: str | Path, overrides: Mapping[str, Any] | None = None) -> SearchSpace:
    """Read and validate a space file; ``overrides`` replace ``[optimize]`` fields (the CLI's
    ``--sampler``, ``--trials``...)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"search space file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_space(raw, overrides, origin=str(path))


def parse_space(
    raw: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, origin: str = "space"
) -> SearchSpace:
    """Validate a space given as a dict (see :func:`load_space`)."""
    raw = dict(raw)
    if isinstance(raw.get("params"), Mapping):
        raw["params"] = {
            name: _dimension(name, spec, origin) for name, spec in raw["params"].items()
        }
    if overrides:
        optimize = dict(raw.get("optimize") or {})
        optimize.update({k: v for k, v in overrides.items() if v is not None})
        raw["optimize"] = optimize
    try:
        return SearchSpace.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(p) for p in error["loc"] if not _is_union_tag(p))
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field; check the spelling (see docs/optimize.md)"
        elif error["type"] == "missing":
            message = "required field is missing"
        named = re.match(r"^([a-z_][\w.]*): (.+)$", message, re.DOTALL)
        if named and error["type"] == "value_error":  # a validator named the field itself
            loc = f"{loc}.{named.group(1)}" if loc else named.group(1)
            message = named.group(2)
        raise ConfigError(f"{message} (in {origin})", path=loc or None) from None


_KINDS: dict[str, type[_Model]] = {
    "int": IntRange,
    "float": FloatRange,
    "categorical": Categorical,
}


def _dimension(name: str, spec: Any, origin: str) -> Any:
    """A searched param's table as its model (errors name ``params.NAME.FIELD``)."""
    if not isinstance(spec, Mapping):
        return spec  # a fixed value
    kind = spec.get("type", "categorical" if "choices" in spec else None)
    if kind not in _KINDS:
        shown = "missing" if kind is None else repr(kind)
        raise ConfigError(
            f"type is {shown}; say what to search: "
            f'{{ type = "int", low = 1, high = 10 }}, {{ type = "float", low = 0.1, high = 1.0 }}'
            f" or {{ choices = [...] }} (in {origin})",
            path=f"params.{name}.type",
        )
    try:
        return _KINDS[kind].model_validate(dict(spec))
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(p) for p in ("params", name, *error["loc"]))
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown field; {kind} ranges take {', '.join(_KINDS[kind].model_fields)}"
        raise ConfigError(f"{message} (in {origin})", path=loc) from None


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and (
        part in ("IntRange", "FloatRange", "Categorical", "bool", "int", "float", "str")
        or part.startswith("function-")
    )

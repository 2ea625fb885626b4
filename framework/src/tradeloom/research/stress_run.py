"""Stress tests of a deployment: its backtest, then Monte Carlo and injected scenarios.

:func:`run_stress` runs the deployment's backtest once (the *baseline*) and then each scenario,
built on the numerical functions of :mod:`tradeloom.research.stress`:

``resample``
    Monte Carlo of the baseline's closed trades (their net P&L, reordered or drawn with
    replacement, :func:`~tradeloom.research.stress.trade_resampling`): distributions of the max
    drawdown and of the final return, and the probability of losing more than ``loss_pct``.
``bootstrap``
    Block bootstrap (stationary or moving) of the baseline's per-bar returns
    (:func:`~tradeloom.research.stress.block_bootstrap`): distributions of the total return,
    the Sharpe ratio and the max drawdown, and percentile bands of the equity paths.
``gap``, ``volatility``, ``liquidity``
    The data source's bars are changed (:func:`~tradeloom.research.stress.gap`,
    :func:`~tradeloom.research.stress.volatility`, :func:`~tradeloom.research.stress.liquidity`)
    and the *same* deployment runs again on them through the event engine; the result is
    compared with a reference run. A liquidity drought only limits fills through a
    volume-participation fill model (docs/fills.md): when the deployment has none, the scenario
    adds one (``max_participation``, default :data:`DEFAULT_PARTICIPATION`) and its reference
    is the deployment with that model on the unchanged bars, so the comparison isolates the
    drought.

Scenarios have names. The built-in ones (:func:`builtin_scenarios`) are named after their type
and have defaults; a TOML file (:func:`load_scenarios`) defines more, validated with pydantic::

    [scenarios.crash]
    type = "gap"
    at = 2008-10-10
    pct = -10

Every random draw comes from ``numpy.random.default_rng([seed, crc32(name)])``: the same seed
gives the same numbers, and a scenario's numbers do not depend on which other scenarios ran.
Drawdowns are positive fractions of the running peak (0.2 = 20 %) throughout.

See ``docs/stress.md`` for the command, the file format and how to read the results.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from tradeloom.api import build_named, run_backtest
from tradeloom.components import Mode
from tradeloom.config import UtcTimestamp, _read_toml
from tradeloom.data import MarketData
from tradeloom.engine.inputs import load_market
from tradeloom.errors import ConfigError
from tradeloom.execution import SimulatedBroker
from tradeloom.execution.fills import FillModel, VolumeParticipation
from tradeloom.research.stress import (
    CHUNK_PATHS,
    PERCENTILES,
    BootstrapStats,
    ResamplingResult,
    StressInputError,
    block_bootstrap,
    bootstrap_stats,
    gap,
    liquidity,
    trade_resampling,
    volatility,
)

if TYPE_CHECKING:
    from tradeloom.config import ResolvedDeployment
    from tradeloom.engine.result import BacktestResult

__all__ = [
    "DEFAULT_PARTICIPATION",
    "DEFAULT_SCENARIOS",
    "MONTE_CARLO",
    "SCENARIO_TYPES",
    "SUMMARY_METRICS",
    "BootstrapOutcome",
    "BootstrapSpec",
    "GapSpec",
    "InjectedOutcome",
    "LiquiditySpec",
    "ResampleOutcome",
    "ResampleSpec",
    "ScenarioOutcome",
    "ScenarioSpec",
    "SkippedOutcome",
    "StressReport",
    "VolatilitySpec",
    "builtin_scenarios",
    "format_metric",
    "load_scenarios",
    "run_stress",
    "select_scenarios",
    "write_stress_outputs",
]

SCENARIO_TYPES: tuple[str, ...] = ("resample", "bootstrap", "gap", "volatility", "liquidity")
"""The scenario types; each is also the name of a built-in scenario with default parameters."""
MONTE_CARLO: tuple[str, ...] = ("resample", "bootstrap")
"""The scenario types that simulate paths (the others run the deployment on changed bars)."""
DEFAULT_SCENARIOS: tuple[str, ...] = ("resample", "bootstrap")
"""What runs when no scenario is asked for (and no scenario file is given)."""
DEFAULT_RESAMPLE_PATHS = 10_000
DEFAULT_BOOTSTRAP_PATHS = 1_000
DEFAULT_PARTICIPATION = 0.1
"""The share of each bar's volume a liquidity scenario lets orders fill when the deployment
has no volume-participation fill model of its own."""
DEFAULT_WINDOW = (0.4, 0.6)
"""A volatility or liquidity window without dates covers the bars from 40 % to 60 % of the
run's timeline; a gap without ``at`` falls on the bar at 50 %."""
FAN_POINTS = 250
"""Times at which the bootstrapped equity paths are kept for the percentile bands."""
BOOTSTRAP_CHUNK_VALUES = 2_000_000
"""Bootstrapped returns held at once (paths per chunk × bars), bounding memory."""
JSON_SIGNIFICANT_DIGITS = 12
"""Floats in ``stress.json`` are rounded to this many significant digits (stable bytes)."""
SUMMARY_METRICS: tuple[tuple[str, str], ...] = (
    ("total_return", "Total return"),
    ("cagr", "CAGR"),
    ("annual_volatility", "Annual volatility"),
    ("sharpe", "Sharpe ratio"),
    ("max_drawdown", "Max drawdown"),
    ("final_equity", "Final equity"),
    ("num_trades", "Trades"),
    ("num_fills", "Fills"),
)
"""The metrics compared for an injected scenario (``max_drawdown`` as a positive fraction)."""

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")

Progress = Callable[[str, int, int], None]
"""``progress(task, done, total)``: ``task`` is ``"baseline"`` or a scenario name; ``done`` and
``total`` count bars for backtests and paths for Monte Carlo scenarios."""


# --- scenario specifications -----------------------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def _paths_field() -> Any:
    return Field(default=None, ge=1)


class ResampleSpec(_Spec):
    """Monte Carlo of the baseline's closed trades."""

    type: Literal["resample"] = "resample"
    paths: int | None = _paths_field()
    """Simulated paths (default: `--paths`, else 10,000)."""
    replace: bool = True
    """Draw the trades with replacement (an i.i.d. bootstrap: the final return varies too);
    `false` reorders them (a permutation: only the path, hence the drawdown, changes)."""
    loss_pct: float = 10.0
    """The loss, in percent of the initial cash, whose probability is reported: 10 = the share
    of paths ending more than 10 % below the initial cash; 0 = any loss."""

    @field_validator("loss_pct")
    @classmethod
    def _loss(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError("a loss in percent of the initial cash, >= 0 (10 = a 10 % loss)")
        return value


class BootstrapSpec(_Spec):
    """Block bootstrap of the baseline's per-bar returns."""

    type: Literal["bootstrap"] = "bootstrap"
    paths: int | None = _paths_field()
    """Simulated paths (default: `--paths`, else 1,000)."""
    block: int = Field(default=20, ge=1)
    """Block length in bars (the mean length for the stationary bootstrap)."""
    method: Literal["stationary", "moving"] = "stationary"
    """`stationary` (Politis–Romano: geometric block lengths, wrapping around) or `moving`
    (Künsch: fixed blocks; needs `block` <= the number of bars)."""


class _Injected(_Spec):
    symbols: list[str] | None = None
    """The symbols to change (default: every symbol of the data)."""


class _Window(_Injected):
    start: UtcTimestamp | None = None
    """First bar of the window (default: 40 % into the run). Naive dates and times are UTC."""
    end: UtcTimestamp | None = None
    """Last bar of the window, inclusive (default: 60 % into the run)."""

    @field_validator("end")
    @classmethod
    def _after_start(cls, value: pd.Timestamp | None, info: ValidationInfo) -> Any:
        start = info.data.get("start")
        if value is not None and start is not None and value < start:
            raise ValueError(f"the window ends before it starts ({start.isoformat()})")
        return value


class GapSpec(_Injected):
    """A price gap: every bar from `at` on scaled by 1 + pct/100."""

    type: Literal["gap"] = "gap"
    at: UtcTimestamp | None = None
    """The first bar of the new price level, e.g. 2008-10-10 (default: the middle of the run).
    Naive dates and times are UTC."""
    pct: float = -10.0
    """The gap in percent: -10 is a 10 % fall, 5 a 5 % rise (> -100)."""

    @field_validator("pct")
    @classmethod
    def _pct(cls, value: float) -> float:
        if not math.isfinite(value) or value <= -100:
            raise ValueError("a gap in percent, greater than -100 (-10 = a 10 % fall)")
        return value


class VolatilitySpec(_Window):
    """A volatility burst (k > 1) or lull (k < 1): log returns in the window multiplied by k."""

    type: Literal["volatility"] = "volatility"
    k: float = 2.0
    """The factor on every close-to-close log return in the window (> 0; 2 = twice as
    volatile)."""

    @field_validator("k")
    @classmethod
    def _k(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError("a positive factor on the returns (2 = twice as volatile)")
        return value


class LiquiditySpec(_Window):
    """A liquidity drought: volume in the window multiplied by `fraction`, and fills limited to
    a share of each bar's volume."""

    type: Literal["liquidity"] = "liquidity"
    fraction: float = 0.1
    """What is left of each bar's volume in the window, 0 to 1 (0.1 = a tenth)."""
    max_participation: float | None = None
    """Share of a bar's volume the orders of one symbol may fill (0 < x <= 1). Default: the
    deployment's own volume-participation fill model, else 0.1. A value given here is added as
    one more fill model (the smallest capacity applies)."""

    @field_validator("fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not math.isfinite(value) or not 0 <= value <= 1:
            raise ValueError("the share of volume left, from 0 to 1 (0.1 = a tenth)")
        return value

    @field_validator("max_participation")
    @classmethod
    def _participation(cls, value: float | None) -> float | None:
        if value is not None and (not math.isfinite(value) or not 0 < value <= 1):
            raise ValueError("a share of each bar's volume, 0 < x <= 1 (0.1 = 10 %)")
        return value


ScenarioSpec = ResampleSpec | BootstrapSpec | GapSpec | VolatilitySpec | LiquiditySpec
"""The parameters of one scenario; ``type`` says which."""

_SPECS: dict[str, type[_Spec]] = {
    "resample": ResampleSpec,
    "bootstrap": BootstrapSpec,
    "gap": GapSpec,
    "volatility": VolatilitySpec,
    "liquidity": LiquiditySpec,
}


def builtin_scenarios() -> dict[str, ScenarioSpec]:
    """The built-in scenarios, each named after its type, with default parameters."""
    return {
        "resample": ResampleSpec(),
        "bootstrap": BootstrapSpec(),
        "gap": GapSpec(),
        "volatility": VolatilitySpec(),
        "liquidity": LiquiditySpec(),
    }


def load_scenarios(path: str | Path) -> dict[str, ScenarioSpec]:
    """Named scenarios from a TOML file of ``[scenarios.NAME]`` tables, in file order.

    Each table has a ``type`` (one of :data:`SCENARIO_TYPES`; it may be left out when NAME is
    a type, to change a built-in scenario's parameters) and that type's parameters. A problem
    raises :class:`~tradeloom.errors.ConfigError` naming the path
    (``scenarios.crash.pct``), what is wrong and the file.
    """
    shown = str(path)
    data = _read_toml(Path(path), shown)
    unknown = [k for k in data if k != "scenarios"]
    if unknown:
        raise ConfigError(
            f"unknown key; a scenario file holds only [scenarios.NAME] tables (in {shown})",
            path=_fmt_loc((unknown[0],)),
        )
    tables = data.get("scenarios")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(
            f'no scenario defined; add a table such as [scenarios.crash] with type = "gap" '
            f"(in {shown})",
            path="scenarios",
        )
    out: dict[str, ScenarioSpec] = {}
    for name, table in tables.items():
        loc = ("scenarios", name)
        if not _NAME_RE.match(name):
            raise ConfigError(
                "scenario names start with a letter or digit and contain only letters, digits, "
                f"'_', '-' and '.' (in {shown})",
                path=_fmt_loc(loc),
            )
        if not isinstance(table, dict):
            raise ConfigError(
                f"expected a table of the scenario's parameters, e.g. [scenarios.{name}] "
                f'type = "gap" (in {shown})',
                path=_fmt_loc(loc),
            )
        kind = table.get("type", name if name in SCENARIO_TYPES else None)
        if kind is None:
            raise ConfigError(
                f"missing; say what the scenario does: type = one of "
                f"{', '.join(SCENARIO_TYPES)} (in {shown})",
                path=_fmt_loc((*loc, "type")),
            )
        if kind not in _SPECS:
            raise ConfigError(
                f"unknown scenario type {kind!r}; choose one of {', '.join(SCENARIO_TYPES)} "
                f"(in {shown})",
                path=_fmt_loc((*loc, "type")),
            )
        model = _SPECS[kind]
        try:
            spec = model.model_validate({**table, "type": kind})
        except ValidationError as exc:
            raise _validation_error(exc, loc, model, shown) from None
        out[name] = spec  # type: ignore[assignment]
    return out


def select_scenarios(
    names: Sequence[str] | None, defined: Mapping[str, ScenarioSpec] | None = None
) -> dict[str, ScenarioSpec]:
    """The scenarios to run, by name, in the order asked.

    ``defined`` (from :func:`load_scenarios`) adds to the built-ins and overrides one of the
    same name. Without ``names``: every scenario of ``defined``, or :data:`DEFAULT_SCENARIOS`
    when nothing is defined. An unknown name is a :class:`ConfigError` listing the known ones.
    """
    known: dict[str, ScenarioSpec] = {**builtin_scenarios(), **(defined or {})}
    if not names:
        return dict(defined) if defined else {n: known[n] for n in DEFAULT_SCENARIOS}
    chosen: dict[str, ScenarioSpec] = {}
    for name in names:
        if name not in known:
            raise ConfigError(
                f"unknown scenario {name!r}; choose one of {', '.join(known)} (or define it in "
                "a file given with --scenarios)",
                path="--scenario",
            )
        chosen[name] = known[name]
    return chosen


def _fmt_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if _BARE_KEY_RE.match(part) else json.dumps(part)
            out += f".{key}" if out else key
    return out


def _validation_error(
    exc: ValidationError, prefix: tuple[str, ...], model: type[_Spec], shown: str
) -> ConfigError:
    """One :class:`ConfigError` for a pydantic error: the path, what is wrong, the value."""
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = _fmt_loc((*prefix, *err["loc"]))
        kind = err["type"]
        if kind == "extra_forbidden":
            keys = ", ".join(
                sorted(model.model_fields, key=lambda k: (k != "type", k == "symbols"))
            )
            message = f"unknown key; valid keys: {keys}"
        elif kind == "missing":
            message = "missing required key"
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            value = err.get("input")
            if not isinstance(value, dict):
                message += f" (got {value!r})"
        problems.append((loc, message))
    if len(problems) == 1:
        loc, message = problems[0]
        return ConfigError(f"{message} (in {shown})", path=loc)
    listed = "; ".join(f"{loc}: {message}" for loc, message in problems)
    error = ConfigError(f"{len(problems)} problems in {shown}: {listed}")
    error.path = problems[0][0]
    return error


# --- results ---------------------------------------------------------------------------------


@dataclass
class ResampleOutcome:
    """A ``resample`` scenario: the Monte Carlo of the baseline's trades."""

    name: str
    spec: ResampleSpec
    result: ResamplingResult
    trades_return: float
    """The trades' P&L summed, over the initial cash: the final return of the trades in the
    order they happened (the backtest's total return also counts open positions and cash
    flows)."""
    type: str = "resample"

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of its percentile table (formatted text)."""
        r = self.result
        header = ["", *(f"{p}%" for p in PERCENTILES), "backtest"]
        rows = [
            [
                "Max drawdown",
                *(_pct(r.drawdown_percentiles[p]) for p in PERCENTILES),
                _pct(r.original_max_drawdown),
            ],
            [
                "Final return",
                *(_pct(r.return_percentiles[p]) for p in PERCENTILES),
                _pct(self.trades_return),
            ],
        ]
        return header, rows

    def summary(self) -> str:
        """One line: paths, the loss probability and where the backtest's drawdown sits."""
        r = self.result
        draw = "with replacement" if r.replace else "reordered"
        loss = "any loss" if not r.loss_threshold else f"a loss over {_pct(r.loss_threshold)}"
        return (
            f"{r.n_paths:,} paths of {r.n_trades:,} trades ({draw}); P({loss}) = "
            f"{_pct(r.p_loss)}; the backtest's drawdown sits at percentile "
            f"{r.original_drawdown_percentile:.0f} of the paths (50: typical; near 0: its "
            "order was lucky)"
        )

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "type": self.type,
            "params": self.spec.model_dump(mode="json"),
            "paths": r.n_paths,
            "trades": r.n_trades,
            "replace": r.replace,
            "loss_threshold": r.loss_threshold,
            "p_loss": r.p_loss,
            "max_drawdown": _by_percentile(r.drawdown_percentiles),
            "final_return": _by_percentile(r.return_percentiles),
            "backtest": {
                "max_drawdown": r.original_max_drawdown,
                "drawdown_percentile": r.original_drawdown_percentile,
                "final_return": self.trades_return,
            },
        }

    def frame(self) -> pd.DataFrame:
        """One row per path: max drawdown, final return, final equity, loss flag."""
        r = self.result
        return pd.DataFrame(
            {
                "path": np.arange(r.n_paths),
                "max_drawdown": r.max_drawdown,
                "final_return": r.final_return,
                "final_equity": r.final_equity,
                "loss": r.loss,
            }
        )


@dataclass
class BootstrapOutcome:
    """A ``bootstrap`` scenario: block-bootstrapped per-bar returns of the baseline."""

    name: str
    spec: BootstrapSpec
    stats: BootstrapStats
    n_bars: int
    periods_per_year: float
    backtest: dict[str, float | None]
    """The baseline's own total return, Sharpe ratio and max drawdown (same formulas)."""
    fan_times: pd.DatetimeIndex = field(repr=False)
    """The bar times at which the paths' equity is kept (at most :data:`FAN_POINTS`)."""
    fan: dict[int, np.ndarray] = field(repr=False)
    """Percentile → equity (account currency) of the paths at ``fan_times``."""
    type: str = "bootstrap"

    def table(self) -> tuple[list[str], list[list[str]]]:
        s = self.stats
        header = ["", *(f"{p}%" for p in PERCENTILES), "backtest"]
        b = self.backtest
        rows = [
            [
                "Total return",
                *(_pct(s.total_return[p]) for p in PERCENTILES),
                _pct(b["total_return"]),
            ],
            ["Sharpe ratio", *(_num(s.sharpe[p]) for p in PERCENTILES), _num(b["sharpe"])],
            [
                "Max drawdown",
                *(_pct(s.max_drawdown[p]) for p in PERCENTILES),
                _pct(b["max_drawdown"]),
            ],
        ]
        return header, rows

    def summary(self) -> str:
        s = self.stats
        losing = float(np.mean(s.total_returns < 0))
        return (
            f"{s.n_paths:,} paths of {self.n_bars:,} bars, {self.spec.method} blocks of "
            f"{'mean ' if self.spec.method == 'stationary' else ''}{self.spec.block} bars; "
            f"{_pct(losing)} of the paths lose money"
        )

    def to_dict(self) -> dict[str, Any]:
        s = self.stats
        return {
            "type": self.type,
            "params": self.spec.model_dump(mode="json"),
            "paths": s.n_paths,
            "bars": self.n_bars,
            "periods_per_year": self.periods_per_year,
            "total_return": _by_percentile(s.total_return),
            "sharpe": _by_percentile(s.sharpe),
            "max_drawdown": _by_percentile(s.max_drawdown),
            "p_loss": float(np.mean(s.total_returns < 0)),
            "backtest": dict(self.backtest),
        }

    def frame(self) -> pd.DataFrame:
        """One row per path: total return, Sharpe ratio (NaN when undefined), max drawdown."""
        s = self.stats
        return pd.DataFrame(
            {
                "path": np.arange(s.n_paths),
                "total_return": s.total_returns,
                "sharpe": s.sharpes,
                "max_drawdown": s.max_drawdowns,
            }
        )


@dataclass
class InjectedOutcome:
    """A ``gap``, ``volatility`` or ``liquidity`` scenario: the deployment run again on changed
    bars, next to its reference run."""

    name: str
    spec: GapSpec | VolatilitySpec | LiquiditySpec
    applied: dict[str, Any]
    """What was done, resolved: ``at`` or ``start``/``end`` (ISO, UTC), the ``symbols``
    changed, and for a liquidity drought the ``max_participation`` applied."""
    reference_label: str
    """``"baseline"``, or what was added to it for the reference run."""
    reference: BacktestResult = field(repr=False)
    result: BacktestResult = field(repr=False)
    fills: dict[str, Any] = field(default_factory=dict)
    """Liquidity only: ``cap`` (the most a bar in the window may fill, as a share of its
    original volume), ``max_share`` (the largest share filled), ``fills_in_window`` and
    ``split_orders`` (orders filled in more than one part) in the scenario and reference."""

    @property
    def type(self) -> str:
        return self.spec.type

    def metrics(self) -> dict[str, dict[str, float | int | None]]:
        """``{"reference": {...}, "scenario": {...}}`` of :data:`SUMMARY_METRICS`."""
        return {
            "reference": _summary_metrics(self.reference),
            "scenario": _summary_metrics(self.result),
        }

    def table(self) -> tuple[list[str], list[list[str]]]:
        m = self.metrics()
        header = ["", "baseline" if self.reference_label == "baseline" else "reference"]
        header += ["scenario", "change"]
        rows = []
        for key, label in SUMMARY_METRICS:
            a, b = m["reference"][key], m["scenario"][key]
            change = None if a is None or b is None else b - a
            rows.append(
                [
                    label,
                    format_metric(key, a),
                    format_metric(key, b),
                    format_metric(key, change, signed=True),
                ]
            )
        return header, rows

    def summary(self) -> str:
        a = {k: _when(v) if k in ("at", "start", "end") else v for k, v in self.applied.items()}
        symbols = ", ".join(a["symbols"])
        if self.type == "gap":
            what = f"gap of {self.spec.pct:+g} % at {a['at']}"  # type: ignore[union-attr]
        elif self.type == "volatility":
            what = f"returns × {self.spec.k:g} from {a['start']} to {a['end']}"  # type: ignore[union-attr]
        else:
            what = (
                f"volume × {self.spec.fraction:g} from {a['start']} to {a['end']}, fills at "  # type: ignore[union-attr]
                f"most {_pct(a['max_participation'])} of a bar's volume"
            )
        text = f"{what} on {symbols}"
        if self.reference_label != "baseline":
            text += f"; reference: {self.reference_label} on the unchanged bars"
        if self.fills:
            f = self.fills
            text += (
                f"; in the window fills reached {_share(f['max_share'])} of a bar's original "
                f"volume (cap {_share(f['cap'])}), {f['split_orders']['scenario']} orders filled "
                "in parts "
                f"(reference {f['split_orders']['reference']})"
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "params": self.spec.model_dump(mode="json"),
            "applied": self.applied,
            "reference": self.reference_label,
            "metrics": self.metrics(),
        }
        if self.fills:
            out["fills"] = self.fills
        return out

    def frame(self) -> pd.DataFrame:
        """Equity of the reference and of the scenario run, per bar (outer join on time)."""
        ref = self.reference.equity["equity"].rename("reference_equity")
        new = self.result.equity["equity"].rename("scenario_equity")
        both = pd.concat([ref, new], axis=1, join="outer", sort=True)
        both.index.name = "ts"
        return both.reset_index()


@dataclass
class SkippedOutcome:
    """A scenario that could not run on this baseline, and why."""

    name: str
    type: str
    reason: str

    def table(self) -> tuple[list[str], list[list[str]]]:
        return [], []

    def summary(self) -> str:
        return f"skipped: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "skipped": self.reason}

    def frame(self) -> None:
        return None


ScenarioOutcome = ResampleOutcome | BootstrapOutcome | InjectedOutcome | SkippedOutcome


@dataclass
class StressReport:
    """What :func:`run_stress` found: the baseline and one outcome per scenario."""

    title: str
    config_hash: str
    sources: list[str]
    seed: int
    baseline: BacktestResult = field(repr=False)
    scenarios: list[ScenarioOutcome]

    @property
    def initial_cash(self) -> float:
        return float(self.baseline.initial_cash)

    @property
    def currency(self) -> str:
        return self.baseline.currency

    def __getitem__(self, name: str) -> ScenarioOutcome:
        for outcome in self.scenarios:
            if outcome.name == name:
                return outcome
        raise KeyError(f"no scenario {name!r}; ran: {', '.join(o.name for o in self.scenarios)}")

    def baseline_summary(self) -> dict[str, float | int | None]:
        """The baseline's :data:`SUMMARY_METRICS` plus its start and end."""
        return {
            **_summary_metrics(self.baseline),
            "start": self.baseline.metrics.start,  # type: ignore[dict-item]
            "end": self.baseline.metrics.end,  # type: ignore[dict-item]
        }

    def to_dict(self) -> dict[str, Any]:
        """The content of ``stress.json``: floats rounded to :data:`JSON_SIGNIFICANT_DIGITS`
        significant digits, NaN as null, no run ids: the same inputs and seed give the same
        bytes."""
        return _stable(
            {
                "title": self.title,
                "config_hash": self.config_hash,
                "sources": list(self.sources),
                "seed": self.seed,
                "currency": self.currency,
                "initial_cash": self.initial_cash,
                "percentiles": list(PERCENTILES),
                "assumptions": list(self.baseline.conventions),
                "baseline": self.baseline_summary(),
                "scenarios": {o.name: o.to_dict() for o in self.scenarios},
            }
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)


# --- the runner ------------------------------------------------------------------------------


def run_stress(
    resolved: ResolvedDeployment,
    scenarios: Mapping[str, ScenarioSpec] | Sequence[str] | None = None,
    *,
    seed: int = 0,
    n_paths: int | None = None,
    progress: Progress | None = None,
) -> StressReport:
    """Run ``resolved``'s backtest, then each scenario (names of built-in scenarios, or a
    mapping name → spec; default :data:`DEFAULT_SCENARIOS`), in order.

    ``n_paths`` sets the paths of every Monte Carlo scenario (winning over their ``paths``);
    ``seed`` (an int >= 0) makes every draw reproducible. The deployment's data is loaded whole
    (never streamed). Runs are not journaled and no plugin observer hooks are called.
    """
    if resolved.mode != Mode.BACKTEST:
        raise ConfigError(
            f"stress tests run backtests; the deployment says mode = {Mode(resolved.mode).value!r}"
            f' (set mode = "backtest", e.g. --set mode=backtest)',
            path="mode",
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"expected an integer >= 0, got {seed!r}", path="--seed")
    if n_paths is not None and (isinstance(n_paths, bool) or n_paths < 1):
        raise ConfigError(f"expected a positive integer, got {n_paths!r}", path="--paths")
    if isinstance(scenarios, str):
        scenarios = [scenarios]
    if scenarios is None or (not isinstance(scenarios, Mapping) and not scenarios):
        chosen = select_scenarios(None)
    elif isinstance(scenarios, Mapping):
        chosen = dict(scenarios)
    else:
        chosen = select_scenarios(list(scenarios))
    for name in chosen:
        if not _NAME_RE.match(name):
            raise ConfigError(
                "scenario names start with a letter or digit and contain only letters, digits, "
                "'_', '-' and '.'",
                path=_fmt_loc(("scenarios", name)),
            )

    run = resolved.run
    market = load_market(resolved.data.build(), run.start, run.end, stream="never")
    assert isinstance(market, MarketData)  # loaded whole: never streamed
    title = ", ".join(f"{c.id or c.spec.name} ({c.spec.name})" for c in resolved.strategies)
    baseline = _backtest(resolved, market, title=title, progress=_task(progress, "baseline"))
    outcomes: list[ScenarioOutcome] = []
    for name, spec in chosen.items():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
        tick = _task(progress, name)
        if isinstance(spec, ResampleSpec):
            outcomes.append(_resample(name, spec, baseline, rng, n_paths, tick))
        elif isinstance(spec, BootstrapSpec):
            outcomes.append(_bootstrap(name, spec, baseline, rng, n_paths, tick))
        else:
            outcomes.append(_inject(name, spec, resolved, market, baseline, title, tick))
    return StressReport(
        title=title,
        config_hash=resolved.config_hash(),
        sources=list(resolved.sources),
        seed=seed,
        baseline=baseline,
        scenarios=outcomes,
    )


def _task(progress: Progress | None, name: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None

    def tick(done: int, total: int) -> None:
        progress(name, done, total)

    return tick


def _backtest(
    resolved: ResolvedDeployment,
    market: MarketData,
    *,
    title: str,
    extra_fill_models: Sequence[FillModel] = (),
    progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """The deployment's pipeline on ``market``: fresh components, as
    :func:`tradeloom.api.run_deployment` builds them, plus ``extra_fill_models``."""
    broker = resolved.broker.build()
    if not isinstance(broker, SimulatedBroker):
        raise ConfigError(
            f'broker {resolved.broker.spec.name!r} cannot run backtests; use type = "simulated"',
            path="broker.type",
        )
    run = resolved.run
    fills = [*build_named(resolved.fill_models), *extra_fill_models]
    result = run_backtest(
        market,
        [(c.id or c.spec.name, c.build()) for c in resolved.strategies],
        broker=broker,
        risk=build_named(resolved.risk),
        costs=build_named(resolved.costs),
        fill_models=fills,
        initial_cash=run.initial_cash,
        currency=run.currency,
        fx=resolved.fx.build() if resolved.fx is not None else None,
        currencies=run.currencies,
        start=run.start,
        end=run.end,
        benchmark=run.benchmark,
        stream="never",
        history_bars=run.history_bars,
        dividends=run.dividends,
        calendar=run.calendar,
        config=resolved.to_dict(mask_secrets=True),
        provenance={"config_hash": resolved.config_hash()},
        progress=progress,
        title=title,
    )
    if progress is not None:
        progress(market.total_bars, market.total_bars)
    return result


def _resample(
    name: str,
    spec: ResampleSpec,
    baseline: BacktestResult,
    rng: np.random.Generator,
    n_paths: int | None,
    progress: Callable[[int, int], None] | None,
) -> ScenarioOutcome:
    pnls = np.asarray(baseline.trades["pnl"], dtype=float)
    if pnls.size == 0:
        return SkippedOutcome(name, spec.type, "the baseline closed no trades to resample")
    total = n_paths or spec.paths or DEFAULT_RESAMPLE_PATHS
    equity0 = float(baseline.initial_cash)
    threshold = spec.loss_pct / 100.0
    parts: list[ResamplingResult] = []
    for lo in range(0, total, CHUNK_PATHS):  # the same draws as one call: it chunks alike
        rows = min(CHUNK_PATHS, total - lo)
        parts.append(
            trade_resampling(
                pnls, equity0, n_paths=rows, seed=rng, loss_threshold=threshold,
                replace=spec.replace,
            )
        )  # fmt: skip
        if progress is not None:
            progress(lo + rows, total)
    first = parts[0]
    max_dd = np.concatenate([p.max_drawdown for p in parts])
    final_return = np.concatenate([p.final_return for p in parts])
    loss = np.concatenate([p.loss for p in parts])
    original = first.original_max_drawdown
    below = np.count_nonzero(max_dd < original)
    equal = np.count_nonzero(max_dd == original)
    result = ResamplingResult(
        n_paths=total,
        n_trades=first.n_trades,
        replace=first.replace,
        initial_equity=equity0,
        loss_threshold=first.loss_threshold,
        drawdown_percentiles=_percentiles(max_dd),
        return_percentiles=_percentiles(final_return),
        p_loss=float(np.mean(loss)),
        original_max_drawdown=original,
        original_drawdown_percentile=100.0 * (below + 0.5 * equal) / total,
        final_equity=np.concatenate([p.final_equity for p in parts]),
        final_return=final_return,
        max_drawdown=max_dd,
        loss=loss,
    )
    return ResampleOutcome(name, spec, result, float(pnls.sum()) / equity0)


def _bar_returns(result: BacktestResult) -> np.ndarray | None:
    """Simple per-bar returns of a run's equity, the first against the initial cash (as the
    metrics compute them); None when an equity before the last bar is not positive."""
    equity = np.asarray(result.equity["equity"], dtype=float)
    curve = np.concatenate(([float(result.initial_cash)], equity))
    if not np.all(curve[:-1] > 0) or not np.all(np.isfinite(curve)):
        return None
    return curve[1:] / curve[:-1] - 1.0


def _bootstrap(
    name: str,
    spec: BootstrapSpec,
    baseline: BacktestResult,
    rng: np.random.Generator,
    n_paths: int | None,
    progress: Callable[[int, int], None] | None,
) -> ScenarioOutcome:
    returns = _bar_returns(baseline)
    if returns is None:
        return SkippedOutcome(
            name, spec.type, "the baseline's equity reached zero or below: returns are undefined"
        )
    if returns.size < 2:
        return SkippedOutcome(name, spec.type, "the baseline has fewer than two bars")
    length = returns.size
    if spec.method == "moving" and spec.block > length:
        raise ConfigError(
            f"{spec.block} is longer than the run ({length} bars); lower block or use "
            'method = "stationary"',
            path=_fmt_loc(("scenarios", name, "block")),
        )
    total = n_paths or spec.paths or DEFAULT_BOOTSTRAP_PATHS
    ppy = float(baseline.metrics.periods_per_year)
    equity0 = float(baseline.initial_cash)
    fan_at = np.unique(np.linspace(0, length - 1, min(FAN_POINTS, length)).round().astype(int))
    chunk = max(1, BOOTSTRAP_CHUNK_VALUES // length)
    totals, sharpes, drawdowns, fan_rows = [], [], [], []
    for lo in range(0, total, chunk):
        rows = min(chunk, total - lo)
        paths = block_bootstrap(
            returns, block=spec.block, n_paths=rows, seed=rng,
            stationary=spec.method == "stationary",
        )  # fmt: skip
        stats = bootstrap_stats(paths, ppy)
        totals.append(stats.total_returns)
        sharpes.append(stats.sharpes)
        drawdowns.append(stats.max_drawdowns)
        fan_rows.append(equity0 * np.cumprod(1.0 + paths, axis=1)[:, fan_at])
        if progress is not None:
            progress(lo + rows, total)
    total_returns = np.concatenate(totals)
    sharpe = np.concatenate(sharpes)
    max_dd = np.concatenate(drawdowns)
    stats = BootstrapStats(
        n_paths=total,
        total_return=_percentiles(total_returns),
        sharpe=_percentiles(sharpe),
        max_drawdown=_percentiles(max_dd),
        total_returns=total_returns,
        sharpes=sharpe,
        max_drawdowns=max_dd,
    )
    own = bootstrap_stats(returns, ppy)
    fan = np.percentile(np.concatenate(fan_rows), PERCENTILES, axis=0)
    return BootstrapOutcome(
        name=name,
        spec=spec,
        stats=stats,
        n_bars=length,
        periods_per_year=ppy,
        backtest={
            "total_return": float(own.total_returns[0]),
            "sharpe": None if math.isnan(own.sharpes[0]) else float(own.sharpes[0]),
            "max_drawdown": float(own.max_drawdowns[0]),
        },
        fan_times=pd.DatetimeIndex(baseline.equity.index[fan_at]),
        fan={p: fan[i] for i, p in enumerate(PERCENTILES)},
    )


def _timeline(market: MarketData) -> pd.DatetimeIndex:
    stamps = np.unique(np.concatenate([f.index.as_unit("ns").asi8 for f in market.frames.values()]))
    return pd.DatetimeIndex(stamps.astype("datetime64[ns]")).tz_localize("UTC")


def _inject(
    name: str,
    spec: GapSpec | VolatilitySpec | LiquiditySpec,
    resolved: ResolvedDeployment,
    market: MarketData,
    baseline: BacktestResult,
    title: str,
    progress: Callable[[int, int], None] | None,
) -> InjectedOutcome:
    """Change the bars as ``spec`` says and run the deployment on them."""
    stressed, applied = _stressed(name, spec, market)
    if not isinstance(spec, LiquiditySpec):
        result = _backtest(resolved, stressed, title=f"{title} [{name}]", progress=progress)
        return InjectedOutcome(name, spec, applied, "baseline", baseline, result)

    # A drought limits fills only through a volume-participation fill model.
    own = [
        float(m.params.max_participation)
        for m in build_named(resolved.fill_models)
        if isinstance(m, VolumeParticipation)
    ]
    extra: list[FillModel] = []
    reference, label = baseline, "baseline"
    if spec.max_participation is not None or not own:
        share = spec.max_participation or DEFAULT_PARTICIPATION
        model = VolumeParticipation(max_participation=share)
        model.name = "volume-participation"  # as build_named names configured models
        extra.append(model)
        own.append(share)
        label = f"baseline + volume-participation {share:g}"
        reference = _backtest(resolved, market, title=title, extra_fill_models=extra)
    participation = min(own)
    applied["max_participation"] = participation
    result = _backtest(
        resolved, stressed, title=f"{title} [{name}]", extra_fill_models=extra, progress=progress
    )
    window = (pd.Timestamp(applied["start"]), pd.Timestamp(applied["end"]))
    fills = _fill_shares(market, result, reference, applied["symbols"], window)
    fills["cap"] = participation * spec.fraction
    return InjectedOutcome(name, spec, applied, label, reference, result, fills)


def _stressed(
    name: str, spec: GapSpec | VolatilitySpec | LiquiditySpec, market: MarketData
) -> tuple[MarketData, dict[str, Any]]:
    """``market`` with the scenario applied to its symbols, and what was applied: ``at`` or
    ``start``/``end`` (ISO, UTC, defaults resolved) and the ``symbols`` changed (those with
    bars where the scenario happens)."""
    where = ("scenarios", name)
    symbols = list(spec.symbols) if spec.symbols else market.symbols
    missing = [s for s in symbols if s not in market.frames]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} not in the data, which holds {', '.join(market.symbols)}; "
            "list only symbols of the data (or leave symbols out for all)",
            path=_fmt_loc((*where, "symbols")),
        )
    timeline = _timeline(market)

    def anchor(share: float) -> pd.Timestamp:
        return timeline[min(len(timeline) - 1, int(share * len(timeline)))]

    frames = dict(market.frames)
    applied: dict[str, Any] = {}
    changed: list[str] = []
    if isinstance(spec, GapSpec):
        at = spec.at if spec.at is not None else anchor(0.5)
        applied["at"] = at.isoformat()
        for symbol in symbols:
            frame = frames[symbol]
            if frame.index[0] < at <= frame.index[-1]:  # else it trades only on one side
                frames[symbol] = _apply(where, gap, frame, at, spec.pct / 100.0)
                changed.append(symbol)
        if not changed:
            raise ConfigError(
                f"{at.isoformat()} is not inside the bars of {', '.join(symbols)} "
                f"({_span(market, symbols)}); choose a time after the first bar and on or "
                "before the last",
                path=_fmt_loc((*where, "at")),
            )
    else:
        start = spec.start if spec.start is not None else anchor(DEFAULT_WINDOW[0])
        end = spec.end if spec.end is not None else anchor(DEFAULT_WINDOW[1])
        if spec.end is None and end < start:  # only start given, after the default end
            end = timeline[-1]
        if spec.start is None and start > end:  # only end given, before the default start
            start = timeline[0]
        applied["start"], applied["end"] = start.isoformat(), end.isoformat()
        for symbol in symbols:
            frame = frames[symbol]
            if not ((frame.index >= start) & (frame.index <= end)).any():
                continue
            if isinstance(spec, VolatilitySpec):
                frames[symbol] = _apply(where, volatility, frame, start, end, spec.k)
            else:
                frames[symbol] = _apply(where, liquidity, frame, start, end, spec.fraction)
            changed.append(symbol)
        if not changed:
            raise ConfigError(
                f"no bar of {', '.join(symbols)} between {start.isoformat()} and "
                f"{end.isoformat()} ({_span(market, symbols)}); choose a window inside the run",
                path=_fmt_loc((*where, "start")),
            )
    applied["symbols"] = changed
    return MarketData(frames, market.quality, market.description, market.actions), applied


def _apply(where: tuple[str, str], fn: Callable[..., pd.DataFrame], *args: Any) -> pd.DataFrame:
    try:
        return fn(*args)
    except StressInputError as exc:
        message = str(exc).removeprefix(f"{exc.field}: ")
        raise ConfigError(message, path=_fmt_loc((*where, exc.field))) from None


def _span(market: MarketData, symbols: Sequence[str]) -> str:
    first = min(market.frames[s].index[0] for s in symbols)
    last = max(market.frames[s].index[-1] for s in symbols)
    return f"the bars run from {first.isoformat()} to {last.isoformat()}"


def _fill_shares(
    market: MarketData,
    result: BacktestResult,
    reference: BacktestResult,
    symbols: Sequence[str],
    window: tuple[pd.Timestamp, pd.Timestamp],
) -> dict[str, Any]:
    """How much the fills of the window took of each bar's original volume."""
    start, end = window
    fills = result.fills
    inside = fills[
        fills["symbol"].isin(symbols) & (fills["time"] >= start) & (fills["time"] <= end)
    ]
    share = 0.0
    if len(inside):
        units = inside.groupby(["symbol", "time"])["quantity"].sum()
        volume = np.array(
            [float(market.frames[s].at[t, "volume"]) for s, t in units.index], dtype=float
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(volume > 0, units.to_numpy(dtype=float) / volume, np.inf)
        share = float(np.max(ratios))

    def split(run: BacktestResult) -> int:
        counts = run.fills["client_order_id"].value_counts()
        return int((counts > 1).sum())

    return {
        "max_share": share,
        "fills_in_window": len(inside),
        "split_orders": {"reference": split(reference), "scenario": split(result)},
    }


# --- outputs ---------------------------------------------------------------------------------


def write_stress_outputs(report: StressReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``stress.json``, one ``NAME.csv`` per scenario that ran (its distribution, or the
    reference and scenario equity) and ``stress.html`` into ``out_dir``; return name → path.
    Every file is a pure function of the deployment, the data, the scenarios and the seed."""
    from tradeloom.report.stress_html import write_stress_html

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    path = folder / "stress.json"
    path.write_text(report.to_json() + "\n", encoding="utf-8")
    written[path.name] = path
    for outcome in report.scenarios:
        frame = outcome.frame()
        if frame is None:
            continue
        path = folder / f"{outcome.name}.csv"
        frame.to_csv(path, index=False, lineterminator="\n", float_format="%.12g")
        written[path.name] = path
    written["stress.html"] = write_stress_html(report, folder / "stress.html")
    return written


# --- small helpers ---------------------------------------------------------------------------


def _percentiles(values: np.ndarray) -> dict[int, float]:
    """Percentiles :data:`PERCENTILES` of the finite values (NaN when there are none), as
    :mod:`tradeloom.research.stress` computes them."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return dict.fromkeys(PERCENTILES, math.nan)
    return {
        p: float(v) for p, v in zip(PERCENTILES, np.percentile(finite, PERCENTILES), strict=True)
    }


def _by_percentile(values: Mapping[int, float]) -> dict[str, float]:
    return {str(p): values[p] for p in PERCENTILES}


def _summary_metrics(result: BacktestResult) -> dict[str, float | int | None]:
    m = result.metrics
    out: dict[str, float | int | None] = {}
    for key, _ in SUMMARY_METRICS:
        value = getattr(m, key)
        out[key] = -value + 0.0 if key == "max_drawdown" else value
    return out


def _stable(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float | np.floating):
        number = float(value)
        if not math.isfinite(number):
            return None
        rounded = float(f"{number:.{JSON_SIGNIFICANT_DIGITS}g}")
        return 0.0 if rounded == 0.0 else rounded
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _stable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_stable(v) for v in value]
    return value


_NONE = "—"


def _pct(value: float | None, *, signed: bool = False) -> str:
    """A fraction as a percentage; ``signed``: a change, in percentage points."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _NONE
    return f"{value * 100:+,.2f} pp" if signed else f"{value * 100:,.2f}%"


def _when(iso: str) -> str:
    """An ISO time as the date alone when it is midnight UTC."""
    ts = pd.Timestamp(iso)
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()


def _share(value: float) -> str:
    """A possibly tiny fraction as a percentage with three significant digits."""
    return f"{value * 100:.3g}%"


def _num(value: float | None, *, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _NONE
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def _count(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return _NONE
    return f"{int(value):+,}" if signed else f"{int(value):,}"


def format_metric(key: str, value: float | None, *, signed: bool = False) -> str:
    """One of :data:`SUMMARY_METRICS` as text: fractions as percentages, counts as integers,
    the rest with two decimals; ``—`` when undefined; ``signed`` for a change."""
    if key in ("total_return", "cagr", "annual_volatility", "max_drawdown"):
        return _pct(value, signed=signed)
    if key in ("num_trades", "num_fills"):
        return _count(value, signed=signed)
    return _num(value, signed=signed)

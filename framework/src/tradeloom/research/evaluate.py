"""Trials: one parameter set of one strategy, backtested, reduced to metrics and daily equity.

An :class:`Evaluator` holds everything a worker needs — the deployment, the loaded bars, the
objectives — and is pickled once per worker process (or scattered once to a Dask cluster).
A trial's outcome depends on its parameters alone, never on which worker ran it or with
which other trials, so every executor gives the same trials.

Two engines:

- **vector** (:func:`tradeloom.vector.sweeps.evaluate_params`) when the deployment is one
  strategy with ``signals`` and nothing the vector engine does not model (risk rules, cost
  or fill models, FX, corporate actions, a trading calendar); a batch of trials is simulated
  in one parallel kernel call;
- **event** (:func:`tradeloom.api.run_backtest`) otherwise: the deployment exactly as
  ``tradeloom backtest`` runs it, with the trial's parameters.

Each trial keeps its equity at the end of every UTC day (every bar for daily or coarser
data): the overfitting statistics (PSR, DSR, PBO) are computed on those daily returns.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from tradeloom.errors import ConfigError, TradeloomError
from tradeloom.research.space import BUILTIN_OBJECTIVES, SearchSpace

if TYPE_CHECKING:
    from tradeloom.config import ResolvedComponent, ResolvedDeployment
    from tradeloom.data import MarketData
    from tradeloom.vector.sweeps import Buckets

__all__ = ["Evaluator", "TrialOutcome", "vector_blockers"]

_DAY_NS = 86_400 * 10**9


@dataclass
class TrialOutcome:
    """What one trial produced."""

    number: int
    params: dict[str, Any]
    metrics: dict[str, float | None] = field(default_factory=dict)
    """:data:`~tradeloom.research.space.BUILTIN_OBJECTIVES` and any custom objective."""
    equity: np.ndarray = field(default_factory=lambda: np.empty(0))
    """Equity at the end of each period (:attr:`Evaluator.buckets`)."""
    error: str | None = None
    """Why the trial has no result (its params were refused, the strategy raised)."""
    seconds: float = 0.0
    """Evaluation time, shared equally by the trials of one kernel call."""

    @property
    def ok(self) -> bool:
        return self.error is None


def vector_blockers(resolved: ResolvedDeployment, market: MarketData) -> list[str]:
    """Why the vector engine cannot evaluate this deployment (empty: it can)."""
    from tradeloom.execution import SimulatedBroker

    reasons = []
    if len(resolved.strategies) != 1:
        reasons.append(f"{len(resolved.strategies)} strategies (the vector engine runs one)")
    else:
        cls = resolved.strategies[0].spec.cls
        if not callable(getattr(cls, "signals", None)):
            reasons.append(f"strategy {resolved.strategies[0].spec.name!r} has no signals()")
    if resolved.risk:
        reasons.append("risk rules")
    if resolved.costs:
        reasons.append("cost models")
    if resolved.fill_models:
        reasons.append("fill models")
    if resolved.fx is not None:
        reasons.append("FX conversion")
    if resolved.run.calendar != "utc-days":
        reasons.append(f"calendar {resolved.run.calendar!r}")
    if resolved.broker.spec.cls is not SimulatedBroker:
        reasons.append(f"broker {resolved.broker.spec.name!r}")
    if market.actions:
        reasons.append("corporate actions")
    return reasons


class Evaluator:
    """Backtests trials of ``resolved``'s strategy ``strategy_index`` with ``space``'s fixed
    params and each trial's searched params, on ``market`` (the deployment's bars, loaded)."""

    def __init__(
        self,
        resolved: ResolvedDeployment,
        market: MarketData,
        space: SearchSpace,
        *,
        strategy_index: int = 0,
        engine: str = "auto",
    ) -> None:
        from tradeloom.vector.signals import signal_data
        from tradeloom.vector.sweeps import Buckets

        self.resolved = resolved
        self.market = market
        self.space = space
        self.strategy_index = strategy_index
        self.component: ResolvedComponent = resolved.strategies[strategy_index]
        self.strategy_cls = self.component.spec.cls
        self.strategy_id = self.component.id or self.component.spec.name
        self.objectives = list(space.optimize.objectives)
        self.initial_cash = float(resolved.run.initial_cash)
        blockers = vector_blockers(resolved, market)
        if engine == "auto":
            engine = "event" if blockers else "vector"
        elif engine == "vector" and blockers:
            raise ConfigError(
                f"the vector engine cannot run this deployment ({', '.join(blockers)}); use "
                "--engine event (or auto)",
                path="engine",
            )
        elif engine not in ("vector", "event"):
            raise ConfigError(f"unknown engine {engine!r}; use auto, vector or event")
        self.engine = engine
        self.vector_blockers = blockers
        self.ts = signal_data(market).ts
        self.buckets: Buckets = Buckets.daily(self.ts)
        days = (self.ts[-1] - self.ts[0]) / _DAY_NS if len(self.ts) else 0.0
        self.elapsed_days = float(days)
        self._custom: dict[str, Callable[..., Any]] | None = None
        self._check_fields()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_custom"] = None  # imported again in each worker
        return state

    # --- params --------------------------------------------------------------------------------
    def _check_fields(self) -> None:
        fields = self.strategy_cls.Params.model_fields
        for name in self.space.params:
            if name not in fields:
                raise ConfigError(
                    f"strategy {self.strategy_id!r} ({self.component.spec.name}) has no param "
                    f"{name!r}; its params are {', '.join(fields)}",
                    path=f"params.{name}",
                )
        for name in self.objectives:
            if name not in BUILTIN_OBJECTIVES:
                load_metric(name)  # fails here, not in a worker

    def params_for(self, trial: dict[str, Any]) -> Any:
        """The strategy's validated ``Params``: the deployment's, then the space's fixed
        values, then the trial's. Raises ``ValidationError``."""
        base = self.component.params.model_dump()
        return self.strategy_cls.Params(**{**base, **self.space.fixed, **trial})

    # --- evaluation ----------------------------------------------------------------------------
    def evaluate(self, trials: Sequence[tuple[int, dict[str, Any]]]) -> list[TrialOutcome]:
        """Outcomes of ``(number, params)`` trials, in the same order."""
        outcomes = [TrialOutcome(number, dict(params)) for number, params in trials]
        valid: list[tuple[TrialOutcome, Any]] = []
        for outcome in outcomes:
            try:
                valid.append((outcome, self.params_for(outcome.params)))
            except ValidationError as exc:
                outcome.error = "; ".join(_short(e) for e in exc.errors())
        if not valid:
            return outcomes
        if self.engine == "vector":
            self._vector(valid)
        else:
            for outcome, params in valid:
                self._event(outcome, params)
        for outcome, _ in valid:
            if outcome.ok:
                self._custom_objectives(outcome)
        return outcomes

    def _vector(self, valid: list[tuple[TrialOutcome, Any]]) -> None:
        from tradeloom.vector.sweeps import METRICS, evaluate_params

        started = time.perf_counter()
        broker = self.resolved.broker.params
        try:
            stats, equity = evaluate_params(
                self.market, self.strategy_cls, [p for _, p in valid], broker_params=broker,
                initial_cash=self.initial_cash, buckets=self.buckets,
            )  # fmt: skip
        except TradeloomError as exc:
            for outcome, _ in valid:
                outcome.error = str(exc)
            return
        share = (time.perf_counter() - started) / len(valid)
        for row, (outcome, _) in enumerate(valid):
            values = dict(zip(METRICS, (float(x) for x in stats[row]), strict=True))
            outcome.metrics = self._complete(values)
            outcome.equity = equity[row].copy()
            outcome.seconds = share

    def _event(self, outcome: TrialOutcome, params: Any) -> None:
        from tradeloom.api import build_named, run_backtest

        started = time.perf_counter()
        resolved = self.resolved
        strategies = []
        for i, component in enumerate(resolved.strategies):
            sid = component.id or component.spec.name
            built = self.strategy_cls(params) if i == self.strategy_index else component.build()
            strategies.append((sid, built))
        run = resolved.run
        try:
            result = run_backtest(
                self.market, strategies, broker=resolved.broker.build(),
                risk=build_named(resolved.risk), costs=build_named(resolved.costs),
                fill_models=build_named(resolved.fill_models), initial_cash=run.initial_cash,
                currency=run.currency, fx=resolved.fx.build() if resolved.fx else None,
                currencies=run.currencies, history_bars=run.history_bars,
                dividends=run.dividends, calendar=run.calendar,
            )  # fmt: skip
        except TradeloomError as exc:
            outcome.error = str(exc)
            outcome.seconds = time.perf_counter() - started
            return
        m = result.metrics
        outcome.metrics = {
            "sharpe": m.sharpe,
            "sortino": m.sortino,
            "calmar": m.calmar,
            "total_return": m.total_return,
            "cagr": m.cagr,
            "max_drawdown": m.max_drawdown,
            "final_equity": m.final_equity,
            "num_trades": float(m.num_trades),
        }
        curve = result.equity["equity"].to_numpy(dtype=np.float64)
        ends = np.append(np.flatnonzero(np.diff(self.buckets.index)), len(self.buckets.index) - 1)
        outcome.equity = curve[ends]
        outcome.seconds = time.perf_counter() - started

    def _complete(self, values: dict[str, float]) -> dict[str, float | None]:
        """The vector kernel's statistics plus CAGR and Calmar, with ``report.metrics``'
        definitions; NaN becomes ``None``."""
        final = values["final_equity"]
        cagr = None
        if self.elapsed_days > 0 and final >= 0:
            try:
                cagr = (final / self.initial_cash) ** (365.25 / self.elapsed_days) - 1.0
            except OverflowError:
                cagr = None
        max_dd = values["max_drawdown"]
        calmar = None if cagr is None or not max_dd else cagr / abs(max_dd)
        out: dict[str, float | None] = {
            k: (None if v is None or math.isnan(v) else float(v)) for k, v in values.items()
        }
        out["cagr"] = cagr
        out["calmar"] = calmar
        return {k: out.get(k) for k in BUILTIN_OBJECTIVES}

    def _custom_objectives(self, outcome: TrialOutcome) -> None:
        custom = [o for o in self.objectives if o not in BUILTIN_OBJECTIVES]
        if not custom:
            return
        if self._custom is None:
            self._custom = {name: load_metric(name) for name in custom}
        equity = pd.Series(outcome.equity, index=self.buckets.ends, name="equity")
        for name, fn in self._custom.items():
            try:
                value = fn(equity, dict(outcome.metrics))
                outcome.metrics[name] = None if value is None else float(value)
            except Exception as exc:  # a user's metric: report it on the trial, go on
                outcome.error = f"custom metric {name} raised {type(exc).__name__}: {exc}"
                return


def load_metric(name: str) -> Callable[..., Any]:
    """``package.module:function`` → the function. It is called with the trial's daily
    equity (a ``pandas.Series`` indexed by UTC timestamps) and its metrics dict, and returns
    a number (higher is better unless ``directions`` says ``minimize``)."""
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"custom metric {name!r} cannot be imported ({exc}); write 'package.module:function'"
            " for a function importable in every worker",
            path="optimize.objectives",
        ) from None
    if not callable(fn):
        raise ConfigError(f"custom metric {name!r} is not callable", path="optimize.objectives")
    return fn


def _short(error: Any) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()))
    message = str(error.get("msg", "invalid"))
    return f"{where}: {message}" if where else message

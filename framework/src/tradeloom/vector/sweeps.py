"""``sweep``: a strategy over a parameter grid, in parallel on all cores.

Every combination is simulated by the same kernel as :func:`~tradeloom.vector.run_signals`,
so a sweep row and a direct run with its parameters agree (the Sharpe ratio and drawdown are
computed in the kernel from the equity curve, with the definitions of
:mod:`tradeloom.report.metrics`, to within float rounding of the sums).

Three paths, the fastest that the strategy supports:

1. **fused**: the strategy class has a classmethod ``fused_sweep(data, params, costs,
   periods_per_year)`` returning a ``(len(params), N_STATS)`` array of
   :mod:`tradeloom.vector.kernels` statistics (``S_*``), or ``None`` to decline. It computes
   signals and simulates them inside one parallel kernel (``sma-crossover`` does);
2. **signals**: each combination's ``signals`` are computed in turn, then simulated in batches
   by :func:`~tradeloom.vector.kernels.simulate_batch_nb`, in parallel;
3. **event**: a combination whose strategy has no ``signals`` or declines runs through the
   event engine (slow, but the same answer).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from tradeloom.data import DataSource, MarketData
from tradeloom.engine.inputs import load_market
from tradeloom.errors import ConfigError
from tradeloom.execution import SimulatedBroker
from tradeloom.vector.engine import cost_spec, policy_spec, strategy_signals
from tradeloom.vector.signals import SignalData, signal_data

if TYPE_CHECKING:
    from tradeloom.strategy import Strategy
    from tradeloom.vector.kernels import CostSpec

__all__ = ["METRICS", "sweep"]

METRICS = ("num_trades", "total_return", "sharpe", "max_drawdown", "final_equity")
"""The statistics of every sweep row; ``metric`` picks the one rows are sorted by."""

_BATCH_BYTES = 256 * 2**20
"""Signal arrays simulated together at most (the generic path)."""


def sweep(
    market: MarketData | DataSource,
    strategy_cls: type[Strategy],
    grid: Mapping[str, Sequence[Any]],
    *,
    metric: str = "sharpe",
    broker_params: SimulatedBroker.Params | None = None,
    initial_cash: float = 100_000.0,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Backtest ``strategy_cls`` for every combination of ``grid`` (param name → values; give
    a one-element list for a fixed value) and return one row per combination, best first.

    Columns: the grid's params, then :data:`METRICS` (``sharpe`` is NaN when undefined), then
    ``error``: why a combination is invalid (its ``Params`` refused it, e.g. ``fast >= slow``;
    its statistics are then NaN), else ``None``. Rows are sorted by ``metric``, highest first
    (for ``max_drawdown``, a fraction <= 0, that is the shallowest), NaN last, ties in grid
    order.
    """
    if metric not in METRICS:
        raise ConfigError(f"unknown sweep metric {metric!r}; choose one of {', '.join(METRICS)}")
    names = _check_grid(strategy_cls, grid)
    if not initial_cash > 0:
        raise ConfigError(f"initial cash must be positive, got {initial_cash}")
    market = load_market(market, start, end)
    broker = broker_params if broker_params is not None else SimulatedBroker.Params()
    costs = cost_spec(broker, initial_cash)
    data = signal_data(market)
    ppy = _periods_per_year(data)

    combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]
    params: list[Any] = []
    errors: list[str | None] = []
    for combo in combos:
        try:
            params.append(strategy_cls.Params(**combo))
            errors.append(None)
        except ValidationError as exc:
            params.append(None)
            errors.append("; ".join(_short(e) for e in exc.errors()))
    valid = [i for i, p in enumerate(params) if p is not None]
    stats = np.full((len(combos), len(METRICS)), np.nan)
    if valid:
        chosen = [params[i] for i in valid]
        stats[valid] = _run(market, data, strategy_cls, chosen, broker, costs, ppy)

    frame = pd.DataFrame(combos, columns=names)
    for c, name in enumerate(METRICS):
        frame[name] = stats[:, c]
    frame["num_trades"] = frame["num_trades"].astype("Int64")
    frame["error"] = errors
    return frame.sort_values(
        metric, ascending=False, na_position="last", kind="stable"
    ).reset_index(drop=True)


def _check_grid(strategy_cls: type[Strategy], grid: Mapping[str, Sequence[Any]]) -> list[str]:
    if not isinstance(grid, Mapping) or not grid:
        raise ConfigError("sweep grid must be a non-empty dict of param name -> list of values")
    fields = strategy_cls.Params.model_fields
    for name, values in grid.items():
        if name not in fields:
            raise ConfigError(
                f"{strategy_cls.__name__} has no param {name!r}; its params are {', '.join(fields)}"
            )
        if isinstance(values, str) or not isinstance(values, Sequence) or not len(values):
            raise ConfigError(
                f"sweep grid[{name!r}] must be a non-empty list of values, got {values!r}"
            )
    return list(grid)


def _short(error: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()))
    message = str(error.get("msg", "invalid"))
    return f"{where}: {message}" if where else message


def _periods_per_year(data: SignalData) -> float:
    from tradeloom.report.metrics import infer_periods_per_year

    if data.n < 2:
        return 252.0
    return infer_periods_per_year(pd.DatetimeIndex(data.ts, tz="UTC"))


def _run(
    market: MarketData,
    data: SignalData,
    strategy_cls: type[Strategy],
    params: list[Any],
    broker: SimulatedBroker.Params,
    costs: CostSpec,
    ppy: float,
) -> np.ndarray:
    """Statistics ``(len(params), len(METRICS))`` by the fastest path available."""
    from tradeloom.vector import kernels as K

    columns = [K.S_TRADES, K.S_TOTAL_RETURN, K.S_SHARPE, K.S_MAX_DRAWDOWN, K.S_FINAL_EQUITY]
    fused = getattr(strategy_cls, "fused_sweep", None)
    if callable(fused):
        raw = fused(data, params, costs, ppy)
        if raw is not None:
            return np.asarray(raw)[:, columns]

    out = np.full((len(params), len(METRICS)), np.nan)
    batch: list[tuple[int, Any, tuple[np.ndarray, ...]]] = []
    per_combo = 4 * data.n * data.n_symbols
    batch_size = max(1, _BATCH_BYTES // max(per_combo, 1))
    for i, p in enumerate(params):
        strategy = strategy_cls(p)
        name = f"{strategy_cls.__name__}({_describe(p)})"
        signals = strategy_signals(strategy, data, name)
        if signals is None:
            out[i] = _event_stats(market, strategy, broker, costs.initial_cash)
            continue
        batch.append((i, policy_spec(signals), signals.checked(data.shape, name)))
        if len(batch) == batch_size:
            _flush(batch, data, costs, ppy, out, columns)
    _flush(batch, data, costs, ppy, out, columns)
    return out


def _flush(
    batch: list[tuple[int, Any, tuple[np.ndarray, ...]]],
    data: SignalData,
    costs: CostSpec,
    ppy: float,
    out: np.ndarray,
    columns: list[int],
) -> None:
    from tradeloom.vector.kernels import simulate_batch_nb

    if not batch:
        return
    stacked = [np.stack([arrays[a] for _, _, arrays in batch]) for a in range(4)]
    policies = [policy for _, policy, _ in batch]
    raw = simulate_batch_nb(
        data.open,
        data.high,
        data.low,
        data.close,
        *stacked,
        np.array([p.long_short for p in policies], dtype=np.bool_),
        np.array([p.retarget for p in policies], dtype=np.bool_),
        np.array([p.quantity for p in policies], dtype=np.float64),
        np.array([p.fraction for p in policies], dtype=np.float64),
        costs,
        ppy,
    )
    out[[i for i, _, _ in batch]] = raw[:, columns]
    batch.clear()


def _event_stats(
    market: MarketData, strategy: Strategy, broker: SimulatedBroker.Params, initial_cash: float
) -> np.ndarray:
    """One combination through the event engine, for strategies without signals."""
    from tradeloom.api import run_backtest

    result = run_backtest(
        market, strategy, broker=SimulatedBroker(broker), initial_cash=initial_cash
    )
    m = result.metrics
    sharpe = math.nan if m.sharpe is None else m.sharpe
    return np.array([m.num_trades, m.total_return, sharpe, m.max_drawdown, m.final_equity])


def _describe(params: Any) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.model_dump().items())

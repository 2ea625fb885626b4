"""``sweep``: a strategy over a parameter grid, in parallel on all cores.

Every combination is simulated by the same kernel as :func:`~tradeloom.vector.run_signals`,
so a sweep row and a direct run with its parameters agree (the Sharpe ratio and drawdown are
computed in the kernel from the equity curve, with the definitions of
:mod:`tradeloom.report.metrics`, to within float rounding of the sums).

Three paths, the fastest that the strategy supports:

1. **fused**: the strategy class has a classmethod ``fused_sweep(data, params, costs,
   periods_per_year, bucket, bucket_equity)`` returning a ``(len(params), N_STATS)`` array of
   :mod:`tradeloom.vector.kernels` statistics (``S_*``) and filling ``bucket_equity`` (both
   ``None`` when no equity is kept) as
   :func:`~tradeloom.vector.kernels.simulate_batch_nb` does, or returning ``None`` to
   decline. It computes signals and simulates them inside one parallel kernel
   (``sma-crossover`` does);
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

__all__ = ["METRICS", "Buckets", "evaluate_params", "sweep"]

METRICS = ("num_trades", "total_return", "sharpe", "sortino", "max_drawdown", "final_equity")
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

    Columns: the grid's params, then :data:`METRICS` (``sharpe`` and ``sortino`` are NaN when
    undefined), then
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
        stats[valid], _ = _run(market, data, strategy_cls, chosen, broker, costs, ppy, None)

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


class Buckets:
    """A partition of a run's timestamps into consecutive periods (e.g. UTC days): research
    keeps each combination's equity at the end of every period, which is enough for the
    overfitting statistics and small even for a million-bar run.

    ``index`` (int64 ``(n,)``, non-decreasing from 0) is each timestamp's period; ``ends``
    (``DatetimeIndex``, UTC) the last timestamp of every period.
    """

    def __init__(self, index: np.ndarray, ends: pd.DatetimeIndex) -> None:
        self.index = np.ascontiguousarray(index, dtype=np.int64)
        self.ends = ends

    def __len__(self) -> int:
        return len(self.ends)

    @classmethod
    def daily(cls, ts: np.ndarray) -> Buckets:
        """One period per UTC calendar day that has a timestamp (daily or coarser bars: one
        per bar)."""
        day = np.asarray(ts, dtype=np.int64) // (86_400 * 10**9)
        if len(day) == 0:
            return cls(np.empty(0, dtype=np.int64), pd.DatetimeIndex([], tz="UTC"))
        starts = np.flatnonzero(np.diff(day)) + 1
        index = np.zeros(len(day), dtype=np.int64)
        index[starts] = 1
        np.cumsum(index, out=index)
        last = np.append(starts - 1, len(day) - 1)
        return cls(index, pd.DatetimeIndex(np.asarray(ts, dtype=np.int64)[last], tz="UTC"))


def evaluate_params(
    market: MarketData,
    strategy_cls: type[Strategy],
    params: Sequence[Any],
    *,
    broker_params: SimulatedBroker.Params | None = None,
    initial_cash: float = 100_000.0,
    buckets: Buckets | None = None,
    data: SignalData | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of each validated ``params`` (``strategy_cls.Params`` instances) on
    ``market``, by the fastest path (fused, signals, event), as :func:`sweep` runs them.

    Returns ``(stats, bucket_equity)``: ``stats`` is ``(len(params), len(METRICS))`` in
    :data:`METRICS` order; ``bucket_equity`` is ``(len(params), len(buckets))``: the equity at
    the end of each bucket (empty columns without ``buckets``). ``data`` is the market's
    :func:`~tradeloom.vector.signals.signal_data` when the caller already has it.
    """
    broker = broker_params if broker_params is not None else SimulatedBroker.Params()
    costs = cost_spec(broker, initial_cash)
    data = data if data is not None else signal_data(market)
    return _run(market, data, strategy_cls, list(params), broker, costs, _periods_per_year(data),
                buckets)  # fmt: skip


def _run(
    market: MarketData,
    data: SignalData,
    strategy_cls: type[Strategy],
    params: list[Any],
    broker: SimulatedBroker.Params,
    costs: CostSpec,
    ppy: float,
    buckets: Buckets | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Statistics ``(len(params), len(METRICS))`` and bucket equity by the fastest path."""
    from tradeloom.vector import kernels as K

    columns = [
        K.S_TRADES, K.S_TOTAL_RETURN, K.S_SHARPE, K.S_SORTINO, K.S_MAX_DRAWDOWN, K.S_FINAL_EQUITY
    ]  # fmt: skip
    width = len(buckets) if buckets is not None else 0
    bucket_equity = np.full((len(params), width), np.nan)
    # None, not empty arrays, when not tracking: the kernels then compile without them.
    bucket = buckets.index if buckets is not None and width else None
    tracked = bucket_equity if bucket is not None else None
    fused = getattr(strategy_cls, "fused_sweep", None)
    if callable(fused):
        raw = fused(data, params, costs, ppy, bucket, tracked)
        if raw is not None:
            return np.asarray(raw)[:, columns], bucket_equity

    out = np.full((len(params), len(METRICS)), np.nan)
    batch: list[tuple[int, Any, tuple[np.ndarray, ...]]] = []
    per_combo = 4 * data.n * data.n_symbols
    batch_size = max(1, _BATCH_BYTES // max(per_combo, 1))
    for i, p in enumerate(params):
        strategy = strategy_cls(p)
        name = f"{strategy_cls.__name__}({_describe(p)})"
        signals = strategy_signals(strategy, data, name)
        if signals is None:
            out[i], bucket_equity[i] = _event_stats(
                market, strategy, broker, costs.initial_cash, buckets
            )
            continue
        batch.append((i, policy_spec(signals), signals.checked(data.shape, name)))
        if len(batch) == batch_size:
            _flush(batch, data, costs, ppy, out, columns, bucket, bucket_equity)
    _flush(batch, data, costs, ppy, out, columns, bucket, bucket_equity)
    return out, bucket_equity


def _flush(
    batch: list[tuple[int, Any, tuple[np.ndarray, ...]]],
    data: SignalData,
    costs: CostSpec,
    ppy: float,
    out: np.ndarray,
    columns: list[int],
    bucket: np.ndarray | None,
    bucket_equity: np.ndarray,
) -> None:
    from tradeloom.vector.kernels import simulate_batch_nb

    if not batch:
        return
    rows = [i for i, _, _ in batch]
    stacked = [np.stack([arrays[a] for _, _, arrays in batch]) for a in range(4)]
    policies = [policy for _, policy, _ in batch]
    chunk = np.full((len(batch), bucket_equity.shape[1]), np.nan) if bucket is not None else None
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
        bucket,
        chunk,
    )
    out[rows] = raw[:, columns]
    if chunk is not None:
        bucket_equity[rows] = chunk
    batch.clear()


def _event_stats(
    market: MarketData,
    strategy: Strategy,
    broker: SimulatedBroker.Params,
    initial_cash: float,
    buckets: Buckets | None,
) -> tuple[np.ndarray, np.ndarray]:
    """One combination through the event engine, for strategies without signals."""
    from tradeloom.api import run_backtest

    result = run_backtest(
        market, strategy, broker=SimulatedBroker(broker), initial_cash=initial_cash
    )
    m = result.metrics

    def nan(value: float | None) -> float:
        return math.nan if value is None else value

    stats = np.array(
        [m.num_trades, m.total_return, nan(m.sharpe), nan(m.sortino), m.max_drawdown,
         m.final_equity]
    )  # fmt: skip
    if buckets is None or not len(buckets):
        return stats, np.empty(0)
    curve = result.equity["equity"].to_numpy(dtype=np.float64)
    ends = np.append(np.flatnonzero(np.diff(buckets.index)), len(buckets.index) - 1)
    return stats, curve[ends]


def _describe(params: Any) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.model_dump().items())

"""Performance metrics of one backtest, computed from its equity curve, trades and fills.

Every formula, the annualisation rule and the conventions for undefined values are written
out in ``docs/metrics.md``; the field docstrings of :class:`Metrics` repeat the essentials.

Conventions shared by every metric:

* Returns are simple per-bar returns of the ``equity`` column; the first one is measured
  against the initial cash, so a curve of *n* bars has *n* returns.
* Annualised figures use ``periods_per_year`` (given, or inferred from the timestamps by
  :func:`infer_periods_per_year`); the risk-free rate is 0.
* A value that is mathematically undefined (a ratio with a zero denominator, a standard
  deviation of fewer than two returns, ...) is ``None``, never NaN or infinity. A standard
  deviation at or below :data:`ZERO_TOLERANCE` counts as zero, so a perfectly smooth curve
  reports no Sharpe rather than a meaningless 1e16.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from tradeloom.errors import DataError

__all__ = ["ZERO_TOLERANCE", "Metrics", "compute_metrics", "infer_periods_per_year"]

ZERO_TOLERANCE = 1e-12
"""Standard deviations (of per-bar returns) at or below this are treated as zero."""

JSON_SIGNIFICANT_DIGITS = 12
"""Floats in :meth:`Metrics.to_json` are rounded to this many significant digits, so the
output does not depend on the last bit of a floating-point sum."""

_DAY = pd.Timedelta(days=1)
_SATURDAY = 5


class Metrics(BaseModel):
    """Headline performance figures of one run. Immutable; ``None`` means *undefined*.

    Fractions are plain floats (``0.05`` is 5 %); money is in the account currency.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    total_return: float
    """``final_equity / initial_equity - 1``."""
    cagr: float | None
    """Compound annual growth rate from calendar time:
    ``(final / initial) ** (365.25 / elapsed_days) - 1`` with ``elapsed_days = end - start``.
    ``-1`` when the final equity is exactly zero; ``None`` when the run spans no time (one
    bar), the final equity is negative or the result overflows a float."""
    annual_volatility: float | None
    """Sample standard deviation (ddof=1) of per-bar returns times ``sqrt(periods_per_year)``.
    ``None`` with fewer than two returns or when an equity value before the last bar is zero
    or negative (the base of a return)."""
    sharpe: float | None
    """``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)``, risk-free rate 0. ``None`` when
    the volatility is undefined or zero (a flat or constant-growth curve)."""
    sortino: float | None
    """``mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(periods_per_year)``. ``None`` when no bar
    lost money (zero downside deviation) or returns are undefined."""
    max_drawdown: float
    """Depth of the worst drawdown: ``min(equity / running_peak - 1)``, a fraction <= 0. The
    running peak starts at the initial cash. ``0.0`` when the curve never fell below a peak."""
    max_drawdown_duration_bars: int
    """Longest span in bars from a peak to the bar that recovers it (equity back at or above
    the peak), or to the last bar if it never recovered. The initial cash is a peak placed just
    before the first bar. ``0`` when the curve never fell below a peak."""
    max_drawdown_duration_days: float
    """Calendar days of the span counted in ``max_drawdown_duration_bars`` (the first of the
    longest ones); a drawdown that starts from the initial cash is timed from the first bar."""
    calmar: float | None
    """``cagr / abs(max_drawdown)``. ``None`` when there was no drawdown or CAGR is undefined."""
    win_rate: float | None
    """Fraction of closed trades with ``pnl > 0`` (break-even trades are not wins). ``None``
    without closed trades."""
    profit_factor: float | None
    """Gross profit / gross loss over closed trades (sums of positive and of negative ``pnl``).
    ``None`` when no trade lost money (including when there are no trades)."""
    avg_trade: float | None
    """Mean net ``pnl`` per closed trade, in the account currency. ``None`` without trades."""
    avg_trade_return: float | None
    """Mean ``return_pct`` of closed trades (a fraction). ``None`` without trades."""
    exposure: float
    """Fraction of bars with a non-zero ``gross_exposure``."""
    turnover: float | None
    """Annualised turnover: total traded notional ``sum(|quantity * price|)`` over all fills,
    divided by the mean equity, times ``periods_per_year / bars``. ``1.0`` means the strategy
    trades its average equity once a year (a buy and its sale count twice). ``None`` when the
    mean equity is zero or negative."""
    num_trades: int
    """Number of closed trades (round trips)."""
    num_fills: int
    """Number of executions."""
    periods_per_year: float
    """Bars per year used to annualise (given or inferred)."""
    start: str
    """Timestamp of the first bar, ISO 8601 (UTC)."""
    end: str
    """Timestamp of the last bar, ISO 8601 (UTC)."""
    initial_equity: float
    """The initial cash."""
    final_equity: float
    """Equity at the last bar."""
    benchmark_return: float | None = None
    """Buy-and-hold return of the benchmark: last / first valid close - 1. ``None`` without a
    benchmark."""
    alpha: float | None = None
    """Annualised Jensen alpha against the benchmark, risk-free rate 0:
    ``(mean(r) - beta * mean(b)) * periods_per_year`` over bars 2..n (pairs of strategy and
    benchmark returns). ``None`` without a benchmark or when beta is undefined."""
    beta: float | None = None
    """``cov(r, b) / var(b)`` over the same pairs. ``None`` without a benchmark, with fewer
    than two pairs or when the benchmark is flat."""

    def display_rows(self) -> list[tuple[str, str]]:
        """Human-readable ``(label, value)`` rows, in a fixed order.

        Percentages carry ``%``, money has thousands separators, ``None`` shows as ``—``.
        """
        days = self.max_drawdown_duration_days
        return [
            ("Start", self.start),
            ("End", self.end),
            ("Initial equity", _money(self.initial_equity)),
            ("Final equity", _money(self.final_equity)),
            ("Total return", _pct(self.total_return)),
            ("CAGR", _pct(self.cagr)),
            ("Annual volatility", _pct(self.annual_volatility)),
            ("Sharpe ratio", _num(self.sharpe)),
            ("Sortino ratio", _num(self.sortino)),
            ("Max drawdown", _pct(self.max_drawdown)),
            (
                "Longest drawdown",
                f"{self.max_drawdown_duration_bars:,} bars ({days:,.1f} days)",
            ),
            ("Calmar ratio", _num(self.calmar)),
            ("Trades", f"{self.num_trades:,}"),
            ("Win rate", _pct(self.win_rate)),
            ("Profit factor", _num(self.profit_factor)),
            ("Average trade", _money(self.avg_trade)),
            ("Average trade return", _pct(self.avg_trade_return)),
            ("Exposure", _pct(self.exposure)),
            ("Turnover (per year)", _num(self.turnover, suffix="x")),
            ("Fills", f"{self.num_fills:,}"),
            ("Bars per year", f"{self.periods_per_year:,.6g}"),
            ("Benchmark return", _pct(self.benchmark_return)),
            ("Alpha (annual)", _pct(self.alpha)),
            ("Beta", _num(self.beta)),
        ]

    def to_dict(self) -> dict[str, Any]:
        """The metrics as a plain dict (field name → value)."""
        return self.model_dump()

    def to_json(self) -> str:
        """JSON with sorted keys, indent 2 and floats rounded to
        :data:`JSON_SIGNIFICANT_DIGITS` significant digits: identical inputs give
        byte-identical text. ``None`` is ``null``; NaN and infinity cannot occur."""
        data = {k: _stable_float(v) for k, v in self.model_dump().items()}
        return json.dumps(data, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False)


# --- formatting --------------------------------------------------------------------------------
_NONE = "—"


def _pct(value: float | None) -> str:
    return _NONE if value is None else f"{value * 100:,.2f}%"


def _num(value: float | None, *, suffix: str = "") -> str:
    return _NONE if value is None else f"{value:,.2f}{suffix}"


def _money(value: float | None) -> str:
    return _NONE if value is None else f"{value:,.2f}"


def _stable_float(value: Any) -> Any:
    if isinstance(value, float):
        rounded = float(f"{value:.{JSON_SIGNIFICANT_DIGITS}g}")
        return 0.0 if rounded == 0.0 else rounded  # no "-0.0"
    return value


# --- periods per year --------------------------------------------------------------------------
def _utc_naive(index: pd.Index) -> pd.DatetimeIndex:
    """``index`` as a tz-naive DatetimeIndex in UTC (naive input is taken to be UTC)."""
    idx = pd.DatetimeIndex(index)
    return idx.tz_convert("UTC").tz_localize(None) if idx.tz is not None else idx


def infer_periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year implied by the timestamps of ``index``.

    The rule, from the median spacing between consecutive distinct timestamps:

    * under 20 hours (intraday): the median number of bars per UTC calendar day that has
      bars, times the trading days per year;
    * 20 hours to 4 days (daily): the trading days per year;
    * 4 to 20 days: 52 (weekly); 20 to 60 days: 12 (monthly); 60 to 200 days: 4 (quarterly);
      longer: ``365.25 / median spacing in days``.

    Trading days per year are 365 when any bar falls on a **Saturday** (UTC), as crypto
    markets do, and 252 otherwise. Sunday alone does not count: FX and futures sessions open
    on Sunday evening UTC but do not trade on Saturdays.

    The median bars per day of a short intraday sample can be misleading (a single partial
    session); pass ``periods_per_year`` to :func:`compute_metrics` when you know better.

    Raises :class:`~tradeloom.errors.DataError` with fewer than two distinct timestamps.
    """
    idx = _utc_naive(index)
    stamps = idx.to_numpy()
    if len(stamps) > 1 and not (stamps[1:] > stamps[:-1]).all():
        stamps = np.unique(stamps)  # only unsorted or repeated input needs the O(n log n) pass
    if len(stamps) < 2:
        raise DataError(
            "cannot infer bars per year from fewer than two distinct timestamps; "
            "pass periods_per_year explicitly"
        )
    spacing_days = float(np.median(np.diff(stamps) / np.timedelta64(1, "D")))
    # 1970-01-01 was a Thursday: day numbers with (n + 3) % 7 == 5 are Saturdays.
    day_numbers = stamps.astype("datetime64[D]").astype(np.int64)
    days_per_year = 365.0 if bool(((day_numbers + 3) % 7 == _SATURDAY).any()) else 252.0
    if spacing_days < 20.0 / 24.0:
        days = stamps.astype("datetime64[D]")  # ascending, so a day's bars are contiguous
        starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
        per_day = np.diff(np.r_[starts, len(days)])
        return float(np.median(per_day)) * days_per_year
    if spacing_days < 4.0:
        return days_per_year
    if spacing_days < 20.0:
        return 52.0
    if spacing_days < 60.0:
        return 12.0
    if spacing_days < 200.0:
        return 4.0
    return 365.25 / spacing_days


# --- metrics -----------------------------------------------------------------------------------
def _floats(values: Any) -> np.ndarray:
    """A float64 array from a Series/array that may hold Decimals or ints."""
    return np.asarray(values, dtype=np.float64)


def _drawdown(curve: np.ndarray, days: Callable[[int], float]) -> tuple[float, int, float]:
    """Depth, longest duration in bars and that duration in days.

    ``curve[0]`` is the initial cash (a virtual point before the first bar); ``days(k)`` is the
    time of ``curve[k]`` in days since the first bar (``days(0) == days(1) == 0``).
    """
    peak = np.maximum.accumulate(curve)
    under = curve < peak
    np.divide(curve, peak, out=peak)  # in place: value / running peak
    depth = float(np.min(peak) - 1.0)
    del peak
    if not under.any():
        return 0.0, 0, 0.0
    # Position of the latest peak at or before each point, computed in place.
    peak_pos = np.arange(len(curve))
    peak_pos[under] = 0
    np.maximum.accumulate(peak_pos, out=peak_pos)
    # Recovered spans end at a point above water that follows one under water.
    ends = np.flatnonzero(~under[1:] & under[:-1]) + 1
    starts = peak_pos[ends - 1]
    if under[-1]:
        ends = np.append(ends, len(curve) - 1)
        starts = np.append(starts, peak_pos[-1])
    spans = ends - starts
    longest = int(np.argmax(spans))
    duration_days = days(int(ends[longest])) - days(int(starts[longest]))
    return depth, int(spans[longest]), duration_days


def _cagr(growth: float, elapsed_days: float) -> float:
    return float(growth ** (365.25 / elapsed_days) - 1.0)


def _std(values: np.ndarray) -> float | None:
    if len(values) < 2:
        return None
    return float(np.std(values, ddof=1))


def _ratio(num: float, den: float | None) -> float | None:
    if den is None or den <= ZERO_TOLERANCE:
        return None
    return num / den


def compute_metrics(
    equity: pd.DataFrame,
    trades: pd.DataFrame,
    fills: pd.DataFrame,
    *,
    initial_cash: float,
    benchmark: pd.Series | None = None,
    periods_per_year: float | None = None,
) -> Metrics:
    """Compute :class:`Metrics` from a run's outputs.

    ``equity`` needs a DatetimeIndex and the columns ``equity`` and ``gross_exposure``;
    ``trades`` the columns ``pnl`` and ``return_pct`` (ignored when empty); ``fills`` the
    columns ``quantity`` and ``price`` (ignored when empty). ``benchmark`` holds benchmark
    close prices on (or reindexable to) the equity index. ``periods_per_year`` defaults to
    :func:`infer_periods_per_year` of the index (252 for a single bar).

    Raises :class:`~tradeloom.errors.DataError` for an empty curve or a non-positive
    initial cash.
    """
    if len(equity) == 0:
        raise DataError("cannot compute metrics of an empty equity curve (no bars were run)")
    if not initial_cash > 0:
        raise DataError(f"initial cash must be positive to compute returns, got {initial_cash}")
    index = _utc_naive(equity.index)
    if periods_per_year is None:
        distinct = len(index) > 1 and index.min() != index.max()  # no hash table of 1M stamps
        periods_per_year = infer_periods_per_year(index) if distinct else 252.0
    elif not periods_per_year > 0:
        raise DataError(f"periods_per_year must be positive, got {periods_per_year}")
    ppy = float(periods_per_year)
    sqrt_ppy = math.sqrt(ppy)

    values = _floats(equity["equity"])
    n = len(values)
    initial = float(initial_cash)
    final = float(values[-1])
    curve = np.concatenate(([initial], values))

    # Returns: undefined as soon as a base is zero or negative.
    valid_returns = bool(np.all(curve[:-1] > 0))
    returns = np.empty(0)
    if valid_returns:
        returns = curve[1:] / curve[:-1]
        returns -= 1.0  # in place: million-bar curves make every temporary count

    total_return = final / initial - 1.0
    elapsed_days = float((index[-1] - index[0]) / _DAY)
    cagr: float | None
    try:
        cagr = None if elapsed_days <= 0 or final < 0 else _cagr(final / initial, elapsed_days)
    except OverflowError:  # astronomic growth over a few days
        cagr = None

    std = _std(returns) if valid_returns else None
    mean = float(np.mean(returns)) if len(returns) else 0.0
    annual_volatility = None if std is None else std * sqrt_ppy
    sharpe_raw = _ratio(mean, std)
    sharpe = None if sharpe_raw is None else sharpe_raw * sqrt_ppy
    sortino: float | None = None
    if len(returns):
        losses = np.minimum(returns, 0.0)
        losses *= losses
        downside = math.sqrt(float(np.mean(losses)))
        del losses
        sortino_raw = _ratio(mean, downside)
        sortino = None if sortino_raw is None else sortino_raw * sqrt_ppy

    stamps = index.as_unit(
        "ns"
    ).asi8  # only two of them are needed, for the drawdown's length in days

    def days(k: int) -> float:  # time of curve[k] in days since the first bar
        return 0.0 if k == 0 else float(stamps[k - 1] - stamps[0]) / _DAY.value

    max_dd, dd_bars, dd_days = _drawdown(curve, days)
    calmar = None if cagr is None or max_dd == 0.0 else cagr / abs(max_dd)

    win_rate = profit_factor = avg_trade = avg_trade_return = None
    if len(trades):
        pnl = _floats(trades["pnl"])
        win_rate = float(np.mean(pnl > 0))
        gross_loss = -float(pnl[pnl < 0].sum())
        profit_factor = _finite(float(pnl[pnl > 0].sum()) / gross_loss) if gross_loss > 0 else None
        avg_trade = float(np.mean(pnl))
        avg_trade_return = float(np.mean(_floats(trades["return_pct"])))

    gross = np.nan_to_num(_floats(equity["gross_exposure"]))
    exposure = float(np.mean(gross != 0))

    notional = 0.0
    if len(fills):
        notional = float(np.abs(_floats(fills["quantity"]) * _floats(fills["price"])).sum())
    mean_equity = float(np.mean(values))
    turnover = notional / mean_equity * ppy / n if mean_equity > 0 else None

    benchmark_return = alpha = beta = None
    if benchmark is not None:
        benchmark_return, alpha, beta = _benchmark_stats(
            benchmark, equity.index, returns if valid_returns else None, ppy
        )

    return Metrics(
        total_return=total_return,
        cagr=cagr,
        annual_volatility=annual_volatility,
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown=max_dd,
        max_drawdown_duration_bars=dd_bars,
        max_drawdown_duration_days=dd_days,
        calmar=calmar,
        win_rate=win_rate,
        profit_factor=profit_factor,
        avg_trade=avg_trade,
        avg_trade_return=avg_trade_return,
        exposure=exposure,
        turnover=turnover,
        num_trades=len(trades),
        num_fills=len(fills),
        periods_per_year=ppy,
        start=pd.Timestamp(index[0]).tz_localize("UTC").isoformat(),
        end=pd.Timestamp(index[-1]).tz_localize("UTC").isoformat(),
        initial_equity=initial,
        final_equity=final,
        benchmark_return=benchmark_return,
        alpha=alpha,
        beta=beta,
    )


def _benchmark_stats(
    benchmark: pd.Series, index: pd.Index, returns: np.ndarray | None, ppy: float
) -> tuple[float | None, float | None, float | None]:
    """Buy-and-hold return, annualised Jensen alpha and beta of the strategy's returns."""
    if not benchmark.index.equals(index):
        benchmark = benchmark.reindex(index)
    prices = _floats(benchmark)
    finite = np.flatnonzero(np.isfinite(prices))
    bench_return = None
    if len(finite) and prices[finite[0]] > 0:
        bench_return = float(prices[finite[-1]] / prices[finite[0]] - 1.0)
    if returns is None or len(prices) < 2:
        return bench_return, None, None
    with np.errstate(divide="ignore", invalid="ignore"):
        bench_returns = prices[1:] / prices[:-1] - 1.0
    strat = returns[1:]  # returns[0] is relative to the initial cash, before the first close
    pairs = np.isfinite(bench_returns) & np.isfinite(strat)
    r, b = strat[pairs], bench_returns[pairs]
    if len(b) < 2:
        return bench_return, None, None
    var_b = float(np.var(b, ddof=1))
    if var_b <= ZERO_TOLERANCE**2:
        return bench_return, None, None
    beta = float(np.sum((r - r.mean()) * (b - b.mean())) / (len(b) - 1) / var_b)
    alpha = float((r.mean() - beta * b.mean()) * ppy)
    return bench_return, alpha, beta


def _finite(value: float) -> float | None:
    """``value``, or None when it overflowed (e.g. a profit over a denormal loss)."""
    return value if math.isfinite(value) else None

"""Stress tests: how a result holds up when luck, ordering or market conditions change.

Three families, numpy only, every random function taking ``seed`` (an ``int`` or a
:class:`numpy.random.Generator`; the same seed gives the same result):

Trade resampling (Monte Carlo of the trade sequence)
----------------------------------------------------
:func:`trade_resampling` reorders the trades' P&L (money) — a random permutation per path, or a
bootstrap with replacement — and replays them on ``initial_equity``::

    E_0 = initial_equity,  E_k = E_0 + Σ_{j ≤ k} pnl_{π(j)}
    peak_k = max(E_0, …, E_k),  DD = max_k (peak_k − E_k) / peak_k
    final return = E_n / E_0 − 1

A permutation keeps the final equity (the sum is invariant) and only moves the drawdown; the
bootstrap also moves the final equity.

Return-series bootstrap
-----------------------
:func:`block_bootstrap` resamples a per-period return series in blocks so that short-range
dependence (volatility clusters, autocorrelation) survives: the moving-block bootstrap (Künsch,
1989) draws blocks of ``block`` consecutive returns with replacement; the stationary bootstrap
(Politis & Romano, 1994) draws blocks of geometric length with mean ``block``, wrapping around
the end of the series. :func:`bootstrap_stats` summarises the paths (total return, annualised
Sharpe ratio, max drawdown).

Injected scenarios
------------------
:func:`gap`, :func:`volatility` and :func:`liquidity` return a modified copy of a bar frame
(columns ``open, high, low, close, volume``, UTC :class:`pandas.DatetimeIndex`): a price gap, a
volatility burst, a volume drought.

See ``docs/stress.md`` for how to read the results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

PERCENTILES: tuple[int, ...] = (5, 25, 50, 75, 95)
"""The percentiles every summary reports."""
CHUNK_PATHS = 1_000
"""Paths simulated at a time by :func:`trade_resampling` (bounds memory to about
``CHUNK_PATHS × n_trades`` floats)."""
PRICE_COLUMNS = ("open", "high", "low", "close")

SeedLike = int | np.random.Generator


class StressInputError(ValueError):
    """Bad input to a stress function; ``field`` names the argument at fault and the message
    starts with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _rng(seed: SeedLike) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise StressInputError("seed", f"expected an int or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise StressInputError(name, f"expected a positive integer, got {value!r}")
    return int(value)


def _finite_vector(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise StressInputError(name, f"expected a 1-D sequence, got shape {arr.shape}")
    if arr.size == 0:
        raise StressInputError(name, "is empty")
    if not np.all(np.isfinite(arr)):
        raise StressInputError(name, "contains NaN or inf")
    return arr


def _percentiles(values: np.ndarray) -> dict[int, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {p: float("nan") for p in PERCENTILES}
    return {
        p: float(v) for p, v in zip(PERCENTILES, np.percentile(finite, PERCENTILES), strict=True)
    }


def _max_drawdown_of_equity(equity: np.ndarray) -> np.ndarray:
    """Max drawdown (fraction of the running peak) along the last axis of ``equity``."""
    peak = np.maximum.accumulate(equity, axis=-1)
    return np.max((peak - equity) / peak, axis=-1)


# --------------------------------------------------------------------------------------------
# Trade resampling
# --------------------------------------------------------------------------------------------


@dataclass
class ResamplingResult:
    """What :func:`trade_resampling` found. Drawdowns and returns are fractions (0.2 = 20 %)."""

    n_paths: int
    n_trades: int
    replace: bool
    initial_equity: float
    loss_threshold: float | None
    drawdown_percentiles: dict[int, float]
    """Percentiles (5, 25, 50, 75, 95) of the per-path max drawdown."""
    return_percentiles: dict[int, float]
    """Percentiles (5, 25, 50, 75, 95) of the per-path final return ``E_n / E_0 − 1``."""
    p_loss: float
    """Fraction of paths whose final loss exceeds ``loss_threshold`` (final return
    ``< −loss_threshold``), or which end with any loss (final return ``< 0``) when it is None."""
    original_max_drawdown: float
    """Max drawdown of the trades in the order given."""
    original_drawdown_percentile: float
    """Where the original drawdown sits among the paths, 0–100: the share of paths with a
    smaller drawdown plus half the share with an equal one (× 100). 50 = typical; near 0 = the
    backtest's order was luckier than almost every reordering."""
    final_equity: np.ndarray = field(repr=False)
    final_return: np.ndarray = field(repr=False)
    max_drawdown: np.ndarray = field(repr=False)
    loss: np.ndarray = field(repr=False)
    """Per-path flag: the final loss exceeded the threshold (see ``p_loss``)."""


def trade_resampling(
    trade_pnls: Any,
    initial_equity: float,
    *,
    n_paths: int = 10_000,
    seed: SeedLike = 0,
    loss_threshold: float | None = None,
    replace: bool = False,
) -> ResamplingResult:
    """Monte Carlo of the trade sequence.

    Each of ``n_paths`` paths applies the trades' P&L (money, in the order of a random
    permutation, or drawn with replacement when ``replace=True``) to ``initial_equity`` and
    records its final equity, its max drawdown (fraction of the running peak, the peak starting
    at ``initial_equity``) and whether the final loss exceeded ``loss_threshold`` (fraction of
    ``initial_equity``; None = any loss). Paths are simulated :data:`CHUNK_PATHS` at a time,
    vectorised within a chunk.
    """
    pnls = _finite_vector(trade_pnls, "trade_pnls")
    equity0 = _finite_number(initial_equity, "initial_equity")
    if not np.isfinite(equity0) or equity0 <= 0:
        raise StressInputError("initial_equity", f"must be positive and finite, got {equity0}")
    n_paths = _positive_int(n_paths, "n_paths")
    if loss_threshold is not None:
        threshold = _finite_number(loss_threshold, "loss_threshold")
        if threshold < 0:
            raise StressInputError(
                "loss_threshold", f"must be a fraction >= 0 or None, got {loss_threshold!r}"
            )
    else:
        threshold = 0.0
    rng = _rng(seed)
    n = pnls.size

    final_equity = np.empty(n_paths)
    max_dd = np.empty(n_paths)
    for lo in range(0, n_paths, CHUNK_PATHS):
        rows = min(CHUNK_PATHS, n_paths - lo)
        if replace:
            sample = pnls[rng.integers(0, n, size=(rows, n))]
        else:
            sample = rng.permuted(np.broadcast_to(pnls, (rows, n)), axis=1)
        equity = np.empty((rows, n + 1))
        equity[:, 0] = equity0
        np.cumsum(sample, axis=1, out=equity[:, 1:])
        equity[:, 1:] += equity0
        final_equity[lo : lo + rows] = equity[:, -1]
        max_dd[lo : lo + rows] = _max_drawdown_of_equity(equity)

    final_return = final_equity / equity0 - 1.0
    loss = final_return < -threshold
    original = float(
        _max_drawdown_of_equity(np.concatenate(([equity0], equity0 + np.cumsum(pnls))))
    )
    below = np.count_nonzero(max_dd < original)
    equal = np.count_nonzero(max_dd == original)
    return ResamplingResult(
        n_paths=n_paths,
        n_trades=n,
        replace=bool(replace),
        initial_equity=equity0,
        loss_threshold=None if loss_threshold is None else threshold,
        drawdown_percentiles=_percentiles(max_dd),
        return_percentiles=_percentiles(final_return),
        p_loss=float(np.mean(loss)),
        original_max_drawdown=original,
        original_drawdown_percentile=100.0 * (below + 0.5 * equal) / n_paths,
        final_equity=final_equity,
        final_return=final_return,
        max_drawdown=max_dd,
        loss=loss,
    )


# --------------------------------------------------------------------------------------------
# Block bootstrap of a return series
# --------------------------------------------------------------------------------------------


def block_bootstrap(
    returns: Any,
    *,
    block: int = 20,
    n_paths: int = 1_000,
    seed: SeedLike = 0,
    length: int | None = None,
    stationary: bool = False,
) -> np.ndarray:
    """Resample a per-period return series in blocks; returns an ``(n_paths, length)`` array.

    * ``stationary=False`` (moving-block bootstrap): ``ceil(length / block)`` blocks of
      ``block`` consecutive returns, each starting uniformly at ``0 … len(returns) − block``,
      concatenated and cut to ``length``. Needs ``block <= len(returns)``.
    * ``stationary=True`` (Politis–Romano): each period starts a new block with probability
      ``1 / block`` (the first always does) at a uniform position, otherwise continues with the
      next return, wrapping from the end of the series to its start. Block lengths are
      geometric with mean ``block``.

    ``length`` defaults to ``len(returns)``.
    """
    r = _finite_vector(returns, "returns")
    n = r.size
    block = _positive_int(block, "block")
    n_paths = _positive_int(n_paths, "n_paths")
    length = n if length is None else _positive_int(length, "length")
    rng = _rng(seed)

    if not stationary:
        if block > n:
            raise StressInputError("block", f"{block} is longer than the series ({n} returns)")
        n_blocks = -(-length // block)
        starts = rng.integers(0, n - block + 1, size=(n_paths, n_blocks))
        idx = (starts[:, :, None] + np.arange(block)).reshape(n_paths, n_blocks * block)
        return r[idx[:, :length]]

    new_block = rng.random((n_paths, length)) < 1.0 / block
    new_block[:, 0] = True
    starts = rng.integers(0, n, size=(n_paths, length))
    pos = np.arange(length)
    block_start = np.maximum.accumulate(np.where(new_block, pos, 0), axis=1)
    origin = np.take_along_axis(starts, block_start, axis=1)
    idx = (origin + (pos - block_start)) % n
    return r[idx]


@dataclass
class BootstrapStats:
    """Summary of bootstrapped return paths (:func:`bootstrap_stats`)."""

    n_paths: int
    total_return: dict[int, float]
    """Percentiles of ``Π(1 + r) − 1`` per path."""
    sharpe: dict[int, float]
    """Percentiles of the annualised Sharpe ratio ``mean / std(ddof=1) · √periods_per_year``
    (paths with zero spread are left out)."""
    max_drawdown: dict[int, float]
    """Percentiles of the max drawdown of the compounded equity ``Π(1 + r)`` (start 1)."""
    total_returns: np.ndarray = field(repr=False)
    sharpes: np.ndarray = field(repr=False)
    """NaN where a path has zero spread or a single period."""
    max_drawdowns: np.ndarray = field(repr=False)


def bootstrap_stats(paths: Any, periods_per_year: float) -> BootstrapStats:
    """Percentiles (5, 25, 50, 75, 95) of total return, annualised Sharpe ratio and max
    drawdown across ``paths`` (``(n_paths, length)`` simple per-period returns, e.g. from
    :func:`block_bootstrap`; a 1-D array is one path)."""
    arr = np.asarray(paths, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.size == 0:
        raise StressInputError("paths", f"expected a non-empty 2-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise StressInputError("paths", "contains NaN or inf")
    ppy = float(periods_per_year)
    if not np.isfinite(ppy) or ppy <= 0:
        raise StressInputError("periods_per_year", f"must be positive, got {periods_per_year!r}")

    growth = np.cumprod(1.0 + arr, axis=1)
    total = growth[:, -1] - 1.0
    equity = np.concatenate((np.ones((arr.shape[0], 1)), growth), axis=1)
    max_dd = _max_drawdown_of_equity(equity)
    if arr.shape[1] > 1:
        std = arr.std(axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            sharpe = np.where(std > 0, arr.mean(axis=1) / std * np.sqrt(ppy), np.nan)
    else:
        sharpe = np.full(arr.shape[0], np.nan)
    return BootstrapStats(
        n_paths=arr.shape[0],
        total_return=_percentiles(total),
        sharpe=_percentiles(sharpe),
        max_drawdown=_percentiles(max_dd),
        total_returns=total,
        sharpes=sharpe,
        max_drawdowns=max_dd,
    )


# --------------------------------------------------------------------------------------------
# Injected scenarios on a bar frame
# --------------------------------------------------------------------------------------------


def _check_frame(frame: Any) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise StressInputError("frame", f"expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in (*PRICE_COLUMNS, "volume") if c not in frame.columns]
    if missing:
        raise StressInputError("frame", f"missing columns {missing}")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise StressInputError("frame", "index is not a DatetimeIndex")
    if frame.empty:
        raise StressInputError("frame", "is empty")
    if not frame.index.is_monotonic_increasing:
        raise StressInputError("frame", "index is not sorted")


def _timestamp(value: Any, frame: pd.DataFrame, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise StressInputError(name, f"not a timestamp: {value!r}") from exc
    if ts is pd.NaT:
        raise StressInputError(name, "is NaT")
    tz = frame.index.tz
    if tz is not None:
        ts = ts.tz_localize("UTC") if ts.tz is None else ts
        ts = ts.tz_convert(tz)
    elif ts.tz is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _window(frame: pd.DataFrame, start: Any, end: Any) -> np.ndarray:
    lo = _timestamp(start, frame, "start")
    hi = _timestamp(end, frame, "end")
    if hi < lo:
        raise StressInputError("end", f"{hi} is before start {lo}")
    mask = np.asarray((frame.index >= lo) & (frame.index <= hi))
    if not mask.any():
        raise StressInputError("start", f"no bar between {lo} and {hi}")
    return mask


def _finite_number(value: Any, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise StressInputError(name, f"expected a number, got {value!r}") from exc
    if not np.isfinite(out):
        raise StressInputError(name, f"must be finite, got {value!r}")
    return out


def gap(frame: pd.DataFrame, at: Any, pct: float) -> pd.DataFrame:
    """A price gap of ``pct`` (−0.1 = −10 %) at ``at``: open, high, low and close of every bar
    with ``ts >= at`` are multiplied by ``1 + pct``; earlier bars and volumes are unchanged.

    ``at`` must fall after the first bar and on or before the last (otherwise nothing or
    everything would move and there would be no gap); ``pct > -1``.
    """
    _check_frame(frame)
    ts = _timestamp(at, frame, "at")
    pct = _finite_number(pct, "pct")
    if pct <= -1:
        raise StressInputError("pct", f"must be > -1 (prices stay positive), got {pct}")
    mask = np.asarray(frame.index >= ts)
    if not mask.any():
        raise StressInputError("at", f"{ts} is after the last bar {frame.index[-1]}")
    if mask.all():
        raise StressInputError("at", f"{ts} is on or before the first bar {frame.index[0]}")
    out = frame.copy()
    cols = list(PRICE_COLUMNS)
    out.loc[mask, cols] = frame.loc[mask, cols].to_numpy(dtype=float) * (1.0 + pct)
    return out


def volatility(frame: pd.DataFrame, start: Any, end: Any, k: float) -> pd.DataFrame:
    """A volatility burst (``k > 1``) or lull (``k < 1``) between ``start`` and ``end``
    (inclusive).

    For every bar ``t`` in the window the close-to-close log return ``ln(C_t / C_{t−1})`` is
    multiplied by ``k`` (the first bar of the frame has none); closes are rebuilt from the new
    returns, so every bar after the window is the original times one constant factor (the path
    is continuous, returns after the window are unchanged). The bar's open, high and low keep
    their log distance to the close scaled by ``k`` — ``O' = C'·(O/C)^k`` and likewise for high
    and low — so the ranges widen with the returns and ``low <= open, close <= high`` still
    holds. Bars before the window and all volumes are unchanged.
    """
    _check_frame(frame)
    mask = _window(frame, start, end)
    k = _finite_number(k, "k")
    if k <= 0:
        raise StressInputError("k", f"must be > 0, got {k}")
    prices = frame[list(PRICE_COLUMNS)].to_numpy(dtype=float)
    if np.any(prices <= 0) or not np.all(np.isfinite(prices)):
        raise StressInputError("frame", "prices must be positive and finite")
    close = prices[:, 3]
    log_ret = np.zeros(close.size)
    log_ret[1:] = np.diff(np.log(close))
    extra = np.cumsum(np.where(mask, (k - 1.0) * log_ret, 0.0))
    factor = np.exp(extra)
    factor[np.cumsum(mask) == 0] = 1.0  # bars before the window: exactly unchanged
    new = prices * factor[:, None]
    inside = mask
    new_close = new[inside, 3]
    for j in range(3):  # open, high, low
        new[inside, j] = new_close * (prices[inside, j] / close[inside]) ** k
    out = frame.copy()
    out[list(PRICE_COLUMNS)] = new
    return out


def liquidity(frame: pd.DataFrame, start: Any, end: Any, fraction: float) -> pd.DataFrame:
    """A liquidity drought: ``volume`` of the bars between ``start`` and ``end`` (inclusive)
    multiplied by ``fraction`` (``>= 0``; 0.1 = a tenth of the usual volume). Prices are
    unchanged. Meant for the volume-participation fill model, whose fills shrink with the
    volume."""
    _check_frame(frame)
    mask = _window(frame, start, end)
    fraction = _finite_number(fraction, "fraction")
    if fraction < 0:
        raise StressInputError("fraction", f"must be >= 0, got {fraction}")
    out = frame.copy()
    out["volume"] = out["volume"].astype(float)
    out.loc[mask, "volume"] = frame.loc[mask, "volume"].to_numpy(dtype=float) * fraction
    return out


__all__ = [
    "CHUNK_PATHS",
    "PERCENTILES",
    "BootstrapStats",
    "ResamplingResult",
    "StressInputError",
    "block_bootstrap",
    "bootstrap_stats",
    "gap",
    "liquidity",
    "trade_resampling",
    "volatility",
]

"""numba kernels behind the strategies' ``signals`` (the vector engine's contract).

Each kernel reproduces its strategy's ``on_bar`` arithmetic operation for operation, so the
signals are identical to the event engine's decisions, not merely close: a moving-average
difference that is exactly zero in real arithmetic must round to the same side of zero in
both engines. Every kernel walks a symbol's column of the merged timeline and skips the NaN
rows where the symbol has no bar, so indicators run on each symbol's own bars.

Imported lazily by the strategies (``import tradeloom_strategies`` never imports numba);
compiled on first use and cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tradeloom.vector.fsum import fsum_nb
from tradeloom.vector.kernels import (
    N_EQUITY_COLS,
    N_ORDER_COLS,
    N_STATS,
    N_TRADE_COLS,
    CostSpec,
    PolicySpec,
    simulate_nb,
)

__all__ = ["donchian_signals_nb", "rsi_signals_nb", "sma_signals_nb", "sma_sweep_nb"]


@njit(cache=True)
def sma_signals_nb(
    close: np.ndarray,
    fast: int,
    slow: int,
    long_entry: np.ndarray,
    long_exit: np.ndarray,
    short_entry: np.ndarray,
    short_exit: np.ndarray,
) -> None:
    """SMA crossover signals, exactly as ``SmaCrossover.on_bar`` computes them.

    Running sums over a ring buffer of the last ``slow`` closes, re-anchored with an exactly
    rounded sum (``math.fsum``) every ``slow`` bars; ``d = sum_fast / fast - sum_slow / slow``
    from the ``slow``-th bar; cross up ``d[t] > 0 >= d[t-1]`` sets ``long_entry`` and
    ``short_exit``, cross down ``d[t] < 0 <= d[t-1]`` sets ``short_entry`` and ``long_exit``
    (the policy decides which of them apply: long only, long/short, retargeting).
    """
    n, m = close.shape
    ring = np.empty(slow)
    window = np.empty(fast)
    scratch = np.empty(slow)
    for j in range(m):
        count = 0
        head = 0  # ring slot of the next close (= count % slow, kept without a division)
        sum_fast = 0.0
        sum_slow = 0.0
        prev = 0.0
        has_prev = False
        for k in range(n):
            c = close[k, j]
            if c != c:
                continue
            if count >= fast:
                out = head - fast  # slot of the close leaving the fast window
                sum_fast -= ring[out + slow if out < 0 else out]
            if count >= slow:
                sum_slow -= ring[head]  # the oldest close, leaving the slow window
            ring[head] = c
            sum_fast += c
            sum_slow += c
            count += 1
            head += 1
            if head == slow:  # count % slow == 0: the strategy's exact re-anchoring
                head = 0
                sum_slow = fsum_nb(ring, scratch)
                for i in range(fast):
                    window[i] = ring[slow - fast + i]
                sum_fast = fsum_nb(window, scratch)
            if count < slow:
                continue
            d = sum_fast / fast - sum_slow / slow
            if has_prev:
                if d > 0.0 and prev <= 0.0:
                    long_entry[k, j] = True
                    short_exit[k, j] = True
                elif d < 0.0 and prev >= 0.0:
                    short_entry[k, j] = True
                    long_exit[k, j] = True
            prev = d
            has_prev = True


@njit(cache=True)
def donchian_signals_nb(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    entry: int,
    exit_: int,
    long_entry: np.ndarray,
    long_exit: np.ndarray,
    short_entry: np.ndarray,
    short_exit: np.ndarray,
) -> None:
    """Donchian breakout signals, as ``DonchianBreakout.on_bar`` decides them.

    With ``i`` the symbol's own bar index, channels over its ``N`` (``M``) previous bars:
    ``long_entry`` = ``i >= N and close > max(high)``, ``short_entry`` = ``i >= N and
    close < min(low)``, ``long_exit`` = ``i >= M and close < min(low over M)``,
    ``short_exit`` = ``i >= M and close > max(high over M)``.
    """
    n, m = close.shape
    rows = np.empty(n, dtype=np.int64)
    for j in range(m):
        count = 0
        for k in range(n):
            c = close[k, j]
            if c != c:
                continue
            rows[count] = k
            i = count
            count += 1
            if i >= entry:
                upper = high[rows[i - entry], j]
                lower = low[rows[i - entry], j]
                for b in range(i - entry + 1, i):
                    upper = max(upper, high[rows[b], j])
                    lower = min(lower, low[rows[b], j])
                long_entry[k, j] = c > upper
                short_entry[k, j] = c < lower
            if i >= exit_:
                upper = high[rows[i - exit_], j]
                lower = low[rows[i - exit_], j]
                for b in range(i - exit_ + 1, i):
                    upper = max(upper, high[rows[b], j])
                    lower = min(lower, low[rows[b], j])
                short_exit[k, j] = c > upper
                long_exit[k, j] = c < lower


@njit(cache=True)
def rsi_signals_nb(
    close: np.ndarray,
    period: int,
    oversold: float,
    overbought: float,
    exit_level: float,
    long_entry: np.ndarray,
    long_exit: np.ndarray,
    short_entry: np.ndarray,
    short_exit: np.ndarray,
) -> None:
    """RSI mean-reversion signals, as ``RsiMeanReversion.on_bar`` decides them.

    Wilder's RSI with the strategy's incremental arithmetic; from the symbol's bar ``period``:
    ``long_entry`` = RSI < oversold, ``short_entry`` = RSI > overbought, ``long_exit`` = RSI >
    exit level, ``short_exit`` = RSI < exit level.
    """
    n, m = close.shape
    for j in range(m):
        prev_close = 0.0
        seen = False
        changes = 0
        avg_gain = 0.0
        avg_loss = 0.0
        for k in range(n):
            c = close[k, j]
            if c != c:
                continue
            if seen:
                change = c - prev_close
                if change > 0:
                    gain = change
                    loss = 0.0
                else:
                    gain = 0.0
                    loss = -change
                changes += 1
                if changes <= period:
                    avg_gain += gain
                    avg_loss += loss
                    if changes == period:
                        avg_gain /= period
                        avg_loss /= period
                else:
                    avg_gain = (avg_gain * (period - 1) + gain) / period
                    avg_loss = (avg_loss * (period - 1) + loss) / period
            prev_close = c
            seen = True
            if changes < period:
                continue
            if avg_loss == 0.0:
                rsi = 50.0 if avg_gain == 0.0 else 100.0
            else:
                rsi = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
            long_entry[k, j] = rsi < oversold
            short_entry[k, j] = rsi > overbought
            long_exit[k, j] = rsi > exit_level
            short_exit[k, j] = rsi < exit_level


@njit(cache=True, parallel=True)
def sma_sweep_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    fast: np.ndarray,
    slow: np.ndarray,
    long_short: np.ndarray,
    quantity: np.ndarray,
    fraction: np.ndarray,
    costs: CostSpec,
    periods_per_year: float,
    bucket: np.ndarray,
    bucket_equity: np.ndarray,
) -> np.ndarray:
    """Statistics (``tradeloom.vector.kernels.S_*``) of SMA crossovers for every
    ``(fast[i], slow[i], long_short[i], quantity[i], fraction[i])``, in parallel: each
    combination computes its signals and simulates them in one compiled call. ``bucket`` and
    ``bucket_equity`` (``(c, b)``; both ``None`` when not kept) as in ``simulate_batch_nb``."""
    c = len(fast)
    n, m = close.shape
    out = np.empty((c, N_STATS))
    no_equity = np.empty((0, N_EQUITY_COLS))
    no_orders = np.empty((0, N_ORDER_COLS))
    no_fills = np.empty(0, dtype=np.int64)
    no_trades = np.empty((0, N_TRADE_COLS))
    for i in prange(c):
        le = np.zeros((n, m), dtype=np.bool_)
        lx = np.zeros((n, m), dtype=np.bool_)
        se = np.zeros((n, m), dtype=np.bool_)
        sx = np.zeros((n, m), dtype=np.bool_)
        sma_signals_nb(close, fast[i], slow[i], le, lx, se, sx)
        policy = PolicySpec(long_short[i], long_short[i], quantity[i], fraction[i])
        out[i] = simulate_nb(
            open_, high, low, close, le, lx, se, sx, policy, costs, periods_per_year, False,
            no_equity, no_orders, no_fills, no_trades, bucket, bucket_equity, i,
        )  # fmt: skip
    return out

"""numba kernels of the vector engine: the simulated broker and ledger, bar by bar.

:func:`simulate_nb` replays the event engine's conventions on the merged timeline (see
``execution/simulated.py`` and ``portfolio/ledger.py``, which it mirrors operation for
operation so that float results are identical, not just close). At each timestamp ``k``:

1. for each symbol with a bar (in column order, i.e. sorted symbols): count the bar, fill its
   working market order at the bar's open (``fill_at = "next_open"``) with slippage against
   the trader and fees — or cancel it when a buy that opens or adds to a long costs more than
   the cash — then mark the symbol at its close;
2. for each symbol with a bar: apply the signals (:class:`~tradeloom.vector.signals.Signals`)
   to the position held, size the order like ``position_size`` and submit it: a buy that opens
   or adds to a long is rejected when its estimated cost (close with slippage, plus fee)
   exceeds the cash not reserved by working buys; a buy that only covers a short never is;
3. with ``fill_at = "close"``: fill the orders just sent at this bar's close;
4. record cash, position value (at the latest closes), equity and gross exposure.

Orders still working after the last timestamp are canceled. With ``record``, results go to
caller-allocated record arrays (columns named by the ``O_*``, ``T_*`` and ``E_*`` constants)
and the caller computes metrics from them; without it (sweeps) nothing per bar is written and
the returned statistics (``S_*``) include the Sharpe ratio and maximum drawdown, computed on
the fly with :mod:`tradeloom.report.metrics`' definitions (equal to them up to the rounding of
the sums).

Kernels are compiled lazily on first call and cached on disk (``cache=True``); importing this
module compiles nothing. Inputs are validated by the Python callers
(:func:`tradeloom.vector.run_signals`, :func:`tradeloom.vector.sweep`), not here.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

__all__ = [
    "N_STATS",
    "CostSpec",
    "PolicySpec",
    "simulate_batch_nb",
    "simulate_nb",
]

QTY_EPSILON = 1e-9
"""Quantities closer than this are equal (the ledger's and the broker's tolerance)."""
UNIT_EPSILON = 1e-9
"""Slack when rounding a size down to whole units (``position_size``'s)."""
CASH_EPSILON = 1e-9
"""Slack of the broker's cash checks."""
ZERO_TOLERANCE = 1e-12
"""Standard deviations at or below this count as zero (``report.metrics``' rule)."""

FEE_NONE, FEE_PERCENT, FEE_PER_UNIT = 0, 1, 2

# Order status codes in O_STATUS.
ST_WORKING, ST_FILLED, ST_REJECTED_CASH, ST_REJECTED_SHORT = 0, 1, 2, 3
ST_CANCELED_CASH, ST_CANCELED_END = 4, 5

# Order records: one row per submitted order, in submission order.
O_K, O_SYMBOL, O_SIDE, O_QTY, O_STATUS, O_UPDATED_K, O_PRICE, O_FEE, O_X1, O_X2 = range(10)
N_ORDER_COLS = 10
# Trade records: one row per closed (part of a) position, in the ledger's order.
T_SYMBOL, T_SIDE, T_QTY, T_ENTRY_K, T_ENTRY_PRICE, T_EXIT_K, T_EXIT_PRICE = range(7)
T_PNL, T_FEES, T_BARS = 7, 8, 9
N_TRADE_COLS = 10
# Equity records: one row per timestamp.
E_CASH, E_VALUE, E_EQUITY, E_GROSS = range(4)
N_EQUITY_COLS = 4
# Statistics returned by every simulation.
S_ORDERS, S_FILLS, S_TRADES, S_FINAL_EQUITY, S_TOTAL_RETURN, S_SHARPE, S_MAX_DRAWDOWN = range(7)
S_SORTINO = 7
N_STATS = 8


class CostSpec(NamedTuple):
    """The simulated broker's parameters, as the kernels take them."""

    fill_at_close: bool
    """Market orders fill at the close of the bar they were sent on (else the next open)."""
    slippage_bps: float
    fee_model: int
    """``FEE_NONE``, ``FEE_PERCENT`` or ``FEE_PER_UNIT``."""
    fee_rate: float
    fee_minimum: float
    fee_per_unit: float
    fee_maximum_pct: float
    """Cap of per-unit fees as a fraction of notional; NaN for none."""
    allow_short: bool
    initial_cash: float


class PolicySpec(NamedTuple):
    """How signals become orders (see :class:`~tradeloom.vector.signals.Signals`)."""

    long_short: bool
    retarget: bool
    quantity: float
    """Fixed size in units; NaN to size by ``fraction``."""
    fraction: float


@njit(cache=True)
def fee_nb(costs: CostSpec, quantity: float, price: float) -> float:
    """The fee of a fill, as ``execution.costs`` computes it."""
    if costs.fee_model == FEE_PERCENT:
        return max(quantity * price * costs.fee_rate, costs.fee_minimum)
    if costs.fee_model == FEE_PER_UNIT:
        fee = max(quantity * costs.fee_per_unit, costs.fee_minimum)
        if not math.isnan(costs.fee_maximum_pct):
            fee = min(fee, quantity * price * costs.fee_maximum_pct)
        return fee
    return 0.0


@njit(cache=True)
def slipped_nb(price: float, side: int, bps: float) -> float:
    """``price`` moved against a buyer (``side > 0``) or seller by ``bps`` basis points."""
    if bps == 0.0:
        return price
    factor = bps / 10_000.0
    if side > 0:
        return price * (1.0 + factor)
    return price * (1.0 - factor)


# One function, on purpose: numba reference-counts every array handed to a helper, which costs
# more than the bookkeeping itself on the order path. Helpers take scalars only.
@njit(cache=True)
def simulate_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    long_entry: np.ndarray,
    long_exit: np.ndarray,
    short_entry: np.ndarray,
    short_exit: np.ndarray,
    policy: PolicySpec,
    costs: CostSpec,
    periods_per_year: float,
    record: bool,
    equity: np.ndarray,
    orders: np.ndarray,
    fills: np.ndarray,
    trades: np.ndarray,
    bucket: np.ndarray,
    bucket_equity: np.ndarray,
    row: int,
) -> np.ndarray:
    """Simulate one signal set on the merged timeline; return the ``S_*`` statistics.

    ``open_``, ``high``, ``low``, ``close``: float64 ``(n, m)``, NaN where a symbol has no bar
    (a fill's slippage never takes its price beyond the bar's high or low). The four signal
    arrays: bool ``(n, m)``. ``policy``: :class:`PolicySpec`; ``costs``: :class:`CostSpec`.
    With ``record``, fills ``equity`` ``(n, N_EQUITY_COLS)``, ``orders``
    ``(capacity, N_ORDER_COLS)``, ``fills`` (order index per fill, in fill order) and
    ``trades`` ``(capacity, N_TRADE_COLS)``; a capacity of the number of (bar, symbol) cells
    with any signal is always enough, and ``S_SHARPE`` / ``S_MAX_DRAWDOWN`` are NaN. Without
    it the record arrays may be empty.

    ``bucket`` (int64 ``(n,)``, non-decreasing) and ``bucket_equity`` (float64 ``(c, b)``):
    ``bucket_equity[row, bucket[k]]`` receives the equity at timestamp ``k``, so each bucket
    ends holding the equity at its last timestamp (research keeps daily equity of every
    combination this way, without a per-bar curve). Pass ``None`` for both when not needed:
    numba compiles that case separately, without the arrays, as fast as before they existed.
    (Callers in a ``prange`` pass the whole 2-D array and their row: slicing it inside the
    parallel loop makes the loop a third slower.)
    """
    n, m = close.shape
    at_close = costs.fill_at_close
    bps = costs.slippage_bps
    initial = costs.initial_cash
    long_short = policy.long_short
    retarget = policy.retarget
    fixed = not math.isnan(policy.quantity)
    # The ledger: cash and one book per symbol (Ledger / _Book).
    cash = initial
    pos = np.zeros(m)
    avg = np.zeros(m)
    entry_fees = np.zeros(m)
    entry_k = np.zeros(m, dtype=np.int64)
    entry_bar = np.zeros(m, dtype=np.int64)
    books = np.zeros(m, dtype=np.int64)  # symbols in the order their book was opened
    in_books = np.zeros(m, dtype=np.bool_)
    n_books = 0
    # The broker: latest closes, own bar counts, at most one working market order per symbol.
    last = np.full(m, np.nan)
    bar = np.full(m, -1, dtype=np.int64)
    w_on = np.zeros(m, dtype=np.bool_)
    w_order = np.zeros(m, dtype=np.int64)
    w_side = np.zeros(m, dtype=np.int64)
    w_qty = np.zeros(m)
    n_orders = 0
    n_fills = 0
    n_trades = 0
    # Running statistics of the equity curve (report.metrics' definitions).
    prev = initial
    peak = initial
    trough = initial
    max_dd = 0.0
    valid = True
    sum_r = 0.0
    sum_r2 = 0.0
    sum_d2 = 0.0
    eq = initial

    for k in range(n):
        # Stage 0: new bars fill working orders at the open; stage 1: the strategy decides;
        # stage 2: with fill_at = "close", the orders just sent fill at this close.
        for stage in range(3):
            for j in range(m):
                c = close[k, j]
                if c != c:
                    continue
                if stage == 0:
                    bar[j] += 1
                if stage == 1:
                    # --- the strategy: signals -> target (Signals' table) -------------------
                    held = pos[j]
                    action = 0  # 1: target +size, 2: target -size, 3: target 0
                    if abs(held) <= QTY_EPSILON:
                        if long_entry[k, j]:
                            action = 1
                        elif long_short and short_entry[k, j]:
                            action = 2
                    elif held > 0:
                        if long_short and short_entry[k, j]:
                            action = 2
                        elif retarget and long_entry[k, j]:
                            action = 1
                        elif long_exit[k, j]:
                            action = 3
                    else:
                        if long_entry[k, j]:
                            action = 1
                        elif retarget and short_entry[k, j]:
                            action = 2
                        elif short_exit[k, j]:
                            action = 3
                    if action == 0:
                        continue
                    target = 0.0
                    if action != 3:
                        # --- position_size -----------------------------------------------
                        is_long = action == 1
                        if fixed:
                            size = policy.quantity
                        else:
                            price = last[j]
                            size = 0.0
                            if price > 0:
                                value = 0.0
                                for b in range(n_books):
                                    value += pos[books[b]] * last[books[b]]
                                units = policy.fraction * (cash + value) / m / price
                                if is_long:
                                    committed = 0.0
                                    for i in range(m):
                                        if w_on[i] and w_side[i] > 0:
                                            committed += w_qty[i] * last[i]
                                    shorts = 0.0
                                    for b in range(n_books):
                                        i = books[b]
                                        if pos[i] < 0:
                                            shorts += -pos[i] * last[i]
                                    free = max(0.0, cash - committed - shorts)
                                    units = min(units, policy.fraction * free / price)
                                size = np.floor(units + UNIT_EPSILON)
                                if not size > 0:
                                    size = 0.0
                        target = size if is_long else -size
                    delta = target - held
                    if abs(delta) <= QTY_EPSILON:
                        continue
                    # --- SimulatedBroker.submit (market order) ------------------------------
                    side = 1 if delta > 0 else -1
                    qty = abs(delta)
                    o = n_orders
                    n_orders += 1
                    if record:
                        orders[o, O_K] = k
                        orders[o, O_SYMBOL] = j
                        orders[o, O_SIDE] = side
                        orders[o, O_QTY] = qty
                        orders[o, O_STATUS] = ST_WORKING
                        orders[o, O_UPDATED_K] = k
                        orders[o, O_PRICE] = np.nan
                        orders[o, O_FEE] = np.nan
                        orders[o, O_X1] = np.nan
                        orders[o, O_X2] = np.nan
                    if side > 0:
                        opening = max(0.0, qty - max(0.0, -held))
                        if opening > QTY_EPSILON:  # a buy that only covers is never refused
                            ref = slipped_nb(last[j], 1, bps)
                            cost = qty * ref + fee_nb(costs, qty, ref)
                            reserved = 0.0
                            for i in range(m):
                                if w_on[i] and w_side[i] > 0:
                                    price = slipped_nb(last[i], 1, bps)
                                    reserved += w_qty[i] * price + fee_nb(costs, w_qty[i], price)
                            available = cash - reserved
                            if cost > available + CASH_EPSILON:
                                if record:
                                    orders[o, O_STATUS] = ST_REJECTED_CASH
                                    orders[o, O_X1] = cost
                                    orders[o, O_X2] = available
                                continue
                    elif not costs.allow_short and qty > held + QTY_EPSILON:
                        if record:
                            orders[o, O_STATUS] = ST_REJECTED_SHORT
                            orders[o, O_X1] = qty
                            orders[o, O_X2] = held
                        continue
                    w_on[j] = True
                    w_order[j] = o
                    w_side[j] = side
                    w_qty[j] = qty
                    continue
                if w_on[j] and (stage == 2) == at_close:
                    # --- SimulatedBroker._fill ----------------------------------------------
                    side = w_side[j]
                    qty = w_qty[j]
                    o = w_order[j]
                    w_on[j] = False
                    price = slipped_nb(open_[k, j] if stage == 0 else c, side, bps)
                    if bps > 0.0:  # slippage never takes a fill beyond the bar's range
                        price = min(price, high[k, j]) if side > 0 else max(price, low[k, j])
                    fee = fee_nb(costs, qty, price)
                    if (
                        side > 0
                        and pos[j] + qty > QTY_EPSILON
                        and qty * price + fee > cash + CASH_EPSILON
                    ):
                        if record:
                            orders[o, O_STATUS] = ST_CANCELED_CASH
                            orders[o, O_UPDATED_K] = k
                            orders[o, O_X1] = qty * price + fee
                            orders[o, O_X2] = cash
                    else:
                        if record:
                            fills[n_fills] = o
                            orders[o, O_STATUS] = ST_FILLED
                            orders[o, O_UPDATED_K] = k
                            orders[o, O_PRICE] = price
                            orders[o, O_FEE] = fee
                        n_fills += 1
                        # --- Ledger.apply_fill --------------------------------------------
                        cash -= side * qty * price + fee
                        if not in_books[j]:
                            in_books[j] = True
                            books[n_books] = j
                            n_books += 1
                        held = pos[j]
                        open_qty = qty
                        open_fee = fee
                        if held != 0.0 and (held > 0) != (side > 0):
                            closing = min(qty, abs(held))
                            exit_fee = fee * closing / qty
                            entry_fee = entry_fees[j] * closing / abs(held)
                            direction = 1.0 if held > 0 else -1.0
                            gross = (price - avg[j]) * closing * direction
                            entry_fees[j] -= entry_fee
                            if record:
                                t = n_trades
                                trades[t, T_SYMBOL] = j
                                trades[t, T_SIDE] = direction
                                trades[t, T_QTY] = closing
                                trades[t, T_ENTRY_K] = entry_k[j]
                                trades[t, T_ENTRY_PRICE] = avg[j]
                                trades[t, T_EXIT_K] = k
                                trades[t, T_EXIT_PRICE] = price
                                trades[t, T_PNL] = gross - entry_fee - exit_fee
                                trades[t, T_FEES] = entry_fee + exit_fee
                                trades[t, T_BARS] = bar[j] - entry_bar[j]
                            n_trades += 1
                            remaining = held + side * closing
                            if abs(remaining) <= QTY_EPSILON:
                                pos[j] = 0.0
                                avg[j] = 0.0
                                entry_fees[j] = 0.0
                            else:
                                pos[j] = remaining
                            open_qty = qty - closing
                            open_fee = fee - exit_fee
                            if not open_qty > QTY_EPSILON:
                                open_qty = 0.0
                        if open_qty > 0.0:  # Ledger._open: a new or larger position
                            current = abs(pos[j])
                            if current == 0.0:
                                entry_k[j] = k
                                entry_bar[j] = bar[j]
                                avg[j] = price
                            else:
                                avg[j] = (avg[j] * current + price * open_qty) / (
                                    current + open_qty
                                )
                            pos[j] += side * open_qty
                            entry_fees[j] += open_fee
                if stage == 0:
                    last[j] = c

        # --- equity at the closes ----------------------------------------------------------
        value = 0.0
        gross = 0.0
        for j in range(m):
            q = pos[j]
            if q != 0.0:
                value += q * last[j]
                gross += abs(q) * last[j]
        eq = cash + value
        if record:
            equity[k, E_CASH] = cash
            equity[k, E_VALUE] = value
            equity[k, E_EQUITY] = eq
            equity[k, E_GROSS] = gross
        if bucket_equity is not None:  # pruned at compile time when None (sweeps, runs)
            bucket_equity[row, bucket[k]] = eq
        if record:
            continue  # the caller has the curve; statistics are for sweeps
        if eq != prev:  # else the return is exactly 0 and the drawdown unchanged
            if prev > 0:
                r = eq / prev - 1.0
                sum_r += r
                sum_r2 += r * r
                loss = min(r, 0.0)  # branch-free: the sign of r is a coin flip
                sum_d2 += loss * loss
            else:
                valid = False
            prev = eq
            if eq >= peak:
                peak = eq
                trough = eq
            elif eq < trough:  # only a new low since the peak can deepen the drawdown
                trough = eq
                dd = eq / peak - 1.0
                if dd < max_dd:
                    max_dd = dd
        elif prev <= 0:
            valid = False

    if record:  # working orders left at the end are canceled
        for j in range(m):
            if w_on[j]:
                orders[w_order[j], O_STATUS] = ST_CANCELED_END
                orders[w_order[j], O_UPDATED_K] = n - 1

    stats = np.empty(N_STATS)
    stats[S_ORDERS] = n_orders
    stats[S_FILLS] = n_fills
    stats[S_TRADES] = n_trades
    stats[S_FINAL_EQUITY] = eq
    stats[S_TOTAL_RETURN] = eq / initial - 1.0
    sharpe = np.nan
    sortino = np.nan
    if record:
        max_dd = np.nan
    elif valid and n >= 2:
        mean = sum_r / n
        var = (sum_r2 - sum_r * mean) / (n - 1)
        std = math.sqrt(var) if var > 0.0 else 0.0
        if std > ZERO_TOLERANCE:
            sharpe = mean / std * math.sqrt(periods_per_year)
        downside = math.sqrt(sum_d2 / n)
        if downside > ZERO_TOLERANCE:
            sortino = mean / downside * math.sqrt(periods_per_year)
    stats[S_SHARPE] = sharpe
    stats[S_SORTINO] = sortino
    stats[S_MAX_DRAWDOWN] = max_dd
    return stats


@njit(cache=True, parallel=True)
def simulate_batch_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    long_entry: np.ndarray,
    long_exit: np.ndarray,
    short_entry: np.ndarray,
    short_exit: np.ndarray,
    long_short: np.ndarray,
    retarget: np.ndarray,
    quantity: np.ndarray,
    fraction: np.ndarray,
    costs: CostSpec,
    periods_per_year: float,
    bucket: np.ndarray,
    bucket_equity: np.ndarray,
) -> np.ndarray:
    """Statistics of ``c`` signal sets at once, in parallel over all cores.

    The signal arrays are bool ``(c, n, m)``; ``long_short``, ``retarget`` (bool), ``quantity``
    and ``fraction`` (float64, NaN when unused) are ``(c,)``. Returns ``(c, N_STATS)``.
    ``bucket_equity`` is ``(c, b)`` (or ``None`` with ``bucket``), filled as :func:`simulate_nb`
    does.
    """
    c = long_entry.shape[0]
    out = np.empty((c, N_STATS))
    no_equity = np.empty((0, N_EQUITY_COLS))
    no_orders = np.empty((0, N_ORDER_COLS))
    no_fills = np.empty(0, dtype=np.int64)
    no_trades = np.empty((0, N_TRADE_COLS))
    for i in prange(c):
        policy = PolicySpec(long_short[i], retarget[i], quantity[i], fraction[i])
        out[i] = simulate_nb(
            open_, high, low, close, long_entry[i], long_exit[i], short_entry[i], short_exit[i],
            policy, costs, periods_per_year, False, no_equity, no_orders, no_fills, no_trades,
            bucket, bucket_equity, i,
        )  # fmt: skip
    return out

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

Orders still working after the last timestamp are canceled. Results go to caller-allocated
record arrays (columns named by the ``O_*``, ``T_*`` and ``E_*`` constants) when ``record``
is true; the headline statistics (``S_*``) are always returned, so sweeps need no per-bar
output at all.

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
N_STATS = 7

# Per-symbol state (float and int tables, one row per symbol).
_POS, _AVG, _ENTRY_FEES, _LAST, _W_QTY = range(5)
_ENTRY_K, _ENTRY_BAR, _BAR, _W_ON, _W_ORDER, _W_SIDE, _IN_BOOKS = range(7)
# Account and counters.
_CASH = 0
_N_ORDERS, _N_FILLS, _N_TRADES, _N_BOOKS = range(4)

LONG_ENTRY, LONG_EXIT, SHORT_ENTRY, SHORT_EXIT = 1, 2, 4, 8


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


@njit(cache=True)
def _open_nb(fs, ist, j, k, side, qty, price, fee):  # type: ignore[no-untyped-def]
    """``Ledger._open``: add ``qty`` to the position of symbol ``j`` (average cost)."""
    held = abs(fs[j, _POS])
    if held == 0.0:
        ist[j, _ENTRY_K] = k
        ist[j, _ENTRY_BAR] = ist[j, _BAR]
        fs[j, _AVG] = price
    else:
        fs[j, _AVG] = (fs[j, _AVG] * held + price * qty) / (held + qty)
    fs[j, _POS] += side * qty
    fs[j, _ENTRY_FEES] += fee


@njit(cache=True)
def _apply_fill_nb(fs, ist, acct, cnt, books, j, k, side, qty, price, fee, record, trades):  # type: ignore[no-untyped-def]
    """``Ledger.apply_fill``: cash, position and the trade a reducing fill closes."""
    acct[_CASH] -= side * qty * price + fee
    if ist[j, _IN_BOOKS] == 0:
        ist[j, _IN_BOOKS] = 1
        books[cnt[_N_BOOKS]] = j
        cnt[_N_BOOKS] += 1
    held = fs[j, _POS]
    if held == 0.0 or (held > 0) == (side > 0):
        _open_nb(fs, ist, j, k, side, qty, price, fee)
        return
    closing = min(qty, abs(held))
    exit_fee = fee * closing / qty
    entry_fee = fs[j, _ENTRY_FEES] * closing / abs(held)
    direction = 1.0 if held > 0 else -1.0
    gross = (price - fs[j, _AVG]) * closing * direction
    fs[j, _ENTRY_FEES] -= entry_fee
    t = cnt[_N_TRADES]
    cnt[_N_TRADES] += 1
    if record:
        trades[t, T_SYMBOL] = j
        trades[t, T_SIDE] = 1.0 if held > 0 else -1.0
        trades[t, T_QTY] = closing
        trades[t, T_ENTRY_K] = ist[j, _ENTRY_K]
        trades[t, T_ENTRY_PRICE] = fs[j, _AVG]
        trades[t, T_EXIT_K] = k
        trades[t, T_EXIT_PRICE] = price
        trades[t, T_PNL] = gross - entry_fee - exit_fee
        trades[t, T_FEES] = entry_fee + exit_fee
        trades[t, T_BARS] = ist[j, _BAR] - ist[j, _ENTRY_BAR]
    remaining = held + side * closing
    if abs(remaining) <= QTY_EPSILON:
        fs[j, _POS] = 0.0
        fs[j, _AVG] = 0.0
        fs[j, _ENTRY_FEES] = 0.0
    else:
        fs[j, _POS] = remaining
    left = qty - closing
    if left > QTY_EPSILON:  # the fill flips the position
        _open_nb(fs, ist, j, k, side, left, price, fee - exit_fee)


@njit(cache=True)
def _execute_nb(fs, ist, acct, cnt, books, costs, j, k, price, record, orders, fills, trades):  # type: ignore[no-untyped-def]
    """``SimulatedBroker._fill``: fill the working order of symbol ``j`` at ``price`` (slippage
    included), or cancel it when a buy that opens or adds to a long cannot be paid for."""
    o = ist[j, _W_ORDER]
    side = ist[j, _W_SIDE]
    qty = fs[j, _W_QTY]
    ist[j, _W_ON] = 0
    fee = fee_nb(costs, qty, price)
    cash = acct[_CASH]
    opens_long = side > 0 and fs[j, _POS] + qty > QTY_EPSILON
    if opens_long and qty * price + fee > cash + CASH_EPSILON:
        if record:
            orders[o, O_STATUS] = ST_CANCELED_CASH
            orders[o, O_UPDATED_K] = k
            orders[o, O_X1] = qty * price + fee
            orders[o, O_X2] = cash
        return
    f = cnt[_N_FILLS]
    cnt[_N_FILLS] += 1
    if record:
        fills[f] = o
        orders[o, O_STATUS] = ST_FILLED
        orders[o, O_UPDATED_K] = k
        orders[o, O_PRICE] = price
        orders[o, O_FEE] = fee
    _apply_fill_nb(fs, ist, acct, cnt, books, j, k, side, qty, price, fee, record, trades)


@njit(cache=True)
def _books_value_nb(fs, cnt, books):  # type: ignore[no-untyped-def]
    """``Ledger.position_value``: positions at the latest closes, in the ledger's book order."""
    value = 0.0
    for b in range(cnt[_N_BOOKS]):
        j = books[b]
        value += fs[j, _POS] * fs[j, _LAST]
    return value


@njit(cache=True)
def _size_nb(fs, ist, acct, cnt, books, policy, j, long):  # type: ignore[no-untyped-def]
    """``tradeloom_strategies.sizing.position_size`` from the simulated account."""
    if not math.isnan(policy.quantity):
        return policy.quantity
    m = fs.shape[0]
    price = fs[j, _LAST]
    if not price > 0:
        return 0.0
    cash = acct[_CASH]
    equity = cash + _books_value_nb(fs, cnt, books)
    units = policy.fraction * equity / m / price
    if long:
        committed = 0.0
        for i in range(m):
            if ist[i, _W_ON] != 0 and ist[i, _W_SIDE] > 0:
                committed += fs[i, _W_QTY] * fs[i, _LAST]
        shorts = 0.0
        for b in range(cnt[_N_BOOKS]):
            i = books[b]
            if fs[i, _POS] < 0:
                shorts += -fs[i, _POS] * fs[i, _LAST]
        free = max(0.0, cash - committed - shorts)
        units = min(units, policy.fraction * free / price)
    size = np.floor(units + UNIT_EPSILON)
    return size if size > 0 else 0.0


@njit(cache=True)
def _submit_nb(fs, ist, acct, cnt, costs, j, k, side, qty, record, orders):  # type: ignore[no-untyped-def]
    """``SimulatedBroker.submit`` of a market order: accept it (working) or reject it."""
    o = cnt[_N_ORDERS]
    cnt[_N_ORDERS] += 1
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
    held = fs[j, _POS]
    if side > 0:
        short_left = max(0.0, -held)
        opening = max(0.0, qty - short_left)
        if opening > QTY_EPSILON:  # a buy that only covers a short is never refused
            bps = costs.slippage_bps
            ref = slipped_nb(fs[j, _LAST], 1, bps)
            cost = qty * ref + fee_nb(costs, qty, ref)
            reserved = 0.0
            m = fs.shape[0]
            for i in range(m):
                if ist[i, _W_ON] != 0 and ist[i, _W_SIDE] > 0:
                    price = slipped_nb(fs[i, _LAST], 1, bps)
                    reserved += fs[i, _W_QTY] * price + fee_nb(costs, fs[i, _W_QTY], price)
            available = acct[_CASH] - reserved
            if cost > available + CASH_EPSILON:
                if record:
                    orders[o, O_STATUS] = ST_REJECTED_CASH
                    orders[o, O_X1] = cost
                    orders[o, O_X2] = available
                return
    elif not costs.allow_short and qty > held + QTY_EPSILON:
        if record:
            orders[o, O_STATUS] = ST_REJECTED_SHORT
            orders[o, O_X1] = qty
            orders[o, O_X2] = held
        return
    ist[j, _W_ON] = 1
    ist[j, _W_ORDER] = o
    ist[j, _W_SIDE] = side
    fs[j, _W_QTY] = qty


@njit(cache=True)
def _decide_nb(fs, ist, acct, cnt, books, policy, costs, j, k, bits, record, orders):  # type: ignore[no-untyped-def]
    """Apply the signal bits of symbol ``j`` at bar ``k`` to its position (the table in
    :class:`~tradeloom.vector.signals.Signals`) and submit the order, if any."""
    pos = fs[j, _POS]
    target = np.nan
    if abs(pos) <= QTY_EPSILON:
        if bits & LONG_ENTRY:
            target = _size_nb(fs, ist, acct, cnt, books, policy, j, True)
        elif policy.long_short and bits & SHORT_ENTRY:
            target = -_size_nb(fs, ist, acct, cnt, books, policy, j, False)
    elif pos > 0:
        if policy.long_short and bits & SHORT_ENTRY:
            target = -_size_nb(fs, ist, acct, cnt, books, policy, j, False)
        elif policy.retarget and bits & LONG_ENTRY:
            target = _size_nb(fs, ist, acct, cnt, books, policy, j, True)
        elif bits & LONG_EXIT:
            target = 0.0
    else:
        if bits & LONG_ENTRY:
            target = _size_nb(fs, ist, acct, cnt, books, policy, j, True)
        elif policy.retarget and bits & SHORT_ENTRY:
            target = -_size_nb(fs, ist, acct, cnt, books, policy, j, False)
        elif bits & SHORT_EXIT:
            target = 0.0
    if math.isnan(target):
        return
    delta = target - pos
    if abs(delta) <= QTY_EPSILON:
        return
    side = 1 if delta > 0 else -1
    _submit_nb(fs, ist, acct, cnt, costs, j, k, side, abs(delta), record, orders)


@njit(cache=True)
def simulate_nb(  # type: ignore[no-untyped-def]
    open_,
    close,
    long_entry,
    long_exit,
    short_entry,
    short_exit,
    policy,
    costs,
    periods_per_year,
    record,
    equity,
    orders,
    fills,
    trades,
):
    """Simulate one signal set on the merged timeline; return the ``S_*`` statistics.

    ``open_``, ``close``: float64 ``(n, m)``, NaN where a symbol has no bar. The four signal
    arrays: bool ``(n, m)``. ``policy``: :class:`PolicySpec`; ``costs``: :class:`CostSpec`.
    With ``record``, fills ``equity`` ``(n, N_EQUITY_COLS)``, ``orders``
    ``(capacity, N_ORDER_COLS)``, ``fills`` (order index per fill, in fill order) and
    ``trades`` ``(capacity, N_TRADE_COLS)``; a capacity of the number of (bar, symbol) cells
    with any signal is always enough. Without it they may be empty arrays.
    """
    n, m = close.shape
    fs = np.zeros((m, 5))
    fs[:, _LAST] = np.nan
    ist = np.zeros((m, 7), dtype=np.int64)
    ist[:, _BAR] = -1
    books = np.zeros(m, dtype=np.int64)
    acct = np.zeros(1)
    acct[_CASH] = costs.initial_cash
    cnt = np.zeros(4, dtype=np.int64)
    at_close = costs.fill_at_close
    bps = costs.slippage_bps
    initial = costs.initial_cash
    # Running statistics of the equity curve (report.metrics' definitions).
    prev = initial
    peak = initial
    max_dd = 0.0
    valid = True
    n_ret = 0
    mean = 0.0
    m2 = 0.0
    eq = initial

    for k in range(n):
        for j in range(m):
            c = close[k, j]
            if c != c:
                continue
            ist[j, _BAR] += 1
            if ist[j, _W_ON] != 0 and not at_close:
                price = slipped_nb(open_[k, j], ist[j, _W_SIDE], bps)
                _execute_nb(
                    fs, ist, acct, cnt, books, costs, j, k, price, record, orders, fills, trades
                )
            fs[j, _LAST] = c
        for j in range(m):
            if close[k, j] != close[k, j]:
                continue
            bits = 0
            if long_entry[k, j]:
                bits |= LONG_ENTRY
            if long_exit[k, j]:
                bits |= LONG_EXIT
            if short_entry[k, j]:
                bits |= SHORT_ENTRY
            if short_exit[k, j]:
                bits |= SHORT_EXIT
            if bits != 0:
                _decide_nb(fs, ist, acct, cnt, books, policy, costs, j, k, bits, record, orders)
        if at_close:
            for j in range(m):
                if close[k, j] == close[k, j] and ist[j, _W_ON] != 0:
                    price = slipped_nb(close[k, j], ist[j, _W_SIDE], bps)
                    _execute_nb(
                        fs, ist, acct, cnt, books, costs, j, k, price, record, orders, fills, trades
                    )
        value = 0.0
        gross = 0.0
        for j in range(m):
            q = fs[j, _POS]
            if q != 0.0:
                value += q * fs[j, _LAST]
                gross += abs(q) * fs[j, _LAST]
        cash = acct[_CASH]
        eq = cash + value
        if record:
            equity[k, E_CASH] = cash
            equity[k, E_VALUE] = value
            equity[k, E_EQUITY] = eq
            equity[k, E_GROSS] = gross
        if valid:
            if prev > 0:
                r = eq / prev - 1.0
                n_ret += 1
                delta = r - mean
                mean += delta / n_ret
                m2 += delta * (r - mean)
            else:
                valid = False
        prev = eq
        if eq > peak:
            peak = eq
        dd = eq / peak - 1.0
        if dd < max_dd:
            max_dd = dd

    for j in range(m):
        if ist[j, _W_ON] != 0:
            ist[j, _W_ON] = 0
            if record:
                o = ist[j, _W_ORDER]
                orders[o, O_STATUS] = ST_CANCELED_END
                orders[o, O_UPDATED_K] = n - 1

    stats = np.empty(N_STATS)
    stats[S_ORDERS] = cnt[_N_ORDERS]
    stats[S_FILLS] = cnt[_N_FILLS]
    stats[S_TRADES] = cnt[_N_TRADES]
    stats[S_FINAL_EQUITY] = eq
    stats[S_TOTAL_RETURN] = eq / initial - 1.0
    sharpe = np.nan
    if valid and n_ret >= 2:
        std = math.sqrt(m2 / (n_ret - 1))
        if std > ZERO_TOLERANCE:
            sharpe = mean / std * math.sqrt(periods_per_year)
    stats[S_SHARPE] = sharpe
    stats[S_MAX_DRAWDOWN] = max_dd
    return stats


@njit(cache=True, parallel=True)
def simulate_batch_nb(  # type: ignore[no-untyped-def]
    open_,
    close,
    long_entry,
    long_exit,
    short_entry,
    short_exit,
    long_short,
    retarget,
    quantity,
    fraction,
    costs,
    periods_per_year,
):
    """Statistics of ``c`` signal sets at once, in parallel over all cores.

    The signal arrays are bool ``(c, n, m)``; ``long_short``, ``retarget`` (bool), ``quantity``
    and ``fraction`` (float64, NaN when unused) are ``(c,)``. Returns ``(c, N_STATS)``.
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
            open_, close, long_entry[i], long_exit[i], short_entry[i], short_exit[i],
            policy, costs, periods_per_year, False, no_equity, no_orders, no_fills, no_trades,
        )  # fmt: skip
    return out

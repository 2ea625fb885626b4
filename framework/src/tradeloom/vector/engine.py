"""``run_signals``: a backtest of a signal-driven strategy by the numba vector engine.

It returns the same :class:`~tradeloom.engine.result.BacktestResult` as the event engine
(:func:`tradeloom.api.run_backtest`), with the same orders, fills, trades and equity for a
strategy whose ``signals`` reproduce its ``on_bar`` (checked by :mod:`tradeloom.parity`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from loguru import logger

from tradeloom.data import DataSource, MarketData
from tradeloom.engine.inputs import check_run, load_market
from tradeloom.engine.result import (
    BacktestResult,
    build_result,
    data_conventions,
    equity_frame,
    fills_frame,
    orders_frame,
    trades_frame,
)
from tradeloom.errors import ConfigError, RunError, TradeloomError
from tradeloom.execution import SimulatedBroker
from tradeloom.execution.costs import PercentFees, PerUnitFees
from tradeloom.model import Fill, Order, OrderStatus, OrderType, Side, TimeInForce
from tradeloom.portfolio import Trade
from tradeloom.vector.signals import SignalData, Signals, signal_data

if TYPE_CHECKING:
    from tradeloom.strategy import Strategy
    from tradeloom.vector.kernels import CostSpec, PolicySpec

__all__ = ["cost_spec", "policy_spec", "run_signals", "strategy_signals"]

_END_REASON = "backtest ended before the order could fill"


def run_signals(
    market: MarketData | DataSource,
    strategy: Strategy,
    *,
    broker_params: SimulatedBroker.Params | None = None,
    initial_cash: float = 100_000.0,
    currency: str = "USD",
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
    benchmark: str | None = None,
    config: dict[str, Any] | None = None,
    title: str | None = None,
    strategy_id: str | None = None,
    provenance: dict[str, Any] | None = None,
    fallback: bool = True,
) -> BacktestResult:
    """Backtest ``strategy`` on ``market`` with the vector engine.

    The strategy must implement ``signals(data) -> Signals``. When it has no such method or
    its ``signals`` returns ``None`` (it declines), the run falls back to the event engine
    (``provenance["engine"] == "event"``) unless ``fallback=False``, which raises
    :class:`~tradeloom.errors.ConfigError` instead. ``strategy_id`` defaults to the event
    engine's default (the class name, lower-cased); client order ids are
    ``<strategy_id>-<n>``, numbered as the event engine numbers them.

    ``result.timings`` holds seconds for ``load`` (slicing, arrays), ``signals`` (the
    strategy's ``signals``), ``simulate`` (the kernel), ``loop`` (the two together, the
    counterpart of the event engine's loop) and ``results`` (frames and metrics).
    """
    clock = time.perf_counter  # durations only, for the benchmark; never time of day
    t0 = clock()
    market = load_market(market, start, end)
    if market.actions:
        raise ConfigError(
            "the vector engine does not apply corporate actions; use adjusted prices "
            "(adjusted = true) or run the event engine",
            path="data.params.corporate_actions",
        )
    sid = strategy_id or type(strategy).__name__.lower()
    check_run(market, [(sid, strategy)], benchmark)
    if not initial_cash > 0:
        raise ConfigError(f"initial cash must be positive, got {initial_cash}", path="run")
    params = broker_params if broker_params is not None else SimulatedBroker.Params()
    broker = SimulatedBroker(params)
    provenance = dict(provenance or {})
    title = title or sid
    data = signal_data(market)
    t1 = clock()

    signals = strategy_signals(strategy, data, sid)
    t2 = clock()
    if signals is None:
        why = f"strategy {sid!r} ({type(strategy).__name__}) " + (
            "declined (signals() returned None)" if _has_signals(strategy) else "has no signals()"
        )
        if not fallback:
            raise ConfigError(f"{why}: the vector engine cannot run it")
        logger.warning("{}; running the event engine instead", why)
        from tradeloom.api import run_backtest

        return run_backtest(
            market,
            [(sid, strategy)],
            broker=SimulatedBroker(params),
            initial_cash=initial_cash,
            currency=currency,
            benchmark=benchmark,
            config=config,
            provenance={**provenance, "engine": "event", "vector_fallback": why},
            title=title,
        )

    arrays = signals.checked(data.shape, f"strategy {sid!r} ({type(strategy).__name__})")
    records = _simulate(data, arrays, policy_spec(signals), cost_spec(params, initial_cash))
    t3 = clock()
    result = build_result(
        run_id=uuid.uuid4().hex[:12],
        equity=equity_frame(data.ts, *records.equity.T),
        trades=trades_frame(records.trades(sid)),
        orders=orders_frame(records.orders(sid)),
        fills=fills_frame(records.fills(sid)),
        market=market,
        initial_cash=initial_cash,
        currency=currency,
        benchmark=benchmark,
        config=config,
        title=title,
        provenance={**provenance, "engine": "vector"},
        conventions=[*broker.conventions(), *data_conventions((), "cash", {}, currency)],
    )
    result.timings = {
        "load": t1 - t0,
        "signals": t2 - t1,
        "simulate": t3 - t2,
        "loop": t3 - t1,
        "results": clock() - t3,
    }
    return result


def strategy_signals(strategy: Strategy, data: SignalData, sid: str) -> Signals | None:
    """Call ``strategy.signals(data)``; ``None`` when it has none or declines. A strategy that
    raises fails the run with a :class:`RunError` naming it."""
    method: Callable[[SignalData], Signals | None] | None = getattr(strategy, "signals", None)
    if method is None or not callable(method):
        return None
    try:
        signals = method(data)
    except TradeloomError:
        raise
    except Exception as exc:
        raise RunError(
            f"strategy {sid!r} ({type(strategy).__name__}) raised in signals: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if signals is not None and not isinstance(signals, Signals):
        raise RunError(
            f"strategy {sid!r} ({type(strategy).__name__}): signals() must return Signals or "
            f"None, got {type(signals).__name__}"
        )
    return signals


def _has_signals(strategy: object) -> bool:
    return callable(getattr(strategy, "signals", None))


def cost_spec(params: SimulatedBroker.Params, initial_cash: float) -> CostSpec:
    """The kernels' view of the simulated broker's parameters."""
    from tradeloom.vector.kernels import FEE_NONE, FEE_PER_UNIT, FEE_PERCENT, CostSpec

    fees = params.fees
    rate = minimum = per_unit = 0.0
    cap = float("nan")
    if isinstance(fees, PercentFees):
        model, rate, minimum = FEE_PERCENT, fees.rate, fees.minimum
    elif isinstance(fees, PerUnitFees):
        model, per_unit, minimum = FEE_PER_UNIT, fees.per_unit, fees.minimum
        if fees.maximum_pct is not None:
            cap = fees.maximum_pct
    else:
        model = FEE_NONE
    return CostSpec(
        fill_at_close=params.fill_at == "close",
        slippage_bps=float(params.slippage_bps),
        fee_model=int(model),
        fee_rate=float(rate),
        fee_minimum=float(minimum),
        fee_per_unit=float(per_unit),
        fee_maximum_pct=float(cap),
        allow_short=bool(params.allow_short),
        initial_cash=float(initial_cash),
    )


def policy_spec(signals: Signals) -> PolicySpec:
    """The kernels' view of how ``signals`` become orders."""
    from tradeloom.vector.kernels import PolicySpec

    sizing = signals.sizing
    return PolicySpec(
        long_short=bool(signals.long_short),
        retarget=bool(signals.retarget),
        quantity=float("nan") if sizing.quantity is None else float(sizing.quantity),
        fraction=float("nan") if sizing.fraction is None else float(sizing.fraction),
    )


# --- the kernel call and its records -------------------------------------------------------------


class _Records:
    """What :func:`~tradeloom.vector.kernels.simulate_nb` wrote, turned into model objects
    (column by column: a million-bar run has tens of thousands of orders)."""

    def __init__(
        self,
        data: SignalData,
        equity: np.ndarray,
        orders: np.ndarray,
        fills: np.ndarray,
        trades: np.ndarray,
    ) -> None:
        self.data = data
        self.equity = equity
        self._orders = orders
        self._fills = fills
        self._trades = trades

    def _times(self, rows: np.ndarray) -> list[int]:
        return self.data.ts[rows.astype(np.int64)].tolist()

    def _symbols(self, columns: np.ndarray) -> list[str]:
        names = self.data.symbols
        return [names[j] for j in columns.astype(np.int64).tolist()]

    def orders(self, sid: str) -> list[Order]:
        from tradeloom.vector import kernels as K

        o = self._orders
        status = o[:, K.O_STATUS].astype(np.int64).tolist()
        symbols = self._symbols(o[:, K.O_SYMBOL])
        created, updated = self._times(o[:, K.O_K]), self._times(o[:, K.O_UPDATED_K])
        qty, price = o[:, K.O_QTY].tolist(), o[:, K.O_PRICE].tolist()
        buys = (o[:, K.O_SIDE] > 0).tolist()
        x1, x2 = o[:, K.O_X1].tolist(), o[:, K.O_X2].tolist()
        market, gtc, filled = OrderType.MARKET, TimeInForce.GTC, K.ST_FILLED
        out = []
        for i in range(len(o)):
            q, done = qty[i], status[i] == filled
            out.append(
                Order(
                    f"{sid}-{i + 1}",
                    symbols[i],
                    Side.BUY if buys[i] else Side.SELL,
                    q,
                    market,
                    None,
                    None,
                    gtc,
                    sid,
                    _STATUS[status[i]],
                    q if done else 0.0,
                    # Order.with_fill's arithmetic, so the value is bit-identical.
                    (0.0 * 0.0 + price[i] * q) / q if done else 0.0,
                    created[i],
                    updated[i],
                    _reason(status[i], symbols[i], x1[i], x2[i]),
                )
            )
        return out

    def fills(self, sid: str) -> list[Fill]:
        from tradeloom.vector import kernels as K

        o = self._orders[self._fills]
        symbols = self._symbols(o[:, K.O_SYMBOL])
        times = self._times(o[:, K.O_UPDATED_K])
        qty, price, fee = o[:, K.O_QTY].tolist(), o[:, K.O_PRICE].tolist(), o[:, K.O_FEE].tolist()
        buys = (o[:, K.O_SIDE] > 0).tolist()
        return [
            Fill(
                f"F{f + 1}",
                f"{sid}-{order + 1}",
                symbols[f],
                Side.BUY if buys[f] else Side.SELL,
                qty[f],
                price[f],
                fee[f],
                times[f],
                sid,
            )
            for f, order in enumerate(self._fills.tolist())
        ]

    def trades(self, sid: str) -> list[Trade]:
        from tradeloom.vector import kernels as K

        t = self._trades
        symbols = self._symbols(t[:, K.T_SYMBOL])
        entry, exit_ = self._times(t[:, K.T_ENTRY_K]), self._times(t[:, K.T_EXIT_K])
        longs = (t[:, K.T_SIDE] > 0).tolist()
        columns = (K.T_QTY, K.T_ENTRY_PRICE, K.T_EXIT_PRICE, K.T_PNL, K.T_FEES)
        qty, entry_price, exit_price, pnl, fees = (t[:, c].tolist() for c in columns)
        bars = t[:, K.T_BARS].astype(np.int64).tolist()
        return [
            Trade(
                symbols[i],
                "long" if longs[i] else "short",
                qty[i],
                entry[i],
                entry_price[i],
                exit_[i],
                exit_price[i],
                pnl[i],
                fees[i],
                bars[i],
                sid,
            )
            for i in range(len(t))
        ]


_STATUS = {
    1: OrderStatus.FILLED,
    2: OrderStatus.REJECTED,
    3: OrderStatus.REJECTED,
    4: OrderStatus.CANCELED,
    5: OrderStatus.CANCELED,
}


def _reason(status: int, symbol: str, x1: float, x2: float) -> str:
    """The simulated broker's reason texts, from the numbers the kernel recorded."""
    if status == 2:
        return f"insufficient cash: order needs {x1:,.2f}, available {x2:,.2f}"
    if status == 3:
        return (
            f"short selling is disabled: selling {x1:g} {symbol} with {x2:g} held and "
            f"{0:g} already being sold"
        )
    if status == 4:
        return f"insufficient cash at fill: needs {x1:,.2f}, cash {x2:,.2f}"
    if status == 5:
        return _END_REASON
    return ""


def _simulate(
    data: SignalData,
    arrays: tuple[np.ndarray, ...],
    policy: PolicySpec,
    costs: CostSpec,
) -> _Records:
    from tradeloom.vector import kernels as K

    # At most one order per (bar, symbol) with a signal; fills <= orders; trades <= fills.
    capacity = sum(int(np.count_nonzero(a)) for a in arrays)
    equity = np.empty((data.n, K.N_EQUITY_COLS))
    orders = np.empty((capacity, K.N_ORDER_COLS))
    fills = np.empty(capacity, dtype=np.int64)
    trades = np.empty((capacity, K.N_TRADE_COLS))
    stats = K.simulate_nb(
        data.open, data.high, data.low, data.close, *arrays, policy, costs, 1.0, True,
        equity, orders, fills, trades, None, None, 0,
    )  # fmt: skip
    n_orders, n_fills, n_trades = (int(stats[i]) for i in (K.S_ORDERS, K.S_FILLS, K.S_TRADES))
    return _Records(data, equity, orders[:n_orders], fills[:n_fills], trades[:n_trades])

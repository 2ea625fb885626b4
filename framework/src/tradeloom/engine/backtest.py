"""The event engine in backtest mode: a simulated clock over historical bars.

For each timestamp, in this order:

1. the simulated broker matches working orders against each symbol's new bar (in symbol order)
   and marks positions to the bar's close;
2. the resulting fills and order updates go to the strategies that own the orders;
3. every strategy's ``on_bars`` sees the bars of this timestamp and may place orders, which pass
   the risk gate and reach the broker (accepted or rejected at once, filled from the next bar);
4. with ``fill_at = "close"`` the broker fills the new market orders at this bar's close;
5. updates are delivered until no callback places another order; then equity is recorded.

No pluggy and no pandas on this path: bars are tuples built from plain lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tradeloom.data import BAR_COLUMNS, MarketData
from tradeloom.errors import RunError, TradeloomError
from tradeloom.execution.simulated import SimulatedBroker
from tradeloom.model import (
    Bar,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    TimeInForce,
)
from tradeloom.risk import RiskGate, RiskView
from tradeloom.strategy import Context, Strategy

MAX_ROUNDS = 1000  # callback rounds per timestamp before we call it a runaway loop


@dataclass
class EngineOutput:
    ts: np.ndarray
    cash: np.ndarray
    position_value: np.ndarray
    equity: np.ndarray
    gross_exposure: np.ndarray
    orders: list[Order]
    fills: list[Fill]


class _History:
    """Per-symbol source arrays and the buffer strategies read, filled up to the current bar."""

    __slots__ = ("buf", "filled", "index", "src")

    def __init__(self, src: np.ndarray) -> None:
        self.src = src
        self.buf = np.full_like(src, np.nan)
        self.filled = 0
        self.index = -1


class BacktestEngine:
    def __init__(
        self,
        data: MarketData,
        strategies: Sequence[tuple[str, Strategy]],
        broker: SimulatedBroker,
        risk: RiskGate,
        *,
        initial_cash: float,
        currency: str,
    ) -> None:
        if not data.frames:
            raise RunError("no bars to run on: the data is empty for the requested period")
        ids = [sid for sid, _ in strategies]
        if len(set(ids)) != len(ids):
            raise RunError(f"strategy ids must be unique, got {ids}")
        self.data = data
        self.symbols = data.symbols
        self.strategies = list(strategies)
        self.broker = broker
        self.risk = risk
        self.initial_cash = initial_cash
        self.currency = currency
        self.now = 0
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self._seq: dict[str, int] = dict.fromkeys(ids, 0)
        self._queue: list[OrderUpdate | Fill] = []
        self._contexts = {sid: Context(self, sid) for sid in ids}
        self._by_id = dict(self.strategies)
        self._hist = {
            s: _History(np.ascontiguousarray(data.frames[s][list(BAR_COLUMNS)].to_numpy().T))
            for s in self.symbols
        }

    # --- called by Context ----------------------------------------------------------------------
    def seen(self, symbol: str) -> int:
        return self._hist_of(symbol).index + 1

    def history(self, symbol: str, row: int, n: int | None) -> np.ndarray:
        h = self._hist_of(symbol)
        end = h.index + 1
        if h.filled < end:
            h.buf[:, h.filled : end] = h.src[:, h.filled : end]
            h.filled = end
        start = 0 if n is None else max(0, end - n)
        view = h.buf[row, start:end]
        view.flags.writeable = False
        return view

    def last_price(self, symbol: str) -> float:
        h = self._hist_of(symbol)
        return float(h.src[3, h.index]) if h.index >= 0 else float("nan")

    def working_orders(self) -> list[Order]:
        return self.broker.open_orders()

    def submit(
        self,
        strategy_id: str,
        symbol: str,
        side: Side,
        quantity: float,
        kind: OrderType,
        limit: float | None,
        stop: float | None,
        tif: TimeInForce,
    ) -> Order:
        if symbol not in self._hist:
            raise RunError(
                f"strategy {strategy_id!r} ordered unknown symbol {symbol!r}; "
                f"this run trades {', '.join(self.symbols)}"
            )
        self._seq[strategy_id] += 1
        coid = f"{strategy_id}-{self._seq[strategy_id]}"
        try:
            order = Order(
                client_order_id=coid, symbol=symbol, side=side, quantity=quantity, type=kind,
                limit_price=limit, stop_price=stop, tif=tif, strategy_id=strategy_id,
                created_ts=self.now, updated_ts=self.now,
            )  # fmt: skip
        except TradeloomError as exc:
            raise RunError(f"strategy {strategy_id!r} placed an invalid order: {exc}") from exc
        self.orders[coid] = order
        reject = self.risk.check(order, self._risk_view()) if len(self.risk) else None
        if reject is not None:
            rejected = order.transition(OrderStatus.REJECTED, self.now, reject.message())
            self.orders[coid] = rejected
            self._queue.append(OrderUpdate(rejected, order.status, self.now))
        else:
            self.broker.submit(order)
        return order

    def cancel(self, client_order_id: str) -> None:
        self.broker.cancel(client_order_id)

    def _hist_of(self, symbol: str) -> _History:
        try:
            return self._hist[symbol]
        except KeyError:
            raise RunError(
                f"unknown symbol {symbol!r}; this run has {', '.join(self.symbols)}"
            ) from None

    def _risk_view(self) -> RiskView:
        ledger = self.broker.ledger
        return RiskView(
            ts=self.now,
            cash=ledger.cash,
            equity=ledger.equity(),
            positions=ledger.positions(),
            open_orders=self.broker.open_orders(),
            last_prices=dict(ledger.last_price),
        )

    # --- the loop -------------------------------------------------------------------------------
    def run(self) -> EngineOutput:
        symbols = self.symbols
        columns = {
            s: (
                self.data.frames[s].index.as_unit("ns").asi8.tolist(),
                *(self._hist[s].src.tolist()),
            )
            for s in symbols
        }
        timeline = np.unique(
            np.concatenate([self.data.frames[s].index.as_unit("ns").asi8 for s in symbols])
        )
        n = len(timeline)
        cash = np.empty(n)
        value = np.empty(n)
        equity = np.empty(n)
        gross = np.empty(n)
        ptr = dict.fromkeys(symbols, 0)
        lengths = {s: len(columns[s][0]) for s in symbols}
        broker = self.broker
        broker.start(initial_cash=self.initial_cash, currency=self.currency, symbols=symbols)
        ledger = broker.ledger
        hist = self._hist

        for sid, strategy in self.strategies:
            self._call(sid, "on_start", strategy.on_start, self._contexts[sid])

        for k, t in enumerate(timeline.tolist()):
            self.now = t
            broker.set_time(t)
            bars: dict[str, Bar] = {}
            for s in symbols:
                i = ptr[s]
                if i < lengths[s]:
                    col = columns[s]
                    if col[0][i] == t:
                        bar = Bar(s, t, col[1][i], col[2][i], col[3][i], col[4][i], col[5][i])
                        bars[s] = bar
                        ptr[s] = i + 1
                        hist[s].index = i
                        broker.on_bar(bar)
            self._deliver()
            for sid, strategy in self.strategies:
                self._call(sid, "on_bars", strategy.on_bars, self._contexts[sid], bars)
            for bar in bars.values():
                broker.on_close(bar)
            self._deliver()
            value_k = ledger.position_value()
            cash[k] = ledger.cash
            value[k] = value_k
            equity[k] = ledger.cash + value_k
            gross[k] = ledger.gross_exposure()

        broker.cancel_all("backtest ended before the order could fill")
        self._deliver()
        for sid, strategy in self.strategies:
            self._call(sid, "on_stop", strategy.on_stop, self._contexts[sid])
        self._deliver()
        return EngineOutput(
            timeline, cash, value, equity, gross, list(self.orders.values()), self.fills
        )

    def _deliver(self) -> None:
        """Route broker events to their strategies until no callback places a new order."""
        for _ in range(MAX_ROUNDS):
            events = self._queue + self.broker.drain()
            self._queue = []
            if not events:
                return
            for event in events:
                if isinstance(event, Fill):
                    self.fills.append(event)
                    sid = event.strategy_id
                    if sid in self._by_id:
                        self._call(
                            sid, "on_fill", self._by_id[sid].on_fill, self._contexts[sid], event
                        )
                else:
                    self.orders[event.order.client_order_id] = event.order
                    sid = event.order.strategy_id
                    if sid in self._by_id:
                        self._call(
                            sid, "on_order", self._by_id[sid].on_order, self._contexts[sid], event
                        )
        raise RunError(
            f"strategies kept placing orders in response to order events more than {MAX_ROUNDS} "
            f"times at {np.datetime64(self.now, 'ns')}: a runaway loop"
        )

    def _call(self, sid: str, name: str, fn: object, *args: object) -> None:
        try:
            fn(*args)  # type: ignore[operator]
        except TradeloomError:
            raise
        except Exception as exc:
            when = np.datetime64(self.now, "ns")
            raise RunError(
                f"strategy {sid!r} ({type(self._by_id[sid]).__name__}) raised in {name} at "
                f"{when}: {type(exc).__name__}: {exc}"
            ) from exc

"""The event engine in backtest mode: a simulated clock over historical bars.

For each timestamp, in this order:

1. the simulated broker matches working orders against each symbol's new bar (in symbol order)
   and marks positions to the bar's close;
2. the resulting fills and order updates go to the strategies that own the orders;
3. every strategy's ``on_bars`` sees the bars of this timestamp and may place orders, which pass
   the risk gate and reach the broker (accepted or rejected at once, filled from the next bar);
4. when market orders fill at the close (``fill_at = "close"`` or a same-close fill model),
   the broker fills them at this bar's close;
5. updates are delivered until no callback places another order; then equity is recorded.

No pluggy, no pandas and no per-bar bookkeeping on this path: bars are tuples built from plain
lists, the broker is called only for symbols with working orders, the latest prices are a live
view of the engine's position in the data, and the equity curve is rebuilt after the loop from
the ledger's journal of fills (cash and positions change only at fills).

The bars arrive in chunks (:meth:`MarketData.chunks` yields one; a :class:`ChunkedMarket`
streams Parquet row groups for data larger than memory). Between chunks the engine keeps the
last ``history_bars`` bars of each symbol for ``ctx.history`` and the latest close for marking;
the equity curve is rebuilt chunk by chunk, so only the current chunk's bars are in memory.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any, Literal

import numpy as np
import pandas as pd

from tradeloom.data import BAR_COLUMNS, ChunkedMarket, MarketData
from tradeloom.data.base import HISTORY_BARS
from tradeloom.data.memory import return_free_memory
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
from tradeloom.portfolio.fx import FxRates
from tradeloom.risk import RiskGate, RiskView
from tradeloom.risk.base import Lazy, LazyMapping
from tradeloom.risk.control import RISK_ID, RiskControl
from tradeloom.strategy import Context, Strategy

NS_PER_DAY = 86_400_000_000_000
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


CHUNK = 4_096
"""Bars converted to Python objects at a time: bounds the loop's memory whatever the data size."""


class _History:
    """Per-symbol source arrays and the buffer strategies read, filled up to the current bar.

    The buffer is allocated on the first ``history()`` call, so strategies that keep their own
    state cost no memory here."""

    __slots__ = ("_buf", "filled", "splits", "src")

    def __init__(
        self, src: tuple[np.ndarray, ...], splits: list[tuple[int, float]] | None = None
    ) -> None:
        self.src = src
        """The bar columns (open, high, low, close, volume): views of the data, not copies."""
        self._buf: np.ndarray | None = None
        self.filled = 0
        self.splits = splits or []
        """``(first bar ex, ratio)`` of every split so far: the bars before it are shown in
        today's share units (prices divided by the ratio, volume multiplied)."""

    @property
    def buf(self) -> np.ndarray:
        if self._buf is None:
            self._buf = np.full((len(self.src), len(self.src[0])), np.nan)
        return self._buf

    def fill_to(self, end: int) -> None:
        """Copy the bars before ``end`` into the buffer (never a later one)."""
        if self.filled < end:
            buf, start = self.buf, self.filled
            for row, column in enumerate(self.src):
                buf[row, start:end] = column[start:end]
            for first_ex, ratio in self.splits:
                if first_ex > start:
                    _rescale(buf[:, start : min(first_ex, end)], ratio)
            self.filled = end

    def split(self, first_ex: int, ratio: float) -> None:
        """A split whose first bar ex is ``first_ex``: bars already in the buffer are rescaled
        now, the others when they are copied."""
        if self._buf is not None and self.filled:
            _rescale(self._buf[:, : min(self.filled, first_ex)], ratio)
        self.splits.append((first_ex, ratio))


def _rescale(bars: np.ndarray, ratio: float) -> None:
    """Prices of ``bars`` (rows open..close) divided by a split ``ratio``, volume multiplied."""
    bars[:4] /= ratio
    bars[4] *= ratio


class _Prices(Mapping[str, float]):
    """The latest close of each symbol, read live from the engine's position in the data."""

    __slots__ = ("_engine",)

    def __init__(self, engine: BacktestEngine) -> None:
        self._engine = engine

    def __getitem__(self, symbol: str) -> float:
        engine = self._engine
        if symbol not in engine._close:
            raise KeyError(symbol)
        i = engine._index_of(symbol)
        if i < 0:
            raise KeyError(symbol)
        return float(engine._close[symbol][i])

    def get(self, symbol: str, default: float | None = None) -> float | None:  # type: ignore[override]
        engine = self._engine
        closes = engine._close.get(symbol)
        if closes is None:
            return default
        i = engine._index_of(symbol)
        return float(closes[i]) if i >= 0 else default

    def __iter__(self) -> Iterator[str]:
        return (s for s in self._engine.symbols if self._engine.bar_index(s) >= 0)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Rates(Mapping[str, float]):
    """Account-currency units per unit of each foreign-quoted symbol's currency, at the
    engine's current time (the latest rate at or before it: no look-ahead)."""

    __slots__ = ("_cache", "_engine")

    def __init__(self, engine: BacktestEngine) -> None:
        self._engine = engine
        self._cache: dict[str, tuple[int, float]] = {}

    def __getitem__(self, symbol: str) -> float:
        engine = self._engine
        currency = engine.currencies[symbol]
        now = engine.now
        cached = self._cache.get(symbol)
        if cached is None or cached[0] != now:
            cached = self._cache[symbol] = (now, engine.fx.rate(currency, now))  # type: ignore[union-attr]
        return cached[1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._engine.currencies)

    def __len__(self) -> int:
        return len(self._engine.currencies)


class BacktestEngine:
    def __init__(
        self,
        data: MarketData | ChunkedMarket,
        strategies: Sequence[tuple[str, Strategy]],
        broker: SimulatedBroker,
        risk: RiskControl | RiskGate,
        *,
        initial_cash: float,
        currency: str,
        progress: Callable[[int, int], None] | None = None,
        history_bars: int = HISTORY_BARS,
        dividends: Literal["cash", "reinvest"] = "cash",
        fx: FxRates | None = None,
        currencies: Mapping[str, str] | None = None,
    ) -> None:
        """``progress(done, total)`` is called every CHUNK (4,096) bars, never per bar.
        ``history_bars``: how far back ``ctx.history`` reaches once earlier chunks are gone."""
        if not data.symbols:
            raise RunError("no bars to run on: the data is empty for the requested period")
        ids = [sid for sid, _ in strategies]
        if len(set(ids)) != len(ids):
            raise RunError(f"strategy ids must be unique, got {ids}")
        self.data = data
        self.symbols = data.symbols
        self.strategies = list(strategies)
        self.broker = broker
        if RISK_ID in ids:
            raise RunError(f"strategy id {RISK_ID!r} is reserved for the runner's risk exits")
        self.risk = risk if isinstance(risk, RiskControl) else RiskControl(list(risk.rules))
        self.risk.attach(self)
        self.initial_cash = initial_cash
        self.currency = currency
        self.now = 0
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.prices = _Prices(self)
        self._seq: dict[str, int] = dict.fromkeys([*ids, RISK_ID], 0)
        self._groups = 0
        self._queue: list[OrderUpdate | Fill] = []
        self._contexts = {sid: Context(self, sid) for sid in ids}
        self._by_id = dict(self.strategies)
        # Only strategies that override a callback are called for it.
        self._wants_fill = {
            sid for sid, s in self.strategies if type(s).on_fill is not Strategy.on_fill
        }
        self._wants_order = {
            sid for sid, s in self.strategies if type(s).on_order is not Strategy.on_order
        }
        self.history_bars = history_bars
        self.dividends = dividends
        self.fx = fx
        self.currencies = {s: c for s, c in (currencies or {}).items() if fx is not None}
        """Symbols quoted in another currency than the account's, and that currency."""
        """Corporate actions' dividends: credited as cash on the ex-date, or reinvested at the
        ex-date's close."""
        self._last_ts: int | None = None
        """The last timestamp of the chunks already played."""
        empty = np.empty(0, dtype=np.float64)
        # The current chunk's bars per symbol, after the bars carried over from earlier chunks
        # (`_off[s]` of them, the first being bar number `_base[s]` of the run).
        self._ts: dict[str, np.ndarray] = {s: np.empty(0, np.int64) for s in self.symbols}
        self._hist = {s: _History((empty,) * len(BAR_COLUMNS)) for s in self.symbols}
        self._close = {s: empty for s in self.symbols}
        self._off = dict.fromkeys(self.symbols, 0)
        self._base = dict.fromkeys(self.symbols, 0)
        # Position in the chunk: one counter shared by all symbols when they have bars at the
        # same timestamps (the common case), else one per symbol.
        self._aligned = True
        self._k = -1
        self._index = dict.fromkeys(self.symbols, -1)
        self._progress = progress
        self._total_bars = data.total_bars
        self._bars_done = 0
        self._cash = initial_cash
        self._qty = dict.fromkeys(self.symbols, 0.0)
        self._bar_times = LazyMapping(self._hist, self._last_bar_ts)
        self._warming = False
        self.require_bars = True
        """A backtest with no bars to play is an error; a restarted session whose last step was
        already journaled has none left, and that is fine."""
        self.before_send: Callable[[Order], None] | None = None
        """Called with each new order just before it goes to the broker (a paper or live runner
        journals it there: write-ahead)."""
        self.on_started: Callable[[], None] | None = None
        """Called once the broker has started, before the strategies' ``on_start`` (a runner
        restores a restarted session's positions and working orders there)."""
        self.cancel_at_end = True
        """Cancel the orders still working when the data ends (a backtest); a paper session
        that stops keeps them, journaled, for its restart."""
        self.order_log: list[Order] | None = None
        """When a list (the runner sets one to journal the run), every state of every order is
        appended to it in the order it happened: each order as created, then each update."""

    # --- called by Context and the broker -------------------------------------------------------
    def bar_index(self, symbol: str) -> int:
        """Index of the current bar of ``symbol`` in its own data (-1 before its first bar)."""
        i = self._index_of(symbol)  # an unknown symbol is a RunError naming the run's symbols
        return self._base[symbol] + i

    def seen(self, symbol: str) -> int:
        return self.bar_index(symbol) + 1

    def history(self, symbol: str, row: int, n: int | None) -> np.ndarray:
        end = self._index_of(symbol) + 1
        base = self._base[symbol]
        if base and (n is None or n > end):
            asked = "all bars (n=None)" if n is None else f"{n} bars"
            raise RunError(
                f"history({symbol!r}) asked for {asked}, but this run streams its data in "
                f"chunks and keeps the last {self.history_bars} bars of each symbol; pass "
                f"n <= {self.history_bars} or raise run.history_bars"
            )
        h = self._hist[symbol]
        h.fill_to(end)
        start = 0 if n is None else max(0, end - n)
        view = h.buf[row, start:end]
        view.flags.writeable = False
        return view

    def last_price(self, symbol: str) -> float:
        i = self._index_of(symbol)
        return float(self._close[symbol][i]) if i >= 0 else float("nan")

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
        extra: dict[str, Any] | None = None,
    ) -> Order:
        """Stamp a strategy's order, pass it through the risk gate and send it to the broker.
        ``extra``: the optional :class:`Order` fields (trail, one-cancels-other group)."""
        if self._warming:
            return self._ignored(strategy_id, symbol, side, quantity)
        order = self._new_order(strategy_id, symbol, side, quantity, kind, limit, stop, tif, extra)
        risk = self.risk
        reject = risk.check(order, self._risk_view()) if risk.active else None
        if reject is None:
            if self.before_send is not None:
                self.before_send(order)
            self.broker.submit(order)
        else:
            rejected = order.transition(OrderStatus.REJECTED, self.now, reject.message())
            self.orders[order.client_order_id] = rejected
            self._queue.append(OrderUpdate(rejected, order.status, self.now))
        return order

    def submit_oco(self, strategy_id: str, legs: list[dict[str, Any]]) -> list[Order]:
        """Orders that cancel each other: the first to fill cancels the rest. If the gate or the
        broker refuses one leg, the others are canceled (a group is all or nothing)."""
        if self._warming:
            return [self.submit(strategy_id, **leg) for leg in legs]
        group = self._group(strategy_id)
        orders = [self.submit(strategy_id, **leg, extra={"oco_group": group}) for leg in legs]
        self._all_or_nothing(orders, "one-cancels-other partner refused")
        return orders

    def submit_bracket(
        self, strategy_id: str, entry: dict[str, Any], take_profit: float, stop_loss: float
    ) -> tuple[Order, Order, Order]:
        """An entry and two exits held until it fills: a take-profit limit and a stop-loss stop
        for the same quantity on the other side, one-cancels-other. The gate checks the entry;
        the exits only ever close what the entry opened."""
        parent = self.submit(strategy_id, **entry)
        if self._warming:
            return parent, parent, parent
        exit_side = Side.SELL if parent.side is Side.BUY else Side.BUY
        group = self._group(strategy_id)
        legs = []
        for kind, limit, stop in (
            (OrderType.LIMIT, take_profit, None),
            (OrderType.STOP, None, stop_loss),
        ):
            leg = self._new_order(
                strategy_id, parent.symbol, exit_side, parent.quantity, kind, limit, stop,
                TimeInForce.GTC, {"oco_group": group, "parent_id": parent.client_order_id},
            )  # fmt: skip
            if parent.client_order_id in self.broker.orders:
                if self.before_send is not None:
                    self.before_send(leg)
                self.broker.hold(leg)
            else:  # the gate refused the entry
                canceled = leg.transition(OrderStatus.CANCELED, self.now, "bracket entry refused")
                self.orders[leg.client_order_id] = canceled
                self._queue.append(OrderUpdate(canceled, leg.status, self.now))
            legs.append(leg)
        return parent, legs[0], legs[1]

    def replace(self, strategy_id: str, client_order_id: str, changes: dict[str, float]) -> None:
        """Amend a working order's quantity or prices: a new risk check, then the broker."""
        if self._warming:
            return
        current = self.broker.get_order(client_order_id)
        if current is None or current.strategy_id != strategy_id:
            raise RunError(f"replace(): no order {client_order_id!r} of strategy {strategy_id!r}")
        if not (current.status.is_working or current.status is OrderStatus.HELD):
            raise RunError(
                f"replace(): order {client_order_id} is {current.status.value}; only working "
                "orders can be replaced"
            )
        try:
            amended = current.evolve(**changes)
        except TradeloomError as exc:
            raise RunError(f"replace(): {exc}") from exc
        risk = self.risk
        reject = (
            risk.check(amended, self._risk_view(exclude=client_order_id)) if risk.active else None
        )
        if reject is not None:
            note = f"replace rejected: {reject.message()}"
            self._queue.append(OrderUpdate(current, current.status, self.now, note))
            return
        self.broker.replace(amended)

    def cancel(self, client_order_id: str) -> None:
        """A strategy's cancel: through the gate's message rules (a trading state never stops a
        cancel), then the broker."""
        if self._warming:
            return
        risk = self.risk
        if risk.checks_cancels:
            order = self.broker.get_order(client_order_id)
            if order is not None and (order.status.is_working or order.status is OrderStatus.HELD):
                reject = risk.check_cancel(order, self._risk_view())
                if reject is not None:
                    note = f"cancel rejected: {reject.message()}"
                    self._queue.append(OrderUpdate(order, order.status, self.now, note))
                    return
        self.broker.cancel(client_order_id)

    # --- called by the risk control (RiskControl.attach) ---------------------------------------
    def risk_view(self) -> RiskView:
        return self._risk_view()

    def working_orders(self) -> list[Order]:
        """Working orders and exits held until their entry fills."""
        broker = self.broker
        held = [o for o in broker.orders.values() if o.status is OrderStatus.HELD]
        return [*broker.open_orders(), *held]

    def cancel_order(self, client_order_id: str, reason: str) -> None:
        self.broker.cancel(client_order_id, reason)

    def send_exit(self, symbol: str, side: Side, quantity: float, reason: str) -> Order | None:
        """A market order from the runner (strategy id ``risk``) that reduces a position; the
        control checks that it does. Returns it, or ``None`` when refused."""
        order = self._new_order(
            RISK_ID, symbol, side, quantity, OrderType.MARKET, None, None, TimeInForce.GTC, None
        )
        reject = self.risk.check(order, self._risk_view(), origin="risk")
        if reject is None:
            if self.before_send is not None:
                self.before_send(order)
            self.broker.submit(order)
            update = self.broker.get_order(order.client_order_id)
            if update is not None and update.status.is_working:
                self._queue.append(OrderUpdate(update, update.status, self.now, reason))
            return order
        rejected = order.transition(OrderStatus.REJECTED, self.now, reject.message())
        self.orders[order.client_order_id] = rejected
        self._queue.append(OrderUpdate(rejected, order.status, self.now))
        return None

    def bars_of(self, symbol: str, n: int) -> np.ndarray:
        """The last ``n`` bars of ``symbol`` seen so far: rows open, high, low, close, volume."""
        end = self._index_of(symbol) + 1
        h = self._hist[symbol]
        h.fill_to(end)
        view = h.buf[:, max(0, end - n) : end]
        view.flags.writeable = False
        return view

    def position_of(self, symbol: str) -> tuple[float, float]:
        book = self.broker.ledger.books.get(symbol)
        return (0.0, 0.0) if book is None else (book.quantity, book.avg_price)

    def _strategy_qty(self, strategy_id: str, symbol: str) -> float:
        return sum(
            f.signed_quantity
            for f in self.fills
            if f.strategy_id == strategy_id and f.symbol == symbol
        )

    def _new_order(
        self,
        strategy_id: str,
        symbol: str,
        side: Side,
        quantity: float,
        kind: OrderType,
        limit: float | None,
        stop: float | None,
        tif: TimeInForce,
        extra: dict[str, Any] | None,
    ) -> Order:
        if symbol not in self._hist:
            raise RunError(
                f"strategy {strategy_id!r} ordered unknown symbol {symbol!r}; "
                f"this run trades {', '.join(self.symbols)}"
            )
        seq = self._seq[strategy_id] = self._seq[strategy_id] + 1
        coid = f"{strategy_id}-{seq}"
        now = self.now
        try:
            if extra is None:
                order = Order(
                    coid, symbol, side, quantity, kind, limit, stop, tif, strategy_id,
                    OrderStatus.PENDING, 0.0, 0.0, now, now,
                )  # fmt: skip
            else:
                order = Order(
                    coid, symbol, side, quantity, kind, limit, stop, tif, strategy_id,
                    OrderStatus.PENDING, 0.0, 0.0, now, now, **extra,
                )  # fmt: skip
        except TradeloomError as exc:
            raise RunError(f"strategy {strategy_id!r} placed an invalid order: {exc}") from exc
        self.orders[coid] = order
        if self.order_log is not None:
            self.order_log.append(order)
        return order

    def _group(self, strategy_id: str) -> str:
        self._groups += 1
        return f"{strategy_id}-g{self._groups}"

    def _all_or_nothing(self, orders: list[Order], reason: str) -> None:
        sent = [self.broker.get_order(o.client_order_id) for o in orders]
        if all(o is not None and o.status.is_working for o in sent):
            return
        for o in sent:
            if o is not None:
                self.broker.cancel(o.client_order_id, reason)

    def _index_of(self, symbol: str) -> int:
        """Index of the current bar of ``symbol`` in its arrays (carried bars, then the chunk)."""
        try:
            return self._off[symbol] + (self._k if self._aligned else self._index[symbol])
        except KeyError:
            raise RunError(
                f"unknown symbol {symbol!r}; this run has {', '.join(self.symbols)}"
            ) from None

    def _risk_view(self, exclude: str = "") -> RiskView:
        """What the risk rules see; ``exclude``: an order being replaced (its old version is not
        counted among the working orders). Cash, equity and positions are computed only if a
        rule reads them; prices and bar times are live views (read during the check)."""
        ledger = self.broker.ledger
        working = self.broker.open_orders()
        if exclude:
            working = [o for o in working if o.client_order_id != exclude]
        return RiskView(
            self.now,
            Lazy(ledger.cash_now),
            None,  # cash + positions at the view's unit values, if a rule asks
            Lazy(ledger.positions),
            working,
            self.prices,
            ledger.rates,  # a live view at this bar's time, or {} (nothing to copy)
            self._strategy_qty,
            self.bars_of,
            self._bar_times,
            Lazy(ledger.quantities),
        )

    def _last_bar_ts(self, symbol: str) -> int | None:
        i = self._index_of(symbol)  # carried bars come first: -1 only before the first bar
        return int(self._ts[symbol][i]) if i >= 0 else None

    # --- the loop -------------------------------------------------------------------------------
    def run(self) -> EngineOutput:
        broker = self.broker
        broker.start(
            initial_cash=self.initial_cash,
            currency=self.currency,
            symbols=self.symbols,
            market=self,
        )
        ledger = broker.ledger
        if self.currencies:
            ledger.rates = _Rates(self)
        if self.on_started is not None:
            self.on_started()
        for sid, strategy in self.strategies:
            self._call(sid, "on_start", strategy.on_start, self._contexts[sid])
        self._deliver()
        curve = _Curve(self._total_bars)
        with _quiet_gc():
            chunks = self.data.chunks()
            while (chunk := next(chunks, None)) is not None:
                if curve.size:  # not the first chunk: give the last one's pages back
                    return_free_memory()
                if chunk.warmup:  # history: strategies only, orders ignored
                    timeline = self._enter(chunk)
                    self._warm(timeline)
                    self._last_ts = int(timeline[-1]) if len(timeline) else self._last_ts
                    continue
                timeline = self._enter(chunk)
                del chunk  # the engine keeps views of the bars it needs, nothing else
                done = len(ledger.journal)
                stops = self._stops(timeline)
                start, n = 0, len(timeline)
                while True:  # play up to the next stop, apply it (it may add a later one)
                    at = min(min(stops, default=n), n)
                    if at > start:
                        self._play(timeline, start, at)
                        start = at
                    if at not in stops:
                        break
                    self._stop(timeline, at, stops)
                self._last_ts = int(timeline[-1])
                self._curve(timeline, done, curve)
        if not curve.size and self.require_bars:
            raise RunError("no bars to run on: the data is empty for the requested period")
        if self.cancel_at_end:
            broker.cancel_all("backtest ended before the order could fill")
        self._deliver()
        for sid, strategy in self.strategies:
            self._call(sid, "on_stop", strategy.on_stop, self._contexts[sid])
        self._deliver()
        if self._progress is not None:
            self._progress(self._bars_done, self._bars_done)
        ts, cash, value, equity, gross = curve.arrays()
        return EngineOutput(ts, cash, value, equity, gross, list(self.orders.values()), self.fills)

    def _warm(self, timeline: np.ndarray) -> None:
        """A restarted session's history: the strategies see every bar again (rebuilding their
        own state) but the orders they place are ignored, and the broker sees nothing."""
        per_bar, per_step = self._callbacks()
        symbols = self.symbols
        iters = {s: self._chunk_rows(s, 0, len(self._ts[s]) - self._off[s]) for s in symbols}
        heads = {s: next(iters[s], None) for s in symbols}
        count = dict.fromkeys(symbols, 0)
        make = tuple.__new__
        splits = [
            a for a in self.data.actions
            if a.kind == "split" and len(timeline) and timeline[0] <= a.ex_ts <= timeline[-1]
        ]  # fmt: skip
        self._warming = True
        current = ""
        try:
            for k, t in enumerate(timeline.tolist()):
                self.now = t
                self._k = k
                while splits and splits[0].ex_ts <= t:  # the history the original run showed
                    split = splits.pop(0)
                    first_ex = int(np.searchsorted(self._ts[split.symbol], split.ex_ts))
                    self._hist[split.symbol].split(first_ex, split.ratio)
                bars: dict[str, Bar] = {}
                for s in symbols:
                    row = heads[s]
                    if row is not None and row[1] == t:
                        bars[s] = make(Bar, row)
                        heads[s] = next(iters[s], None)
                        if not self._aligned:
                            self._index[s] = count[s]
                        count[s] += 1
                for bar in bars.values():
                    for current, on_bar, ctx in per_bar:  # noqa: B007 (read when it raises)
                        on_bar(ctx, bar)
                for current, on_bars, ctx in per_step:  # noqa: B007 (read when it raises)
                    on_bars(ctx, bars)
        except TradeloomError:
            raise
        except Exception as exc:
            raise self._strategy_error(current, self._bar_callback(current), exc) from exc
        finally:
            self._warming = False
            self._queue.clear()

    def _ignored(self, strategy_id: str, symbol: str, side: Side, quantity: float) -> Order:
        """What an order placed during warm-up returns: never registered, never sent."""
        return Order(f"{strategy_id}-warmup", symbol, side, quantity, strategy_id=strategy_id)

    def _enter(self, chunk: MarketData) -> np.ndarray:
        """Make ``chunk`` the current bars, after the last ``history_bars`` bars of the previous
        chunk; return the chunk's timeline (its distinct timestamps)."""
        keep = max(self.history_bars, 1)  # the latest close is always kept, for marking
        stamps = []
        for s in self.symbols:
            frame = chunk.frames.get(s)
            ts, src = self._ts[s], self._hist[s].src
            cut = max(len(ts) - keep, 0)
            self._base[s] += cut
            if frame is None:
                new_ts, new_src = ts[cut:], tuple(c[cut:] for c in src)
            else:
                chunk_ts = frame.index.as_unit("ns").asi8
                columns = _bar_columns(frame)
                stamps.append(chunk_ts)
                if len(ts) == cut:  # nothing carried: views of the chunk, no copy
                    new_ts, new_src = chunk_ts, columns
                else:
                    new_ts = np.concatenate((ts[cut:], chunk_ts))
                    new_src = tuple(
                        np.concatenate((c[cut:], n)) for c, n in zip(src, columns, strict=True)
                    )
            self._off[s] = len(new_ts) - (0 if frame is None else len(frame))
            self._ts[s] = new_ts
            carried = [(i - cut, r) for i, r in self._hist[s].splits if i - cut > 0]
            self._hist[s] = _History(new_src, carried)
            self._close[s] = new_src[3]
        first = stamps[0] if stamps else np.empty(0, np.int64)
        self._aligned = len(stamps) == len(self.symbols) and all(
            len(t) == len(first) and np.array_equal(t, first) for t in stamps
        )
        self._k = -1
        self._index = dict.fromkeys(self.symbols, -1)
        if len(self.symbols) == 1 or self._aligned:
            return first
        return np.unique(np.concatenate(stamps))

    def _play(self, timeline: np.ndarray, start: int, end: int) -> None:
        """Play the chunk's timestamps ``start`` to ``end`` (exclusive)."""
        if len(self.symbols) == 1:
            self._loop_one_symbol(start, end)
        else:
            self._loop_merged(timeline, start, end)

    def _stops(self, timeline: np.ndarray) -> dict[int, list[tuple[str, Any]]]:
        """What happens between bars of this chunk, by the index of the bar it precedes (the
        chunk's length: after its last bar): corporate actions at the open of their ex-date's
        bar, dividend reinvestment after that bar's close, and the broker's daily financing at
        the first bar of each UTC day."""
        stops: dict[int, list[tuple[str, Any]]] = {}
        after = self._last_ts
        for action in self.data.actions:
            if (after is not None and action.ex_ts <= after) or action.ex_ts > timeline[-1]:
                continue
            if after is None and action.ex_ts < timeline[0]:
                continue  # before the first bar of the run: nothing to apply it to
            at = int(np.searchsorted(timeline, action.ex_ts))
            stops.setdefault(at, []).append(("action", action))
        if getattr(self.broker, "wants_daily", False):
            days = timeline // NS_PER_DAY
            starts = np.flatnonzero(np.diff(days)) + 1
            if after is None or after // NS_PER_DAY != days[0]:
                starts = np.concatenate(([0], starts))
            for at in starts.tolist():
                stops.setdefault(at, []).append(("accrue", None))
        return stops

    def _stop(self, timeline: np.ndarray, at: int, stops: dict[int, list[tuple[str, Any]]]) -> None:
        """Apply what happens before bar ``at`` of the chunk (after the last bar if ``at`` is
        the chunk's length): dividends before splits, as the actions are ordered. A dividend
        to reinvest adds a stop after its ex-date's bar, at that bar's close."""
        ledger, broker = self.broker.ledger, self.broker
        for kind, item in stops.pop(at):
            if kind == "reinvest":
                symbol, amount, ts = item
                ledger.reinvest(ts, symbol, amount, self.last_price(symbol))
                continue
            self.now = int(timeline[at])
            if kind == "accrue":
                broker.accrue(self.now)  # type: ignore[attr-defined]
            elif item.kind == "dividend":
                amount = ledger.quantity(item.symbol) * item.amount * ledger.rate(item.symbol)
                if amount:
                    ledger.cash_flow(self.now, amount, "dividend", item.symbol)
                    if self.dividends == "reinvest" and amount > 0:
                        after_bar = ("reinvest", (item.symbol, amount, self.now))
                        stops.setdefault(at + 1, []).append(after_bar)
            else:
                ledger.split(self.now, item.symbol, item.ratio)
                broker.apply_split(item.symbol, item.ratio)
                first_ex = int(np.searchsorted(self._ts[item.symbol], self.now))
                self._hist[item.symbol].split(first_ex, item.ratio)
        self._deliver()

    def _callbacks(self) -> tuple[list, list]:  # type: ignore[type-arg]
        """Strategies that keep the default ``on_bars`` are called per bar, without it."""
        per_bar, per_step = [], []
        for sid, strategy in self.strategies:
            ctx = self._contexts[sid]
            if type(strategy).on_bars is Strategy.on_bars:
                per_bar.append((sid, strategy.on_bar, ctx))
            else:
                per_step.append((sid, strategy.on_bars, ctx))
        return per_bar, per_step

    def _loop_one_symbol(self, start: int, end: int) -> None:
        # The per-timestamp steps of _loop_merged, specialised for one symbol (the common
        # research case): no per-step dict of bars, no head-of-stream bookkeeping. Keep the two
        # loops' step order identical; tests run both on the same strategies.
        (symbol,) = self.symbols
        rows = self._chunk_rows(symbol, start, end)
        per_bar, per_step = self._callbacks()
        broker = self.broker
        working = broker.working[symbol]
        events = broker.events
        queue = self._queue
        at_close = broker.at_close
        session_closes = broker.at_session_close  # market-on-close orders, if any
        margin = broker.checks_margin
        risk = self.risk
        watch_bars, watch_equity = risk.watches_bars, risk.watches_equity
        ledger = broker.ledger
        books = ledger.books
        exact = not self.currencies  # equity is cash + units × close
        previous: float | None = None
        make = tuple.__new__
        current = ""
        try:
            for k, row in enumerate(rows, start):
                bar = make(Bar, row)
                self._k = k
                self.now = row[1]
                if working:
                    current = ""
                    broker.on_bar(bar)
                if events or queue:
                    self._deliver()
                for current, on_bar, ctx in per_bar:  # noqa: B007 (read when it raises)
                    on_bar(ctx, bar)
                if per_step:
                    bars = {symbol: bar}
                    for current, on_bars, ctx in per_step:  # noqa: B007 (read when it raises)
                        on_bars(ctx, bars)
                if working and (at_close or session_closes):
                    current = ""
                    broker.on_close(bar)
                if margin:
                    current = ""
                    broker.check_margin()
                if events or queue:
                    self._deliver()
                if watch_bars:
                    current = ""
                    self._watch_bars((bar,))
                if watch_equity:  # cheap per bar: the monitors are called only out of band
                    if exact:
                        book = books.get(symbol)
                        equity = ledger.cash + (book.quantity * bar.close if book else 0.0)
                    else:
                        equity = ledger.equity()
                    low, high, until = risk.equity_band
                    if equity < low or equity > high or row[1] >= until:
                        current = ""
                        self._mark(equity, previous)
                    previous = equity
        except TradeloomError:
            raise
        except Exception as exc:
            raise self._strategy_error(current, self._bar_callback(current), exc) from exc

    def _watch_bars(self, bars: Iterable[Bar]) -> None:
        """The risk control's turn after the bars at this timestamp: scheduled operator
        actions, protective exits."""
        self.risk.on_bars(bars)
        if self.broker.events or self._queue:
            self._deliver()

    def _mark(self, equity: float, previous: float | None) -> None:
        """Equity left the monitors' quiet band: let them look (they may halt, flatten)."""
        self.risk.on_equity(self.now, equity, previous)
        if self.broker.events or self._queue:
            self._deliver()

    def _loop_merged(self, timeline: np.ndarray, start: int, end: int) -> None:
        symbols = self.symbols
        # One iterator of bar tuples per symbol, each with its next row waiting in `head`.
        first, last = timeline[start], timeline[end - 1]
        count = {}
        iters = {}
        for s in symbols:
            own = self._ts[s][self._off[s] :]
            lo = int(np.searchsorted(own, first))
            count[s] = lo
            iters[s] = self._chunk_rows(s, lo, int(np.searchsorted(own, last, side="right")))
        head = {s: next(iters[s], None) for s in symbols}
        per_bar, per_step = self._callbacks()
        broker = self.broker
        working = broker.working
        events = broker.events
        queue = self._queue
        at_close = broker.at_close
        session_closes = broker.at_session_close  # market-on-close orders, if any
        margin = broker.checks_margin
        risk = self.risk
        watch_bars, watch_equity = risk.watches_bars, risk.watches_equity
        ledger = broker.ledger
        previous: float | None = None
        index = self._index
        aligned = self._aligned
        make = tuple.__new__
        current = ""
        try:
            for k, t in enumerate(timeline[start:end].tolist(), start):
                self.now = t
                self._k = k
                bars: dict[str, Bar] = {}
                for s in symbols:
                    row = head[s]
                    if row is not None and row[1] == t:
                        bar = bars[s] = make(Bar, row)
                        head[s] = next(iters[s], None)
                        if not aligned:
                            index[s] = count[s]
                        count[s] += 1
                        if working[s]:
                            current = ""
                            broker.on_bar(bar)
                if events or queue:
                    self._deliver()
                if per_bar:
                    for bar in bars.values():
                        for current, on_bar, ctx in per_bar:  # noqa: B007 (read when it raises)
                            on_bar(ctx, bar)
                for current, on_bars, ctx in per_step:  # noqa: B007 (read when it raises)
                    on_bars(ctx, bars)
                if at_close or session_closes:
                    current = ""
                    for s, bar in bars.items():
                        if working[s]:
                            broker.on_close(bar)
                if margin:
                    current = ""
                    broker.check_margin()
                if events or queue:
                    self._deliver()
                if watch_bars:
                    current = ""
                    self._watch_bars(bars.values())
                if watch_equity:
                    equity = ledger.equity()
                    low, high, until = risk.equity_band
                    if equity < low or equity > high or t >= until:
                        current = ""
                        self._mark(equity, previous)
                    previous = equity
        except TradeloomError:
            raise
        except Exception as exc:
            raise self._strategy_error(current, self._bar_callback(current), exc) from exc

    def _chunk_rows(self, symbol: str, start: int, end: int) -> Iterator[tuple]:  # type: ignore[type-arg]
        """Bar tuples of the chunk's rows ``start`` to ``end`` of ``symbol``."""
        a, b = self._off[symbol] + start, self._off[symbol] + end
        src = tuple(c[a:b] for c in self._hist[symbol].src)
        return _rows(symbol, self._ts[symbol][a:b], src, self._advance)

    def _curve(self, timeline: np.ndarray, done: int, curve: _Curve) -> None:
        """Append cash, position value, equity and gross exposure at each timestamp of the
        chunk to ``curve``, rebuilt from the fills journaled since entry ``done`` of the
        ledger's journal (written in place: one temporary array at a time)."""
        journal = self.broker.ledger.journal
        n = len(timeline)
        cash, value, equity, gross = curve.extend(timeline)
        value[:] = 0.0
        gross[:] = 0.0
        new = journal[done:]
        if not new:
            cash[:] = self._cash
        else:
            j_ts = np.fromiter((e[0] for e in new), np.int64, len(new))
            steps = np.searchsorted(timeline, j_ts)
            cash_after = np.fromiter((e[1] for e in new), np.float64, len(new))
            cash[:] = _step_series(steps, cash_after, n, self._cash)
        for symbol in self.symbols:
            held = self._qty[symbol]
            mine = [i for i, e in enumerate(new) if e[2] == symbol]
            if not mine and held == 0.0:
                continue
            if mine:
                after = np.array([new[i][3] for i in mine], np.float64)
                qty = _step_series(steps[mine], after, n, held)
            else:
                qty = np.full(n, held)
            self._qty[symbol] = float(qty[-1]) if n else held
            qty *= self._close_on(symbol, timeline)  # the position's value, computed in place
            currency = self.currencies.get(symbol)
            if currency is not None:  # in the account currency at each timestamp
                qty *= self.fx.rates(currency, timeline)  # type: ignore[union-attr]
            value += qty
            gross += np.abs(qty, out=qty)
            del qty
        np.add(cash, value, out=equity)
        if n:
            self._cash = float(cash[-1])

    def _advance(self, bars: int) -> None:
        """A chunk of ``bars`` bars is about to be played: report the bars done so far."""
        if self._progress is not None:
            self._progress(self._bars_done, self._total_bars)
        self._bars_done += bars

    def _close_on(self, symbol: str, timeline: np.ndarray) -> np.ndarray:
        """The latest close of ``symbol`` at each timestamp of the chunk's ``timeline`` (0
        before its first bar, where it has no position either)."""
        close = self._close[symbol]
        if self._aligned and len(timeline) == len(close) - self._off[symbol]:
            return close[self._off[symbol] :]
        at = np.searchsorted(self._ts[symbol], timeline, side="right") - 1
        marked = close[np.maximum(at, 0)]
        marked[at < 0] = 0.0
        return marked

    def _deliver(self) -> None:
        """Route broker events to their strategies until no callback places a new order."""
        orders, fills = self.orders, self.fills
        wants_fill, wants_order = self._wants_fill, self._wants_order
        risk = self.risk
        fill_watch = risk.watches_fills
        log = self.order_log
        for _ in range(MAX_ROUNDS):
            events = self._queue + self.broker.drain()
            self._queue.clear()
            if not events:
                return
            for event in events:
                if type(event) is Fill:
                    fills.append(event)
                    if fill_watch:
                        risk.on_fill(event)
                    sid = event.strategy_id
                    if sid in wants_fill:
                        strategy = self._by_id[sid]
                        self._call(sid, "on_fill", strategy.on_fill, self._contexts[sid], event)
                else:
                    order = event.order
                    orders[order.client_order_id] = order
                    if log is not None:
                        log.append(order)
                    sid = order.strategy_id
                    if sid in wants_order:
                        strategy = self._by_id[sid]
                        self._call(sid, "on_order", strategy.on_order, self._contexts[sid], event)
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
            raise self._strategy_error(sid, name, exc) from exc

    def _bar_callback(self, sid: str) -> str:
        strategy = self._by_id.get(sid)
        overrides = strategy is not None and type(strategy).on_bars is not Strategy.on_bars
        return "on_bars" if overrides else "on_bar"

    def _strategy_error(self, sid: str, name: str, exc: Exception) -> Exception:
        if not sid:  # raised by the engine or the broker itself: a bug, not a strategy fault
            return exc
        when = np.datetime64(self.now, "ns")
        return RunError(
            f"strategy {sid!r} ({type(self._by_id[sid]).__name__}) raised in {name} at "
            f"{when}: {type(exc).__name__}: {exc}"
        )


class _Curve:
    """The equity curve, written chunk by chunk into arrays allocated once for the expected
    number of timestamps (pages never written are never resident), grown if it is exceeded."""

    def __init__(self, capacity: int) -> None:
        self.size = 0
        self._first: np.ndarray | None = None
        self._ts = np.empty(max(capacity, 1), np.int64)
        self._values = [np.empty(max(capacity, 1)) for _ in range(4)]

    def extend(self, timeline: np.ndarray) -> tuple[np.ndarray, ...]:
        """Views of the next ``len(timeline)`` rows (``cash, position_value, equity, gross``)
        to fill. The first chunk's timestamps are kept by reference (a loaded run's are the
        data's own), copied only when a second chunk follows."""
        a, b = self.size, self.size + len(timeline)
        if b > len(self._ts):
            grow = max(b, 2 * len(self._ts))
            self._ts = np.concatenate((self._ts[:a], np.empty(grow - a, np.int64)))
            self._values = [np.concatenate((v[:a], np.empty(grow - a))) for v in self._values]
        if a == 0:
            self._first = timeline
        else:
            if self._first is not None:
                self._ts[: len(self._first)] = self._first
                self._first = None
            self._ts[a:b] = timeline
        self.size = b
        return tuple(v[a:b] for v in self._values)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """``ts, cash, position_value, equity, gross_exposure``: views, no copies."""
        n = self.size
        ts = self._first if self._first is not None else self._ts[:n]
        return (ts, *(v[:n] for v in self._values))


def _step_series(steps: np.ndarray, values: np.ndarray, n: int, initial: float) -> np.ndarray:
    """A series over ``n`` steps that holds ``initial`` until the first step in ``steps`` and
    then the latest value recorded at or before each step (``steps`` ascending)."""
    last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last, steps, np.arange(len(steps)))
    np.maximum.accumulate(last, out=last)
    before = last < 0
    series = values[np.maximum(last, 0, out=last)]
    series[before] = initial
    return series


@contextmanager
def _quiet_gc() -> Iterator[None]:
    """Keep the cyclic garbage collector from rescanning the run's growing order history.

    A run allocates many small objects (bars, orders, events) and keeps tens of thousands of
    them; CPython's default thresholds then trigger full collections over all of them again and
    again (about 12 % of a 1M-bar run). Objects alive before the loop are frozen out of the
    collector and the young-generation threshold is raised; both are restored afterwards.
    Reference counting still frees everything that is not part of a cycle immediately.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 100_000), max(thresholds[1], 50), max(thresholds[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _rows(
    symbol: str,
    ts: np.ndarray,
    src: tuple[np.ndarray, ...],
    advance: Callable[[int], None],
) -> Iterator[tuple]:  # type: ignore[type-arg]
    """``(symbol, ts, open, high, low, close, volume)`` tuples of plain Python numbers, converted
    from the arrays a chunk at a time (fast to iterate, small in memory)."""

    def chunks() -> Iterator[Iterator[tuple]]:  # type: ignore[type-arg]
        for a in range(0, len(ts), CHUNK):
            b = min(a + CHUNK, len(ts))
            advance(b - a)
            yield zip(
                repeat(symbol),
                ts[a:b].tolist(),
                *(column[a:b].tolist() for column in src),
                strict=False,
            )

    # chain.from_iterable pulls the tuples in C; chunks() only runs once per chunk.
    return chain.from_iterable(chunks())


def _bar_columns(frame: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """The bar columns as float64 arrays: views of the frame's data when already float64."""
    return tuple(frame[column].to_numpy(dtype=np.float64) for column in BAR_COLUMNS)

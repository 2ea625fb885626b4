"""The simulated broker: order matching on bars, fees, slippage and a cash account.

Fill conventions (printed in every report through :meth:`SimulatedBroker.conventions`):

* An order sent while the strategy handles bar *t* is accepted at once and can first fill on
  bar *t+1* of its symbol. Market orders fill at that bar's **open** (``fill_at = "next_open"``,
  the default). ``fill_at = "close"`` fills market orders at the close of the bar on which they
  were sent — optimistic, since the strategy decided after seeing that close; explicit opt-in.
* Limit orders fill when a later bar trades through the limit: at the limit price, or at the
  open when the bar opens beyond it (a gap in the trader's favour fills at the better open).
* Stop orders trigger when a later bar touches the stop and fill at the stop price, or at the
  open when the bar gaps through the stop (a gap against the trader fills at the worse open,
  never at the stop price).
* Stop-limit orders become limit orders when the stop is touched; on the triggering bar they
  fill only at the trigger price if that is within the limit (we cannot know the path after
  the trigger inside one bar, so the conservative outcome is assumed); otherwise they work as
  limit orders from the next bar.
* Slippage (basis points, against the trader) applies to market and stop fills, never to limit
  fills. Fees follow the configured model.
* Cost models (:meth:`SimulatedBroker.use_costs`, the deployment's ``costs``) apply in their
  configured order. A fill is a *maker* fill when a limit order (or a triggered stop-limit)
  fills at its limit price; every other fill is a *taker* fill (market, stop, and a limit order
  filling at a better open: it was marketable). Taker fills get each model's ``fill_price``
  after slippage (a limit price is never crossed); the fee of a fill is the ``fees`` model's
  fee plus every model's commission. The cash check at submission includes the commissions
  (as a taker fill at the reference price), not the spread. :meth:`SimulatedBroker.accrue`
  books the models' daily financing as cash flows.
* Cash account: a buy is rejected at submission when its estimated cost (reference price plus
  slippage and fees) exceeds cash not already reserved by working buy orders; if a gap makes a
  market or stop buy unaffordable at the fill, the order is canceled with the reason. Short
  sales credit the proceeds to cash; no margin requirement is modelled yet. A buy that only
  covers a short is never refused for cash (cash may go negative: a margin debit).
* DAY orders expire after the last bar of the (UTC) calendar day on which they could first fill.
* Fills are complete (no partial fills; volume is not a constraint yet).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from tradeloom.components import Capabilities, Mode, Params
from tradeloom.errors import RunError
from tradeloom.execution.accounts import Account, CashAccount, MarginAccount, MarginCall
from tradeloom.execution.broker import Broker, BrokerEvent, MarketView
from tradeloom.execution.cost_models import (
    BUILTIN_COST_MODELS,
    Accrual,
    CostModel,
    Liquidity,
    TradeInfo,
)
from tradeloom.execution.costs import FeeModel, NoFees, slipped
from tradeloom.execution.fills import FillModel
from tradeloom.model import (
    AccountSnapshot,
    Bar,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Side,
    TimeInForce,
)
from tradeloom.portfolio import Ledger

if TYPE_CHECKING:
    from tradeloom.calendars import SessionCalendar

NS_PER_DAY = 86_400_000_000_000


class SimulatedBroker(Broker):
    """Simulated execution against bar data, with fees, slippage and a cash account."""

    class Params(Params):
        fill_at: Literal["next_open", "close"] = "next_open"
        """When market orders fill: the next bar's open (default, realistic) or the close of
        the bar the order was sent on (optimistic; flagged in the report)."""
        fees: FeeModel = Field(default_factory=NoFees)
        """Commission model: ``{model = "none"}``, ``{model = "percent", rate = 0.001}`` or
        ``{model = "per_unit", per_unit = 0.005, minimum = 1.0}``."""
        slippage_bps: float = Field(default=0.0, ge=0, le=1000)
        """Slippage against the trader on market and stop fills, in basis points."""
        allow_short: bool = True
        """Allow sells that take a position below zero."""
        account: Account = Field(default_factory=CashAccount)
        """``{type = "cash"}`` (default: buys need the cash) or ``{type = "margin",
        initial_margin = 0.5, maintenance_margin = 0.25, max_leverage = 2}``: opening orders
        need initial margin and stay under the leverage cap; when equity falls below the
        maintenance requirement at a bar's close, every position is closed at the next bar."""

    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST, Mode.PAPER}), short_selling=True)

    # Cost models (set by use_costs): all of them, and those overriding each hook, with names.
    _costs: tuple[CostModel, ...] = ()
    _cost_names: tuple[str, ...] = ()
    _commissions: tuple[tuple[CostModel, str, bool], ...] = ()
    """``(model, name, stateful)``: stateful models are copied for estimates."""
    _stateful = False
    _pricers: tuple[tuple[CostModel, str], ...] = ()
    _accruers: tuple[tuple[CostModel, str], ...] = ()
    # Fill models (set by use_fill_models).
    _fill_models: tuple[FillModel, ...] = ()
    _capacity_models: tuple[FillModel, ...] = ()
    _delay: tuple[int, int] = (0, 0)
    _models_at_close = False
    # Sessions (set by use_calendar): None means UTC days, every bar inside a session.
    _calendar: SessionCalendar | None = None

    def start(
        self,
        *,
        initial_cash: float,
        currency: str,
        symbols: list[str],
        market: MarketView | None = None,
    ) -> None:
        self.market: MarketView = market if market is not None else _OwnMarket(symbols)
        self._own_market = market is None
        self.ledger = Ledger(initial_cash, currency, prices=self.market.prices)
        self.symbols = frozenset(symbols)
        self.orders: dict[str, Order] = {}
        self.working: dict[str, list[str]] = {s: [] for s in symbols}
        """Client order ids of working orders by symbol, in the order they were accepted."""
        self.events: list[BrokerEvent] = []
        """Events not yet drained. The list object never changes, so a driver may test it."""
        self._active_day: dict[str, int] = {}
        self._children: dict[str, list[str]] = {}
        """Client order ids of a bracket entry's exits, while the entry has not filled."""
        self._exits: dict[str, list[str]] = {}
        """The same once the entry has (partly) filled: the exits grow with its later fills."""
        self._waiting: dict[str, tuple[int, int]] = {}
        """Orders not active yet (latency): the bar index they must pass and the first time."""
        self._room: tuple[str, int, float] | None = None
        """Volume left on the current bar of a symbol: ``(symbol, ts, units)``."""
        self.at_session_close: dict[str, int] = {}
        """Working market-on-close orders: the engine calls :meth:`on_close` while any exist."""
        self._opening: dict[str, int] = {}
        """Market-on-open orders: the session whose first bar they fill at."""
        self._seen: dict[str, int] = {}
        """The latest bar time of each symbol the broker was shown (for a bar's length)."""
        self._sessions: dict[int, int] = {}
        self._closes: dict[int, int] = {}
        self._on_margin = self._margin is not None
        self._fills_at_close = self.at_close
        self.margin_calls: list[tuple[int, MarginCall]] = []
        """``(ts, call)`` of every margin call (margin accounts)."""
        self._liquidating: set[str] = set()
        self._fill_seq = 0
        self._accrued_ts: int | None = None
        for model, name in zip(self._costs, self._cost_names, strict=True):
            _guarded(name, model, "reset", model.reset)

    # --- the contract ---------------------------------------------------------------------------
    def submit(self, order: Order) -> None:
        ts = self._now
        if order.type is OrderType.TRAILING_STOP and order.stop_price is None:
            ref = self.ledger.last_price.get(order.symbol)
            if ref is not None:  # the first level trails the latest close
                order = order._evolve(stop_price=order.trail_stop(ref))
        reason = self._refusal(order)
        calendar = self._calendar
        if not reason and calendar and order.tif in _ONE_BAR and self._session(ts) < 0:
            reason = (
                f"the market is closed ({calendar.name} session hours): an "
                f"{order.tif.value.upper()} order cannot wait for the open"
            )
        if reason:
            rejected = order.transition(OrderStatus.REJECTED, ts, reason)
            if order.client_order_id in self.orders:  # a reused id: the original stands
                self.events.append(OrderUpdate(rejected, order.status, ts))
            else:
                self._record(rejected, order.status)
            return
        self._record(order.transition(OrderStatus.ACCEPTED, ts), order.status)
        coid = order.client_order_id
        self.working[order.symbol].append(coid)
        if order.type is OrderType.MARKET_ON_OPEN:
            self._opening[coid] = self._next_session(ts)
        elif order.type is OrderType.MARKET_ON_CLOSE:
            self.at_session_close[coid] = ts
        if self._delay != (0, 0):
            bars, ns = self._delay
            self._waiting[order.client_order_id] = (
                self.market.bar_index(order.symbol) + bars,
                ts + ns,
            )

    def restore(self, orders: list[Order], fills: int) -> None:
        """A restarted paper session: make ``orders`` (their last journaled states) known
        again — working ones working, in the given order — with no events, and continue
        fill ids after the ``fills`` already journaled (``F<n>``: a replayed bar fills with the
        same ids as before the crash)."""
        for order in orders:
            self.orders[order.client_order_id] = order
            if order.status.is_working:
                self.working[order.symbol].append(order.client_order_id)
        self._fill_seq = max(self._fill_seq, fills)

    def hold(self, order: Order) -> None:
        if not order.parent_id or order.parent_id not in self.orders:
            raise ValueError(f"order {order.client_order_id}: hold() needs a known parent_id")
        if order.client_order_id in self.orders:  # refused; the original stands
            reason = f"duplicate client order id {order.client_order_id!r}"
            rejected = order.transition(OrderStatus.REJECTED, self._now, reason)
            self.events.append(OrderUpdate(rejected, order.status, self._now))
            return
        self._record(order.transition(OrderStatus.HELD, self._now), order.status)
        self._children.setdefault(order.parent_id, []).append(order.client_order_id)
        parent = self.orders[order.parent_id]
        if parent.status.is_terminal and parent.status is not OrderStatus.FILLED:
            self._close(self.orders[order.client_order_id], OrderStatus.CANCELED, _NO_ENTRY)

    def cancel(self, client_order_id: str, reason: str = "canceled by strategy") -> None:
        order = self.orders.get(client_order_id)
        if order is None or not (order.status.is_working or order.status is OrderStatus.HELD):
            return
        self._close(order, OrderStatus.CANCELED, reason)

    def replace(self, order: Order) -> None:
        current = self.orders.get(order.client_order_id)
        if current is None or not (current.status.is_working or current.status is OrderStatus.HELD):
            state = "unknown" if current is None else current.status.value
            raise ValueError(f"order {order.client_order_id} cannot be replaced: it is {state}")
        ts = self._now
        why = ""
        if order.quantity <= current.filled_quantity + 1e-9:
            why = (
                f"new quantity {order.quantity:g} is not above the {current.filled_quantity:g} "
                "already filled"
            )
        elif current.status.is_working and self._margin is not None:
            ref = self.ledger.last_price.get(order.symbol, 0.0)
            why = self._margin_refusal(order, ref, exclude=order.client_order_id)
        elif current.status.is_working and order.side is Side.BUY:
            ref = self.ledger.last_price.get(order.symbol, 0.0)
            why = self._cash_refusal(order, ref, exclude=order.client_order_id)
        if why:
            self.events.append(OrderUpdate(current, current.status, ts, f"replace rejected: {why}"))
            return
        amended = order._evolve(
            status=current.status,
            filled_quantity=current.filled_quantity,
            avg_fill_price=current.avg_fill_price,
            triggered=current.triggered,
            updated_ts=ts,
        )
        self.orders[order.client_order_id] = amended
        self.events.append(OrderUpdate(amended, current.status, ts, _changes(current, amended)))

    def get_order(self, client_order_id: str) -> Order | None:
        return self.orders.get(client_order_id)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Working orders, in the order they were accepted (of one symbol if given)."""
        orders = self.orders
        if symbol is not None:
            return [orders[c] for c in self.working.get(symbol, ())]
        return [orders[c] for ids in self.working.values() for c in ids]

    def positions(self) -> dict[str, Position]:
        return self.ledger.positions()

    def account(self) -> AccountSnapshot:
        ledger = self.ledger
        value = ledger.position_value()
        return AccountSnapshot(
            ledger.currency, ledger.cash, ledger.cash + value, value, ledger.gross_exposure()
        )

    def buying_power(self) -> float:
        """Cash not reserved by working buy orders (what a new buy may spend)."""
        return self.ledger.cash - self._reserved_cash()

    def drain(self) -> list[BrokerEvent]:
        events = self.events[:]
        self.events.clear()
        return events

    # --- driven by the engine -------------------------------------------------------------------
    @property
    def _now(self) -> int:
        return self.market.now

    def on_bar(self, bar: Bar) -> None:
        """Match working orders of ``bar.symbol`` against the new bar.

        The engine calls this only when the symbol has working orders (an engine that does not
        pass a market view to :meth:`start` must call it for every bar: the broker then keeps
        its own clock and prices)."""
        if self._own_market:
            self.market.advance(bar)  # type: ignore[attr-defined]
        working = self.working[bar.symbol]
        if not working:
            return
        if self._calendar is not None and self._session(bar.ts) < 0:
            return  # outside the session: orders wait
        orders = self.orders
        matched_groups: list[str] = []
        one_bar: list[str] = []
        waiting = self._waiting
        if self._capacity_models:
            self._room = (bar.symbol, bar.ts, self._capacity(bar))
        for coid in list(working):
            order = orders[coid]
            if not order.status.is_working:  # canceled earlier in this bar (one-cancels-other)
                continue
            if waiting and coid in waiting:
                after_bar, after_ts = waiting[coid]
                if self.market.bar_index(bar.symbol) <= after_bar or bar.ts < after_ts:
                    continue  # latency: not active yet
                del waiting[coid]
            tif = order.tif
            if tif is not TimeInForce.GTC:
                if tif is TimeInForce.DAY and self._expired(coid, bar.ts):
                    self._close(order, OrderStatus.EXPIRED, "DAY order expired at end of day")
                    continue
                if tif is TimeInForce.IOC or tif is TimeInForce.FOK:
                    one_bar.append(coid)
            if order.oco_group:
                if order.oco_group not in matched_groups:
                    matched_groups.append(order.oco_group)
                    self._match_group(order.oco_group, bar, stops_only=False)
            else:
                self._match(order, bar)
        for coid in one_bar:  # IOC / FOK: one bar to fill, then canceled
            order = orders[coid]
            if order.status.is_working:
                what = "immediate-or-cancel" if order.tif is TimeInForce.IOC else "fill-or-kill"
                self._close(order, OrderStatus.CANCELED, f"{what}: not filled on its first bar")

    def on_close(self, bar: Bar) -> None:
        """At ``bar``'s close: fill the market-on-close orders whose session ends with it and,
        with market orders filling at the close (``fill_at = "close"`` or a same-close fill
        model), the working market orders of ``bar.symbol``."""
        if self.at_session_close:
            self._session_closes(bar)
        if not self.at_close:
            return
        if self._capacity_models and (self._room is None or self._room[:2] != (bar.symbol, bar.ts)):
            self._room = (bar.symbol, bar.ts, self._capacity(bar))
        for coid in list(self.working[bar.symbol]):
            order = self.orders[coid]
            ready = order.status.is_working and coid not in self._waiting
            if order.type is OrderType.MARKET and ready:
                self._fill(order, bar.close, bar.ts, None, priced_on=bar)

    def _session_closes(self, bar: Bar) -> None:
        """Fill the market-on-close orders of ``bar.symbol`` if ``bar`` is the last bar of its
        session: it reaches the session's close within one bar length (the time since the
        symbol's previous bar), and it came after the bar the order was sent on."""
        symbol, ts = bar.symbol, bar.ts
        session = self._session(ts)
        previous = self._seen.get(symbol)
        self._seen[symbol] = ts
        if session < 0:
            return
        for coid in list(self.working[symbol]):
            sent = self.at_session_close.get(coid)
            if sent is None or ts <= sent or coid in self._waiting:
                continue
            length = ts - max(previous if previous is not None else sent, sent)
            if ts + length >= self._session_close(session, ts):
                self._fill(self.orders[coid], bar.close, ts, None, priced_on=bar)

    def cancel_all(self, reason: str) -> None:
        for order in self.open_orders():
            self._close(order, OrderStatus.CANCELED, reason)
        for children in list(self._children.values()):
            for coid in children:
                if self.orders[coid].status is OrderStatus.HELD:
                    self._close(self.orders[coid], OrderStatus.CANCELED, reason)

    def conventions(self) -> list[str]:
        p = self.params
        if not self.at_close:
            timing = "Market orders fill at the next bar's open (no look-ahead)."
        else:
            timing = (
                "OPTIMISTIC: market orders fill at the close of the bar on which the strategy "
                "decided (fill_at = close)."
            )
        lines = [
            timing,
            "Limit orders fill at the limit price, or at the open when a bar opens beyond it.",
            "Stop orders fill at the stop price, or at the open when a bar gaps through the stop.",
            "Stop-limit orders triggered inside a bar fill only at the trigger price, if within "
            "the limit (conservative).",
            "Trailing stops move with each bar's high (sells) or low (buys) after the bar is "
            "checked against the level it started with (a bar never triggers a level it set).",
            "One-cancels-other: when several orders of a group could fill on the same bar, the "
            "one worst for the trader fills (a bracket's stop-loss before its take-profit).",
            "Bracket exits become active when their entry fills: on the same bar, only the "
            "stop-loss can fill after an entry inside the bar; after an entry at the open, both "
            "exits can.",
            "IOC and FOK orders get one bar: what does not fill on the first bar they can trade "
            "on is canceled.",
            p.fees.describe(),
            f"Slippage: {p.slippage_bps:g} bps against the trader on market and stop fills.",
            (
                "Cash account: buys that the account cannot pay for are rejected; short sales "
                + (
                    "allowed (no margin modelled; covering is never refused)."
                    if p.allow_short
                    else "not allowed."
                )
            )
            if self._margin is None
            else self._margin.describe() + " Orders that reduce a position are never refused.",
            "Fills are limited by the fill models below (partial fills carry over)."
            if self._capacity_models
            else "Fills are complete; bar volume does not limit them.",
            "DAY orders expire at the end of the session (UTC calendar day unless a calendar is "
            "set) in which they could first fill.",
            "Market-on-open orders fill at the open of the first bar of the next session; "
            "market-on-close orders at the close of the last bar of a session (a bar that "
            "reaches the session's close within one bar length), never the bar they were sent on.",
        ]
        if self._calendar is None:
            lines.append(
                "Sessions: utc-days (UTC calendar days, no exchange hours or holidays; every bar "
                "can trade)."
            )
        else:
            lines.append(self._calendar.describe())
            lines.append(
                "Bars outside the sessions fill nothing (orders wait); IOC and FOK orders sent "
                "outside a session are rejected."
            )
        lines += [m.describe() for m in self._fill_models]
        if self._costs:
            lines.append(
                "Cost models apply in the configured order: taker fills (market, stop and "
                "marketable limit orders) are priced by them after slippage, never beyond a limit "
                "price; a limit order filling at its limit price is a maker fill. Their "
                "commissions add to each fill's fee; financing is booked daily as cash flows."
            )
            for model, name in zip(self._costs, self._cost_names, strict=True):
                lines.append(_guarded(name, model, "describe", model.describe))
        return lines

    # --- fill models ----------------------------------------------------------------------------
    def use_fill_models(self, models: Iterable[FillModel]) -> None:
        """Apply ``models`` to the runs that follow (replacing any given before): market orders
        at the close if one says so, the largest delay, the smallest per-bar capacity."""
        models = tuple(models)
        self._fill_models = models
        self._capacity_models = tuple(
            m for m in models if type(m).capacity is not FillModel.capacity
        )
        delays = [m.delay() for m in models]
        self._delay = (
            max((d[0] for d in delays), default=0),
            max((d[1] for d in delays), default=0),
        )
        self._models_at_close = any(m.at_close for m in models)

    def use_calendar(self, calendar: SessionCalendar | None) -> None:
        """Trade in ``calendar``'s sessions: bars outside them fill nothing, IOC/FOK orders sent
        outside them are rejected, DAY orders expire at the session's end, market-on-open and
        market-on-close orders use its opens and closes. ``None`` or an always-open calendar:
        sessions are UTC days and every bar is inside one (the default)."""
        self._calendar = None if calendar is None or calendar.always_open else calendar

    def _session(self, ts: int) -> int:
        """The session containing ``ts`` (-1 outside every session)."""
        calendar = self._calendar
        if calendar is None:
            return ts // NS_PER_DAY
        found = self._sessions.get(ts)
        if found is None:
            found = self._sessions[ts] = int(calendar.session_index(np.array([ts]))[0])
        return found

    def _session_close(self, session: int, ts: int) -> int:
        calendar = self._calendar
        if calendar is None:
            return (session + 1) * NS_PER_DAY
        close = self._closes.get(session)
        if close is None:
            ordinals, _, closes = calendar.session_bounds(ts, ts)
            for ordinal, end in zip(ordinals.tolist(), closes.tolist(), strict=True):
                self._closes[ordinal] = end
            close = self._closes.get(session, ts)
        return close

    def _next_session(self, ts: int) -> int:
        """The first session that opens after ``ts``."""
        current = self._session(ts)
        if self._calendar is None:
            return current + 1
        after = self._session_close(current, ts) if current >= 0 else ts
        return int(self._calendar.next_session_index(np.array([after]))[0])

    @property
    def at_close(self) -> bool:
        """Market orders fill at the close of the bar they were sent on (``fill_at = "close"``
        or a same-close fill model)."""
        return self.params.fill_at == "close" or self._models_at_close

    # --- cost models ----------------------------------------------------------------------------
    def use_costs(self, models: Iterable[CostModel]) -> None:
        """Apply ``models`` to the fills and financing of the runs that follow, in this order
        (replacing any given before; an empty list removes them). Call it before :meth:`start`,
        which resets them. A model's name (the cash-flow kind of its financing) is its ``name``
        attribute, set by the runner to the registered name; else the built-in name of its
        class, else the class name."""
        models = tuple(models)
        for model in models:
            if not isinstance(model, CostModel):
                raise TypeError(
                    f"use_costs() takes CostModel instances "
                    f"(tradeloom.execution.cost_models), got {model!r}"
                )
        names = tuple(_cost_name(m) for m in models)
        pairs = list(zip(models, names, strict=True))
        self._costs = models
        self._cost_names = names
        self._commissions = tuple(
            (m, n, _overrides(m, "reset")) for m, n in pairs if _overrides(m, "commission")
        )
        self._stateful = any(stateful for _, _, stateful in self._commissions)
        self._pricers = tuple((m, n) for m, n in pairs if _overrides(m, "fill_price"))
        self._accruers = tuple((m, n) for m, n in pairs if _overrides(m, "accrue"))

    @property
    def wants_daily(self) -> bool:
        """Whether a cost model books daily financing: the engine then calls :meth:`accrue` on
        the first bar of every new UTC calendar day."""
        return bool(self._accruers)

    def accrue(self, ts: int) -> None:
        """Book the cost models' financing for the UTC calendar days up to ``ts`` (ns).

        The first call only remembers ``ts``. Each later call on a later UTC day builds one
        :class:`~tradeloom.execution.cost_models.Accrual` for the calendar days since the
        previous accrual (3 from a Friday to a Monday), the cash, and the long and short
        positions valued at the latest prices, and books each model's non-zero amount as a
        cash flow of the kind of the model's name (``"borrow-fee"``). A call on the same UTC
        day as the previous accrual does nothing."""
        previous = self._accrued_ts
        if previous is None:
            self._accrued_ts = ts
            return
        days = ts // NS_PER_DAY - previous // NS_PER_DAY
        if days <= 0:
            return
        self._accrued_ts = ts
        if not self._accruers:
            return
        ledger = self.ledger
        last = ledger.last_price
        long_value = short_value = 0.0
        for symbol, book in ledger.books.items():
            held = book.quantity
            value = held * last.get(symbol, book.avg_price) * ledger.rate(symbol)
            if held > 0.0:
                long_value += value
            elif held < 0.0:
                short_value -= value
        accrual = Accrual(ts, float(days), ledger.cash, long_value, short_value)
        for model, name in self._accruers:
            amount = _amount(name, model, "accrue", model.accrue, accrual)
            if amount:
                ledger.cash_flow(ts, amount, name)

    # --- internals ------------------------------------------------------------------------------
    def _refusal(self, order: Order) -> str:
        if order.client_order_id in self.orders:
            return f"duplicate client order id {order.client_order_id!r}"
        if order.symbol not in self.symbols:
            traded = ", ".join(sorted(self.symbols))
            return f"unknown symbol {order.symbol!r}; this run trades {traded}"
        ref = self.ledger.last_price.get(order.symbol)
        if ref is None:
            return f"no price yet for {order.symbol}"
        if self._on_margin:
            return self._margin_refusal(order, ref)
        if order.side is Side.SELL:
            if not self.params.allow_short:
                working_sells = sum(
                    self.orders[c].remaining
                    for c in self.working[order.symbol]
                    if self.orders[c].side is Side.SELL
                )
                held = self.ledger.quantity(order.symbol)
                if order.quantity + working_sells > held + 1e-9:
                    return (
                        f"short selling is disabled: selling {order.quantity:g} {order.symbol} "
                        f"with {held:g} held and {working_sells:g} already being sold"
                    )
            return ""
        return self._cash_refusal(order, ref)

    def _cash_refusal(self, order: Order, ref: float, exclude: str = "") -> str:
        """Why a buy cannot be paid for with the cash not reserved by other working buys, at
        the reference price ``ref`` (``exclude``: an order being replaced, whose old
        reservation is released)."""
        if self._opening_quantity(order) <= 1e-9:
            return ""  # a buy that only covers a short is never refused for cash
        cost = self._estimated_cost(order, ref)
        available = self.ledger.cash - self._reserved_cash(exclude)
        if cost > available + 1e-9:
            return f"insufficient cash: order needs {cost:,.2f}, available {available:,.2f}"
        return ""

    def _opening_quantity(self, order: Order) -> float:
        """The part of a buy that goes beyond covering the short position (and working buys)."""
        held = self.ledger.quantity(order.symbol)
        if held >= 0.0:
            return order.remaining
        working_buys = 0.0
        for coid in self.working[order.symbol]:
            other = self.orders[coid]
            if other.side is Side.BUY and coid != order.client_order_id:
                working_buys += other.remaining
        short_left = max(0.0, -held - working_buys)
        return max(0.0, order.remaining - short_left)

    def _estimated_cost(self, order: Order, ref: float) -> float:
        kind = order.type
        if kind is OrderType.LIMIT or kind is OrderType.STOP_LIMIT:
            price = order.limit_price
        elif kind is OrderType.STOP or kind is OrderType.TRAILING_STOP:
            price = slipped(max(order.stop_price or ref, ref), Side.BUY, self.params.slippage_bps)
        else:
            price = slipped(ref, Side.BUY, self.params.slippage_bps)
        qty = order.remaining
        price = price * self.ledger.rate(order.symbol)  # type: ignore[operator]  # account currency
        cost = qty * price + self.params.fees.fee(qty, price)
        if self._commissions and qty > 0.0 and price:  # as a taker fill at the reference price
            trade = TradeInfo(order.symbol, Side.BUY, qty, float(price), self._now, "taker")
            cost += self._commission(trade, probe=True)
        return cost

    def _reserved_cash(self, exclude: str = "") -> float:
        if not self._has_working():
            return 0.0
        reserved = 0.0
        for ids in self.working.values():
            for coid in ids:
                order = self.orders[coid]
                if order.side is Side.BUY and coid != exclude:
                    ref = self.ledger.last_price.get(order.symbol, 0.0)
                    reserved += self._estimated_cost(order, ref)
        return reserved

    def _has_working(self) -> bool:
        return any(self.working.values())

    def _expired(self, coid: str, ts: int) -> bool:
        """A DAY order's session is the first in which it could fill; it expires after it."""
        day = self._session(ts)
        first = self._active_day.setdefault(coid, day)
        return day != first

    def _quote(self, order: Order, bar: Bar) -> tuple[float | None, Order]:
        """The price (before slippage) at which ``order`` fills on ``bar``, or None; and the
        order as it stands after the bar (a stop-limit triggered, a trailing stop moved)."""
        buy = order.side is Side.BUY
        kind = order.type
        if kind is OrderType.MARKET:
            return (None if self._fills_at_close else bar.open), order
        if kind is OrderType.MARKET_ON_OPEN:
            due = self._opening[order.client_order_id] <= self._session(bar.ts)
            return (bar.open if due else None), order
        if kind is OrderType.MARKET_ON_CLOSE:
            return None, order  # filled in on_close
        trailing = kind is OrderType.TRAILING_STOP
        if (
            kind is OrderType.STOP
            or trailing
            or (kind is OrderType.STOP_LIMIT and not order.triggered)
        ):
            stop = order.stop_price
            if buy:
                hit = bar.open if bar.open >= stop else (stop if bar.high >= stop else None)  # type: ignore[operator]
            else:
                hit = bar.open if bar.open <= stop else (stop if bar.low <= stop else None)  # type: ignore[operator]
            if hit is None:
                if trailing:  # the level follows this bar's best price, for the next bars
                    level = order.trail_stop(bar.low if buy else bar.high)
                    if (level < stop) if buy else (level > stop):  # type: ignore[operator]
                        order = order._evolve(stop_price=level)
                return None, order
            if kind is not OrderType.STOP_LIMIT:
                return hit, order
            limit = order.limit_price
            if (buy and hit <= limit) or (not buy and hit >= limit):  # type: ignore[operator]
                return hit, order
            return None, order._evolve(triggered=True)
        limit = order.limit_price
        if buy:
            price = bar.open if bar.open <= limit else (limit if bar.low <= limit else None)  # type: ignore[operator]
        else:
            price = bar.open if bar.open >= limit else (limit if bar.high >= limit else None)  # type: ignore[operator]
        return price, order

    def _match(self, order: Order, bar: Bar) -> None:
        price, updated = self._quote(order, bar)
        if updated is not order:
            self.orders[order.client_order_id] = updated
        if price is not None:
            self._fill(updated, price, bar.ts, bar)

    def _match_group(self, group: str, bar: Bar, *, stops_only: bool) -> None:
        """One-cancels-other on ``bar``: of the group's working orders that could fill, the one
        worst for the trader fills (the others are then canceled by the fill)."""
        worst: tuple[float, Order] | None = None
        for coid in list(self.working[bar.symbol]):
            order = self.orders[coid]
            if order.oco_group != group:
                continue
            if stops_only and order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
                continue
            price, updated = self._quote(order, bar)
            if updated is not order:
                self.orders[coid] = updated
            # worse for the trader: a higher price to pay, a lower price to receive
            if price is not None and (
                worst is None or price * updated.side.sign > worst[0] * worst[1].side.sign
            ):
                worst = (price, updated)
        if worst is not None:
            self._fill(worst[1], worst[0], bar.ts, bar)

    def _fill(
        self,
        order: Order,
        price: float,
        ts: int,
        bar: Bar | None,
        priced_on: Bar | None = None,
    ) -> None:
        """Fill ``order`` at ``price`` (before slippage and cost models); ``bar`` is the bar the
        fill happened on, whose rest a bracket's exits see (None after the close);
        ``priced_on`` is the bar cost models price the fill on when ``bar`` is None (a fill at
        that bar's close)."""
        raw = price
        if order.type in _SLIPPED and self.params.slippage_bps:
            price = slipped(price, order.side, self.params.slippage_bps)
            on = bar if bar is not None else priced_on
            if on is not None:  # slippage never takes a fill beyond the bar's range
                price = min(price, on.high) if order.side is Side.BUY else max(price, on.low)
        qty = order.remaining
        room = self._room
        if room is not None and room[0] == order.symbol and room[1] == ts:
            if room[2] < qty - 1e-9:  # volume participation: only part of it fits on this bar
                if order.tif is TimeInForce.FOK or room[2] <= 1e-9:
                    return
                qty = room[2]
            self._room = (room[0], room[1], room[2] - qty)
        opens_long = (  # a margin account borrows: it was checked at submission
            order.side is Side.BUY
            and not self._on_margin
            and self.ledger.quantity(order.symbol) + qty > 1e-9
        )
        if self._costs:
            priced = self._with_costs(
                order, raw, price, qty, ts, priced_on if bar is None else bar, opens_long
            )
            if priced is None:
                return
            price, fee = priced
        else:
            rate = self.ledger.rate(order.symbol) if self.ledger.rates else 1.0
            fee = self.params.fees.fee(qty, price * rate)
            if opens_long and qty * price * rate + fee > self.ledger.cash + 1e-9:
                self._cancel_for_cash(order, qty * price * rate + fee)
                return
        self._fill_seq += 1
        fill = Fill(
            f"F{self._fill_seq}", order.client_order_id, order.symbol, order.side, qty, price,
            fee, ts, order.strategy_id,
        )  # fmt: skip
        self.ledger.apply_fill(fill, self.market.bar_index(order.symbol))
        self.events.append(fill)
        updated = order.with_fill(qty, price, ts)
        self._record(updated, order.status)
        coid = order.client_order_id
        if updated.status is OrderStatus.FILLED:
            self.working[order.symbol].remove(coid)
        if order.oco_group:
            self._reduce_partners(updated, qty)
        if coid in self._children:
            self._activate(coid, bar, raw)
        elif coid in self._exits:
            self._grow_exits(coid, qty)

    def _cancel_for_cash(self, order: Order, needs: float) -> None:
        self._close(
            order,
            OrderStatus.CANCELED,
            f"insufficient cash at fill: needs {needs:,.2f}, cash {self.ledger.cash:,.2f}",
        )

    def _with_costs(
        self,
        order: Order,
        raw: float,
        price: float,
        qty: float,
        ts: int,
        bar: Bar | None,
        opens_long: bool,
    ) -> tuple[float, float] | None:
        """The price and fee of a fill with the cost models applied (``price`` is after
        slippage, ``raw`` before), or None when the fill was canceled for cash."""
        kind = order.type
        maker = raw == order.limit_price and (
            kind is OrderType.LIMIT or (kind is OrderType.STOP_LIMIT and order.triggered)
        )
        liquidity: Liquidity = "maker" if maker else "taker"
        if not maker and self._pricers and bar is not None:
            price = self._priced(order, price, bar)
        rate = self.ledger.rate(order.symbol)
        fee = self.params.fees.fee(qty, price * rate)
        commission = 0.0
        probing = False
        if self._commissions:
            trade = TradeInfo(order.symbol, order.side, qty, price * rate, ts, liquidity)
            probing = opens_long and self._stateful  # refused fills must not count as volume
            commission = self._commission(trade, probe=probing)
        if opens_long and qty * price * rate + fee + commission > self.ledger.cash + 1e-9:
            self._cancel_for_cash(order, qty * price * rate + fee + commission)
            return None
        if probing:
            commission = self._commission(trade, probe=False)
        return price, fee + commission

    def _priced(self, order: Order, price: float, bar: Bar) -> float:
        """``price`` after every model's ``fill_price``, never beyond a limit price."""
        side = order.side
        for model, name in self._pricers:
            price = _amount(name, model, "fill_price", model.fill_price, price, side, bar)
            if not price > 0.0:
                raise RunError(
                    f"cost model {name!r} ({type(model).__name__}) returned the price {price!r} "
                    f"from fill_price() for {order.symbol}; a price must be a finite number > 0"
                )
        kind = order.type
        if kind is OrderType.LIMIT or kind is OrderType.STOP_LIMIT:
            limit: float = order.limit_price  # type: ignore[assignment]
            price = min(price, limit) if side is Side.BUY else max(price, limit)
        return price

    def _commission(self, trade: TradeInfo, *, probe: bool) -> float:
        """The sum of the models' commissions of ``trade``; ``probe``: an estimate that leaves
        stateful models (those overriding ``reset``) as they were."""
        total = 0.0
        for model, name, stateful in self._commissions:
            used = copy.deepcopy(model) if probe and stateful else model
            total += _amount(name, model, "commission", used.commission, trade)
        return total

    def _activate(self, parent: str, bar: Bar | None, entry: float) -> None:
        """A bracket's entry filled: its exits become working and, if the fill happened on
        ``bar``, meet the rest of that bar (after an entry inside the bar, only the stops)."""
        groups = []
        filled = self.orders[parent].filled_quantity
        self._exits[parent] = children = self._children.pop(parent)
        for coid in children:
            child = self.orders[coid]
            if child.status is not OrderStatus.HELD:
                continue
            if filled < child.quantity - 1e-9:  # a partial entry: exits for what it holds
                child = child._evolve(quantity=filled)
            why = self._refusal_as_exit(child)
            if why:
                self._close(child, OrderStatus.CANCELED, why)
                continue
            self._record(child.transition(OrderStatus.ACCEPTED, self._now), OrderStatus.HELD)
            self.working[child.symbol].append(coid)
            if child.oco_group not in groups:
                groups.append(child.oco_group)
        if bar is None:
            return
        at_open = entry == bar.open
        rest = bar if at_open else bar._replace(open=entry)  # the bar as it went on after entry
        for group in groups:
            self._match_group(group, rest, stops_only=not at_open)

    def _grow_exits(self, parent: str, qty: float) -> None:
        """A bracket's entry filled ``qty`` more: its working exits cover it too."""
        for coid in self._exits[parent]:
            child = self.orders[coid]
            if child.status.is_working:
                grown = child._evolve(quantity=child.quantity + qty, updated_ts=self._now)
                self.orders[coid] = grown
                note = f"bracket entry {parent} filled {qty:g} more: quantity {grown.quantity:g}"
                self.events.append(OrderUpdate(grown, child.status, self._now, note))

    def _reduce_partners(self, order: Order, qty: float) -> None:
        """One-cancels-other after ``order`` filled ``qty``: the other orders of its group shrink
        by as much, and are canceled when nothing is left of them."""
        coid = order.client_order_id
        for other in list(self.working[order.symbol]):
            partner = self.orders[other]
            if partner.oco_group != order.oco_group or other == coid:
                continue
            left = partner.quantity - qty
            if left <= partner.filled_quantity + 1e-9:
                self._close(partner, OrderStatus.CANCELED, f"OCO: {coid} filled")
            else:
                smaller = partner._evolve(quantity=left, updated_ts=self._now)
                self.orders[other] = smaller
                note = f"OCO: {coid} filled {qty:g}: quantity {partner.quantity:g} -> {left:g}"
                self.events.append(OrderUpdate(smaller, partner.status, self._now, note))

    def _capacity(self, bar: Bar) -> float:
        return min(m.capacity(bar) for m in self._capacity_models)

    # --- margin account ---------------------------------------------------------------------
    @property
    def _margin(self) -> MarginAccount | None:
        """The margin account, or None for a cash account."""
        account = self.params.account
        return account if isinstance(account, MarginAccount) else None

    def _opening_units(self, order: Order, exclude: str = "") -> float:
        """Units of ``order`` that open or add to a position, once the position and the other
        working orders of its symbol are netted (``exclude``: an order left out of them)."""
        pending = 0.0
        for coid in self.working[order.symbol]:
            if coid != order.client_order_id and coid != exclude:
                other = self.orders[coid]
                pending += other.remaining * other.side.sign
        after = self.ledger.quantity(order.symbol) + pending
        if (order.side is Side.BUY) == (after >= 0):  # same direction, or flat: all opens
            return order.remaining
        return max(0.0, order.remaining - abs(after))

    def _margin_refusal(self, order: Order, ref: float, exclude: str = "") -> str:
        """Initial margin and leverage cap of a margin account for the opening part of
        ``order`` (reducing a position is never refused)."""
        ledger = self.ledger
        if order.side is Side.SELL and not self.params.allow_short:
            held = ledger.quantity(order.symbol)
            if order.quantity > held + 1e-9:
                return f"short selling is disabled: selling {order.quantity:g} with {held:g} held"
        opening = self._opening_units(order, exclude)
        if opening <= 1e-9:
            return ""
        account = self._margin
        assert account is not None
        price = order.limit_price or order.stop_price or ref
        reserved = reserved_short = 0.0
        for ids in self.working.values():
            for coid in ids:
                if coid == order.client_order_id or coid == exclude:
                    continue
                other = self.orders[coid]
                part = (
                    self._opening_units(other)
                    * ledger.last_price.get(other.symbol, 0.0)
                    * ledger.rate(other.symbol)
                )
                reserved += part
                if other.side is Side.SELL:
                    reserved_short += part
        short_exposure = sum(
            -b.quantity * ledger.last_price.get(s, b.avg_price) * ledger.rate(s)
            for s, b in ledger.books.items()
            if b.quantity < 0
        )
        notional = opening * price * ledger.rate(order.symbol)
        return account.refusal(
            notional, True, ledger.equity(), ledger.cash, ledger.gross_exposure(), reserved,
            short=order.side is Side.SELL, short_exposure=short_exposure,
            reserved_short=reserved_short,
        )  # fmt: skip

    @property
    def checks_margin(self) -> bool:
        """A margin account: the engine calls :meth:`check_margin` after every bar."""
        return self._margin is not None

    def check_margin(self) -> None:
        """At a bar's close (margin accounts; the engine calls it after every bar): on a margin
        call, cancel every open order and close every position at the next bar's open."""
        account = self._margin
        if account is None or self._liquidating:
            return
        ledger = self.ledger
        long_value = short_value = 0.0
        positions = {}
        for symbol, book in ledger.books.items():
            if book.quantity == 0.0:
                continue
            price = ledger.last_price.get(symbol, book.avg_price) * ledger.rate(symbol)
            positions[symbol] = (book.quantity, price)
            if book.quantity > 0:
                long_value += book.quantity * price
            else:
                short_value -= book.quantity * price
        call = account.margin_call(ledger.equity(), long_value, short_value)
        if call is None:
            return
        now = self._now
        self.margin_calls.append((now, call))
        self.cancel_all(call.reason)
        for symbol, quantity in account.liquidation_plan(positions, call.equity).items():
            coid = f"margin-call-{len(self.margin_calls)}-{symbol}"
            side = Side.SELL if quantity > 0 else Side.BUY
            order = Order(
                coid, symbol, side, abs(quantity), OrderType.MARKET, None, None, TimeInForce.GTC,
                "margin-call", OrderStatus.PENDING, 0.0, 0.0, now, now,
            )  # fmt: skip
            accepted = order._evolve(status=OrderStatus.ACCEPTED, reason=call.reason)
            self._record(accepted, order.status)
            self.working[symbol].append(coid)
            self._liquidating.add(coid)

    def _refusal_as_exit(self, order: Order) -> str:
        if order.side is Side.SELL and not self.params.allow_short:
            held = self.ledger.quantity(order.symbol)
            if order.quantity > held + 1e-9:
                return (
                    f"short selling is disabled: bracket exit sells {order.quantity:g} of {held:g}"
                )
        return ""

    def _close(self, order: Order, status: OrderStatus, reason: str) -> None:
        was_working = order.status.is_working
        self._record(order.transition(status, self._now, reason), order.status)
        if was_working:
            self.working[order.symbol].remove(order.client_order_id)
        for coid in self._children.pop(order.client_order_id, ()):
            child = self.orders[coid]
            if child.status is OrderStatus.HELD:
                self._close(child, OrderStatus.CANCELED, _NO_ENTRY)

    def _record(self, order: Order, previous: OrderStatus) -> None:
        self.orders[order.client_order_id] = order
        self.events.append(OrderUpdate(order, previous, order.updated_ts))
        if (self._liquidating or self._opening or self.at_session_close) and (
            order.status.is_terminal
        ):
            self._liquidating.discard(order.client_order_id)
            self.at_session_close.pop(order.client_order_id, None)
            self._opening.pop(order.client_order_id, None)

    # --- corporate actions (called by the engine at the ex-date's open) ---------------------------
    def apply_split(self, symbol: str, ratio: float) -> None:
        """A split of ``ratio`` new shares per old share of ``symbol``: the orders still open
        (working or held) keep their value: quantities times ``ratio``, prices divided by it.
        Each adjusted order is reported with an update whose note says so."""
        held = [c for ids in self._children.values() for c in ids]
        for coid in [*self.working.get(symbol, ()), *held]:
            order = self.orders[coid]
            if order.symbol != symbol or order.status.is_terminal:
                continue
            adjusted = order._evolve(
                quantity=order.quantity * ratio,
                filled_quantity=order.filled_quantity * ratio,
                avg_fill_price=order.avg_fill_price / ratio,
                limit_price=None if order.limit_price is None else order.limit_price / ratio,
                stop_price=None if order.stop_price is None else order.stop_price / ratio,
                trail_amount=None if order.trail_amount is None else order.trail_amount / ratio,
                updated_ts=self._now,
            )
            self.orders[coid] = adjusted
            note = f"split {ratio:g} for 1: {_changes(order, adjusted).removeprefix('replaced: ')}"
            self.events.append(OrderUpdate(adjusted, order.status, self._now, note))


_BUILTIN_COST_NAMES = {cls: name for name, cls in BUILTIN_COST_MODELS.items()}


def _cost_name(model: CostModel) -> str:
    name = getattr(model, "name", "")
    if isinstance(name, str) and name:
        return name
    return _BUILTIN_COST_NAMES.get(type(model), type(model).__name__)


def _overrides(model: CostModel, hook: str) -> bool:
    return getattr(type(model), hook) is not getattr(CostModel, hook)


def _guarded(name: str, model: CostModel, hook: str, call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)``; an exception becomes a :class:`RunError` naming the cost model."""
    try:
        return call(*args)
    except Exception as exc:
        raise RunError(
            f"cost model {name!r} ({type(model).__name__}) raised in {hook}(): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _amount(name: str, model: CostModel, hook: str, call: Callable[..., Any], *args: Any) -> float:
    """A finite float from a cost model's hook (a :class:`RunError` naming it otherwise)."""
    value = _guarded(name, model, hook, call, *args)
    try:
        amount = float(value)
    except (TypeError, ValueError):
        amount = math.nan
    if not math.isfinite(amount):
        raise RunError(
            f"cost model {name!r} ({type(model).__name__}) returned {value!r} from {hook}(); "
            "it must return a finite number"
        )
    return amount


_SLIPPED = frozenset(
    {
        OrderType.MARKET,
        OrderType.STOP,
        OrderType.TRAILING_STOP,
        OrderType.MARKET_ON_OPEN,
        OrderType.MARKET_ON_CLOSE,
    }
)
"""Order types whose fills pay slippage (limit prices are never worsened)."""
_SESSION_ORDERS = frozenset({OrderType.MARKET_ON_OPEN, OrderType.MARKET_ON_CLOSE})
_ONE_BAR = frozenset({TimeInForce.IOC, TimeInForce.FOK})
_NO_ENTRY = "bracket entry ended without a fill"


def _changes(before: Order, after: Order) -> str:
    parts = [
        f"{label} {getattr(before, name)!s} -> {getattr(after, name)!s}"
        for name, label in (
            ("quantity", "quantity"),
            ("limit_price", "limit"),
            ("stop_price", "stop"),
        )
        if getattr(before, name) != getattr(after, name)
    ]
    return "replaced: " + (", ".join(parts) if parts else "no change")


class _OwnMarket:
    """Clock and prices the broker keeps itself when no engine hands it a market view."""

    def __init__(self, symbols: list[str]) -> None:
        self.now = 0
        self.prices: dict[str, float] = {}
        self._index = dict.fromkeys(symbols, -1)

    def bar_index(self, symbol: str) -> int:
        return self._index[symbol]

    def advance(self, bar: Bar) -> None:
        self.now = bar.ts
        self._index[bar.symbol] += 1
        self.prices[bar.symbol] = bar.close

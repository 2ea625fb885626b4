"""The broker contract: the semantics of :class:`tradeloom.execution.Broker` every broker
honours, in backtest exactly as live.

The contract drives a broker only through the kernel's interface — ``start``, ``submit``,
``cancel``, ``replace``, ``get_order``, ``open_orders``, ``positions``, ``account``, ``drain`` —
plus two hooks a broker's test overrides where its venue differs from the simulated one:
:meth:`BrokerContract.advance` (let the venue act on one more bar: the simulated broker matches
its working orders against it; a live broker's test waits for the venue's reports) and
:meth:`BrokerContract.redeliver_fill` (make the venue report a fill again). See
``docs/testing.md``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pandas as pd
import pytest

from tradeloom.execution import Broker
from tradeloom.model import Bar, Fill, Order, OrderStatus, OrderType, OrderUpdate, Side
from tradeloom.testing import ComponentContract

__all__ = ["BrokerContract"]


class BrokerContract(ComponentContract):
    """Subclass it and set ``broker_type`` (registered name) or ``broker_cls`` (the class),
    and ``params``. The contract trades ``symbol`` on synthetic daily bars around ``price``
    (:meth:`bar`); override :meth:`advance` and :meth:`redeliver_fill` for a live venue."""

    kind = "broker"
    broker_type: ClassVar[str | None] = None
    broker_cls: ClassVar[type[Broker] | None] = None
    symbol: ClassVar[str] = "TEST"
    price: ClassVar[float] = 100.0
    """Price level of the synthetic bars."""
    quantity: ClassVar[float] = 10.0
    """Units of the contract's orders."""
    initial_cash: ClassVar[float] = 100_000.0
    currency: ClassVar[str] = "USD"
    reconcile_cash: ClassVar[bool] = True
    """Check cash against the fills (initial cash − bought + sold − fees); set False for a
    venue account whose cash the test does not control."""

    # --- hooks ----------------------------------------------------------------------------------
    def make_broker(self) -> Broker:
        """A fresh broker, started with ``initial_cash`` in ``currency`` for ``[symbol]``."""
        broker = self.build()
        broker.start(initial_cash=self.initial_cash, currency=self.currency, symbols=[self.symbol])
        self._events: list[Any] = []
        self._bars = 0
        return broker

    def bar(self, i: int) -> Bar:
        """The i-th synthetic bar: daily from 2024-01-02, drifting up 0.1 % a bar, a 1 %
        range around open and close."""
        p = self.price * (1.001**i)
        ts = int(pd.Timestamp("2024-01-02", tz="UTC").value) + i * 86_400_000_000_000
        return Bar(self.symbol, ts, p, p * 1.01, p * 0.99, p * 1.0005, 1e6)

    def advance(self, broker: Broker, bar: Bar) -> None:
        """Let the venue act on one more bar. Default (the simulated broker, which keeps its
        own clock when no engine drives it): ``on_bar`` then ``on_close``."""
        on_bar = getattr(broker, "on_bar", None)
        if on_bar is None:
            raise NotImplementedError(
                f"{type(broker).__name__} has no on_bar(): override advance() in the contract "
                "to let the venue act (e.g. wait for its order reports)"
            )
        on_bar(bar)
        on_close = getattr(broker, "on_close", None)
        if on_close is not None:
            on_close(bar)

    def redeliver_fill(self, broker: Broker, fill: Fill) -> None:
        """Make the venue report ``fill`` again (same fill id), as a venue does after a
        reconnect or when it replays executions. Default: brokers fed by venue reports expose
        ``on_report(VenueReport)`` (the :class:`~tradeloom.live.orders.OrderTracker` protocol)
        and get the fill as a ``"fill"`` report whose ``trade_id`` is the fill id; other
        brokers skip the check (the simulated broker makes each fill itself, once)."""
        on_report = getattr(broker, "on_report", None)
        if on_report is None:
            pytest.skip(
                f"{type(broker).__name__} takes no venue reports (no on_report()), so no fill "
                "can be delivered to it twice; override redeliver_fill() to replay one"
            )
        from tradeloom.live.orders import VenueReport

        on_report(
            VenueReport(
                fill.client_order_id,
                "fill",
                fill.ts,
                trade_id=fill.fill_id,
                quantity=fill.quantity,
                price=fill.price,
                fee=fill.fee,
            )
        )

    # --- helpers for the checks -----------------------------------------------------------------
    def step(self, broker: Broker, bars: int = 1) -> list[Any]:
        """Advance ``bars`` bars and return the events drained after them."""
        for _ in range(bars):
            self.advance(broker, self.bar(self._bars))
            self._bars += 1
        return self.drain(broker)

    def drain(self, broker: Broker) -> list[Any]:
        events = list(broker.drain())
        self._events.extend(events)
        return events

    def order(self, coid: str, side: str, quantity: float | None = None, **fields: Any) -> Order:
        """A PENDING order of the contract (strategy id ``contract``)."""
        now = self.bar(max(0, self._bars - 1)).ts
        return Order(
            client_order_id=coid,
            symbol=self.symbol,
            side=Side(side),
            quantity=self.quantity if quantity is None else quantity,
            strategy_id="contract",
            created_ts=now,
            updated_ts=now,
            **fields,
        )

    def far_limit(self, coid: str, quantity: float | None = None) -> Order:
        """A buy limit order at half the price: it works and never fills on these bars."""
        return self.order(
            coid, "buy", quantity, type=OrderType.LIMIT, limit_price=round(self.price / 2, 2)
        )

    def fills(self) -> list[Fill]:
        return [e for e in self._events if isinstance(e, Fill)]

    # --- the checks -----------------------------------------------------------------------------
    def test_is_a_broker(self) -> None:
        """The class subclasses :class:`tradeloom.execution.Broker`."""
        cls = self.component_class()
        assert isinstance(cls, type) and issubclass(cls, Broker), (
            f"{cls!r} must subclass tradeloom.execution.Broker"
        )

    def test_submit_is_asynchronous_and_fills(self) -> None:
        """``submit`` returns nothing and no fill; acceptance and the fill arrive as events
        (``drain``) and the order ends FILLED with its whole quantity."""
        broker = self.make_broker()
        self.step(broker)
        order = self.order("c-1", "buy")
        returned = broker.submit(order)
        assert returned is None, f"submit() returned {returned!r}; results arrive as events"
        now = self.drain(broker)
        assert not [e for e in now if isinstance(e, Fill)], (
            "submit() produced a fill before the venue saw another bar: fills must come later"
        )
        self.step(broker, 2)
        fills = [f for f in self.fills() if f.client_order_id == "c-1"]
        assert sum(f.quantity for f in fills) == pytest.approx(self.quantity), (
            f"a market buy of {self.quantity:g} filled {sum(f.quantity for f in fills):g}"
        )
        updates = [
            e
            for e in self._events
            if isinstance(e, OrderUpdate) and e.order.client_order_id == "c-1"
        ]
        assert updates, "no OrderUpdate event for the submitted order"
        final = broker.get_order("c-1")
        assert final is not None and final.status is OrderStatus.FILLED, (
            f"after its fill the order is {final!r}"
        )
        assert final.filled_quantity == pytest.approx(self.quantity)

    def test_cancel(self) -> None:
        """A working order canceled: a CANCELED update arrives, it leaves ``open_orders`` and
        never fills; canceling it again, or an unknown id, changes nothing and raises
        nothing."""
        broker = self.make_broker()
        self.step(broker)
        broker.submit(self.far_limit("c-1"))
        self.step(broker)
        assert _ids(broker.open_orders()) == ["c-1"], (
            f"a limit far from the market should be working; open orders: "
            f"{_ids(broker.open_orders())}"
        )
        broker.cancel("c-1")
        self.step(broker, 2)
        statuses = [
            e.status
            for e in self._events
            if isinstance(e, OrderUpdate) and e.order.client_order_id == "c-1"
        ]
        assert OrderStatus.CANCELED in statuses, f"no CANCELED update; updates: {statuses}"
        order = broker.get_order("c-1")
        assert order is not None and order.status is OrderStatus.CANCELED, f"{order!r}"
        assert "c-1" not in _ids(broker.open_orders()), "a canceled order is still open"
        broker.cancel("c-1")
        broker.cancel("no-such-order")
        self.step(broker)
        again = broker.get_order("c-1")
        assert again is not None and again.status is OrderStatus.CANCELED
        assert not [f for f in self.fills() if f.client_order_id == "c-1"], "canceled but filled"

    def test_replace(self) -> None:
        """``replace`` amends a working order in place: same client order id, new quantity
        and limit, still working, one order in ``open_orders``, an update reports it."""
        broker = self.make_broker()
        self.step(broker)
        broker.submit(self.far_limit("c-1"))
        self.step(broker)
        current = broker.get_order("c-1")
        assert current is not None
        new_limit = round(self.price * 0.6, 2)
        seen = len(self._events)
        broker.replace(current.evolve(quantity=self.quantity / 2, limit_price=new_limit))
        self.step(broker)
        amended = broker.get_order("c-1")
        assert amended is not None and amended.status.is_working, f"after replace: {amended!r}"
        assert amended.quantity == pytest.approx(self.quantity / 2), (
            f"replace to quantity {self.quantity / 2:g} left {amended.quantity:g}"
        )
        assert amended.limit_price == pytest.approx(new_limit)
        assert _ids(broker.open_orders()) == ["c-1"], (
            f"replace must amend in place; open orders: {_ids(broker.open_orders())}"
        )
        assert any(
            isinstance(e, OrderUpdate) and e.order.client_order_id == "c-1"
            for e in self._events[seen:]
        ), "no OrderUpdate reported the replace"

    def test_query_by_client_order_id(self) -> None:
        """``get_order`` finds an order by client order id — working, and after it ended —
        with its terms; an unknown id gives None."""
        broker = self.make_broker()
        self.step(broker)
        placed = self.far_limit("c-1")
        broker.submit(placed)
        broker.submit(self.order("c-2", "buy"))
        self.step(broker, 2)
        for coid, expect in (("c-1", placed), ("c-2", None)):
            found = broker.get_order(coid)
            assert found is not None, f"get_order({coid!r}) found nothing"
            assert found.client_order_id == coid
            if expect is not None:
                terms = ("symbol", "side", "quantity", "type", "limit_price")
                got = {k: getattr(found, k) for k in terms}
                want = {k: getattr(expect, k) for k in terms}
                assert got == want, f"get_order({coid!r}) terms {got} != submitted {want}"
        done = broker.get_order("c-2")
        assert done is not None and done.status is OrderStatus.FILLED, (
            f"a filled order must still be found by its id: {done!r}"
        )
        assert broker.get_order("no-such-order") is None

    def test_idempotent_submit(self) -> None:
        """The same client order id submitted twice books one order: it fills once, the
        position is one order's quantity, and the original order stands."""
        broker = self.make_broker()
        self.step(broker)
        order = self.order("c-1", "buy")
        broker.submit(order)
        broker.submit(order)
        self.step(broker, 2)
        filled = sum(f.quantity for f in self.fills() if f.client_order_id == "c-1")
        assert filled == pytest.approx(self.quantity), (
            f"client order id c-1 submitted twice filled {filled:g} units, not "
            f"{self.quantity:g}: a resent order must not trade twice"
        )
        held = _quantities(broker).get(self.symbol, 0.0)
        assert held == pytest.approx(self.quantity), f"position {held:g} after one order"
        final = broker.get_order("c-1")
        assert final is not None and final.status is OrderStatus.FILLED, (
            f"the duplicate must not replace the original: {final!r}"
        )

    def test_fills_delivered_once(self) -> None:
        """Every fill is delivered once: fill ids are unique, a second ``drain`` returns
        nothing new, and each order's filled quantity is the sum of its fills."""
        broker = self.make_broker()
        self.step(broker)
        broker.submit(self.order("c-1", "buy"))
        self.step(broker)
        broker.submit(self.order("c-2", "sell", self.quantity / 2))
        broker.submit(self.order("c-3", "buy", self.quantity / 5))
        self.step(broker, 2)
        assert self.drain(broker) == [], "drain() returned events a second time"
        fills = self.fills()
        ids = [f.fill_id for f in fills]
        assert len(fills) >= 3, f"expected three fills, got {ids}"
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        assert not duplicates, f"fill id(s) delivered more than once: {duplicates}"
        for coid in ("c-1", "c-2", "c-3"):
            order = broker.get_order(coid)
            assert order is not None
            total = sum(f.quantity for f in fills if f.client_order_id == coid)
            assert order.filled_quantity == pytest.approx(total), (
                f"{coid}: filled_quantity {order.filled_quantity:g}, its fills add up to {total:g}"
            )
            assert order.filled_quantity <= order.quantity + 1e-9, f"{coid} overfilled"

    def test_redelivered_fill_counts_once(self) -> None:
        """A fill the venue reports again (same fill id) counts once: no new fill event, the
        order's filled quantity and the position unchanged."""
        broker = self.make_broker()
        self.step(broker)
        broker.submit(self.order("c-1", "buy"))
        self.step(broker, 2)
        fills = [f for f in self.fills() if f.client_order_id == "c-1"]
        assert fills, "the market order did not fill"
        fill = fills[0]
        before = (_quantities(broker), broker.get_order("c-1"))
        self.redeliver_fill(broker, fill)
        again = [e for e in self.step(broker) if isinstance(e, Fill)]
        assert not [f for f in again if f.fill_id == fill.fill_id], (
            f"fill {fill.fill_id} reported twice was delivered twice"
        )
        after = (_quantities(broker), broker.get_order("c-1"))
        assert after[0] == before[0], (
            f"a repeated fill changed the positions: {before[0]} -> {after[0]}"
        )
        assert after[1] is not None and before[1] is not None
        assert after[1].filled_quantity == pytest.approx(before[1].filled_quantity), (
            f"a repeated fill changed c-1's filled quantity: {before[1].filled_quantity:g} -> "
            f"{after[1].filled_quantity:g}"
        )

    def test_reconciliation(self) -> None:
        """The positions the broker reports equal the sum of the fills it delivered (and,
        with ``reconcile_cash``, cash is initial cash − bought + sold − fees)."""
        broker = self.make_broker()
        self.step(broker)
        broker.submit(self.order("c-1", "buy"))
        self.step(broker)
        broker.submit(self.order("c-2", "sell", self.quantity * 0.4))
        self.step(broker)
        broker.submit(self.order("c-3", "buy", self.quantity * 0.3))
        self.step(broker, 2)
        fills = self.fills()
        expected: dict[str, float] = {}
        for f in fills:
            expected[f.symbol] = expected.get(f.symbol, 0.0) + f.signed_quantity
        expected = {s: q for s, q in expected.items() if abs(q) > 1e-9}
        reported = _quantities(broker)
        assert reported.keys() == expected.keys() and all(
            math.isclose(reported[s], expected[s], rel_tol=1e-9, abs_tol=1e-9) for s in expected
        ), f"positions() {reported} differ from the sum of the fills {expected}"
        account = broker.account()
        assert math.isfinite(account.equity), f"account equity is {account.equity!r}"
        if self.reconcile_cash:
            cash = self.initial_cash - math.fsum(f.signed_quantity * f.price + f.fee for f in fills)
            assert math.isclose(account.cash, cash, rel_tol=1e-9, abs_tol=1e-6), (
                f"account cash {account.cash:,.6f} differs from what the fills add up to "
                f"{cash:,.6f}"
            )


def _ids(orders: list[Order]) -> list[str]:
    return [o.client_order_id for o in orders]


def _quantities(broker: Broker) -> dict[str, float]:
    return {s: float(p.quantity) for s, p in broker.positions().items() if abs(p.quantity) > 1e-9}

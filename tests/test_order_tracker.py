"""The live order tracker under messy venue reports (RELIABILITY.md BF-04, BF-05, CR-04)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloom.live.orders import EXTERNAL, OrderTracker, VenueReport
from tradeloom.model import Fill, Order, OrderStatus, OrderUpdate, Side
from tradeloom.model.orders import QTY_EPSILON, TRANSITIONS


def new(coid: str = "o1", qty: float = 10.0, **kw) -> Order:  # type: ignore[no-untyped-def]
    base = {"client_order_id": coid, "symbol": "X", "side": Side.BUY, "quantity": qty}
    return Order(**(base | kw))


def fills_of(events: list) -> list[Fill]:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, Fill)]


def updates_of(events: list) -> list[OrderUpdate]:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, OrderUpdate)]


# -- the property test (BF-04, with BF-05 and CR-04 mixed in) ------------------------------------


@dataclass
class Script:
    """One order's true history at the venue and the reports it produces."""

    coid: str
    symbol: str
    side: Side
    units: int  # quantity in quarter units, so sums are exact
    fills: list[tuple[int, int]]  # (quarter units, price in cents)
    end: str  # "filled" | "open" | "cancel" | "reject"
    acked: bool
    external: bool
    cancel_requested: bool
    reports: list[VenueReport] = field(default_factory=list)

    @property
    def quantity(self) -> float:
        return self.units / 4

    @property
    def filled(self) -> float:
        return sum(q for q, _ in self.fills) / 4

    def expected_status(self) -> OrderStatus:
        if self.end == "filled":
            return OrderStatus.FILLED
        if self.end == "cancel":
            return OrderStatus.CANCELED
        if self.end == "reject":
            return OrderStatus.REJECTED
        if self.fills:
            return OrderStatus.PARTIALLY_FILLED
        return OrderStatus.ACCEPTED if self.acked or self.external else OrderStatus.PENDING


@st.composite
def scripts(draw: st.DrawFn, i: int) -> Script:
    units = draw(st.integers(1, 40))
    remaining, fills = units, []
    for _ in range(draw(st.integers(0, 4))):
        if remaining == 0:
            break
        q = draw(st.integers(1, remaining))
        fills.append((q, draw(st.integers(1, 100_000))))
        remaining -= q
    if remaining == 0:
        end = "filled"
    else:
        end = draw(st.sampled_from(["open", "cancel"] + ([] if fills else ["reject"])))
    external = end != "reject" and draw(st.booleans())
    acked = external or (end != "reject" and draw(st.booleans()))
    script = Script(
        coid=f"o{i}",
        symbol=draw(st.sampled_from(["A", "B"])),
        side=draw(st.sampled_from(list(Side))),
        units=units,
        fills=fills,
        end=end,
        acked=acked,
        external=external,
        cancel_requested=not external and end in ("open", "cancel") and draw(st.booleans()),
    )
    details = (
        {"symbol": script.symbol, "side": script.side, "order_quantity": script.quantity}
        if external
        else {}
    )
    ts = 1
    if acked:
        script.reports.append(VenueReport(script.coid, "ack", ts, **details))
    for j, (q, cents) in enumerate(fills):
        ts += 1
        script.reports.append(
            VenueReport(
                script.coid,
                "fill",
                ts,
                # the same trade ids on every order: they are scoped to the order
                trade_id=f"t{j}",
                quantity=q / 4,
                price=cents / 100,
                fee=0.01,
                **details,
            )
        )
    if end in ("cancel", "reject"):
        script.reports.append(VenueReport(script.coid, end, ts + 1, reason="venue", **details))
    return script


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_report_sequences_keep_the_book_consistent(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 4), label="orders")
    orders = [data.draw(scripts(i), label=f"order {i}") for i in range(n)]
    reports = [r for s in orders for r in s.reports]
    if reports:
        dups = data.draw(st.lists(st.sampled_from(reports), max_size=6), label="duplicates")
        reports += dups
    reports = data.draw(st.permutations(reports), label="arrival order")

    tracker = OrderTracker()
    for s in orders:
        if not s.external:
            tracker.track(new(s.coid, s.quantity, symbol=s.symbol, side=s.side, strategy_id="s"))
            if s.cancel_requested:
                assert tracker.request_cancel(s.coid)
                assert tracker.get(s.coid).status is OrderStatus.PENDING  # type: ignore[union-attr]

    by_coid = {s.coid: s for s in orders}
    all_fills: list[Fill] = []
    terminal_seen: dict[str, OrderStatus] = {}
    for report in reports:
        events = tracker.on_report(report)
        for update in updates_of(events):
            prev, now = update.previous, update.status
            assert now == prev or now in TRANSITIONS[prev], (prev, now)
            assert not (prev.is_terminal and now != prev)
            if now is OrderStatus.CANCELED and prev is not OrderStatus.CANCELED:
                # BF-05: nothing is canceled except by the venue's cancel report
                assert (
                    report.kind == "cancel"
                    and report.client_order_id == update.order.client_order_id
                )
        all_fills += fills_of(events)
        for coid in by_coid:
            order = tracker.get(coid)
            if order is None:
                continue
            assert order.filled_quantity <= order.quantity + QTY_EPSILON
            if coid in terminal_seen:
                assert order.status is terminal_seen[coid]  # terminal stays terminal
            elif order.status.is_terminal:
                terminal_seen[coid] = order.status

    assert tracker.anomalies == []
    # every unique fill was reported exactly once
    keys = [(f.client_order_id, f.fill_id) for f in all_fills]
    assert len(keys) == len(set(keys)) == sum(len(s.fills) for s in orders)
    assert sorted(keys) == sorted(tracker_keys(tracker))

    expected_pos: dict[str, float] = {}
    for s in orders:
        order = tracker.get(s.coid)
        if s.external and not s.reports:
            assert order is None  # never seen
            continue
        assert order is not None
        assert order.status is s.expected_status(), s
        assert order.filled_quantity == pytest.approx(s.filled, abs=1e-12)
        assert order.quantity == s.quantity
        assert order.strategy_id == (EXTERNAL if s.external else "s")
        if s.fills:
            avg = sum(q * c / 100 for q, c in s.fills) / sum(q for q, _ in s.fills)
            assert order.avg_fill_price == pytest.approx(avg)
        expected_pos[s.symbol] = expected_pos.get(s.symbol, 0.0) + s.side.sign * s.filled
    positions = tracker.positions()
    for symbol in ("A", "B"):
        assert positions.get(symbol, 0.0) == pytest.approx(expected_pos.get(symbol, 0.0), abs=1e-9)
    # positions are exactly the sum of the unique fills, from the tracker's own record
    for symbol, qty in positions.items():
        assert qty == pytest.approx(
            math.fsum(f.signed_quantity for f in all_fills if f.symbol == symbol)
        )

    open_ids = {o.client_order_id for o in tracker.open_orders()}
    expected_open = {
        s.coid
        for s in orders
        if tracker.get(s.coid) is not None and not s.expected_status().is_terminal
    }
    assert open_ids == expected_open


def tracker_keys(tracker: OrderTracker) -> list[tuple[str, str]]:
    return [(f.client_order_id, f.fill_id) for f in tracker.fills()]


# -- hand cases ---------------------------------------------------------------------------------


def fill(
    coid: str, trade_id: str, qty: float, ts: int = 2, price: float = 100.0, **kw
) -> VenueReport:  # type: ignore[no-untyped-def]
    return VenueReport(coid, "fill", ts, trade_id=trade_id, quantity=qty, price=price, **kw)


def test_bf05_cancel_racing_a_fill_keeps_the_fill() -> None:
    t = OrderTracker()
    t.track(new("o1", 10))
    t.on_report(VenueReport("o1", "ack", 1))
    assert t.request_cancel("o1")
    # nothing is canceled on request: the order still works
    assert t.get("o1").status is OrderStatus.ACCEPTED  # type: ignore[union-attr]
    assert t.cancel_requested("o1")
    assert [o.client_order_id for o in t.open_orders()] == ["o1"]

    events = t.on_report(fill("o1", "t1", 4, ts=2))
    assert len(fills_of(events)) == 1
    assert t.get("o1").status is OrderStatus.PARTIALLY_FILLED  # type: ignore[union-attr]

    events = t.on_report(VenueReport("o1", "cancel", 3, reason="user"))
    [update] = updates_of(events)
    assert update.previous is OrderStatus.PARTIALLY_FILLED
    assert update.status is OrderStatus.CANCELED and update.reason == "user"
    order = t.get("o1")
    assert order is not None and order.filled_quantity == 4
    assert t.positions() == {"X": 4}
    assert t.open_orders() == [] and not t.cancel_requested("o1")
    assert t.anomalies == []


def test_bf05_fill_reported_after_the_cancel_confirmation_still_counts() -> None:
    t = OrderTracker()
    t.track(new("o1", 10, side=Side.SELL))
    t.request_cancel("o1")
    t.on_report(VenueReport("o1", "ack", 1))
    t.on_report(VenueReport("o1", "cancel", 3))
    events = t.on_report(fill("o1", "t1", 3, ts=2))
    [f] = fills_of(events)
    [u] = updates_of(events)
    assert f.quantity == 3 and u.previous is u.status is OrderStatus.CANCELED
    assert "late fill" in u.note
    assert t.get("o1").filled_quantity == 3  # type: ignore[union-attr]
    assert t.get("o1").status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert t.positions() == {"X": -3}
    # the venue filled it completely before the cancel reached it: the cancel changes nothing
    t.track(new("o2", 5))
    t.request_cancel("o2")
    t.on_report(fill("o2", "t9", 5))
    assert t.on_report(VenueReport("o2", "cancel", 4)) == []
    assert t.get("o2").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert not t.cancel_requested("o2")


def test_fill_before_ack_implies_the_ack_and_late_ack_is_ignored() -> None:
    t = OrderTracker()
    t.track(new("o1", 10))
    events = t.on_report(fill("o1", "t1", 10))
    statuses = [(u.previous, u.status) for u in updates_of(events)]
    assert statuses == [
        (OrderStatus.PENDING, OrderStatus.ACCEPTED),
        (OrderStatus.ACCEPTED, OrderStatus.FILLED),
    ]
    assert t.on_report(VenueReport("o1", "ack", 1)) == []
    assert t.get("o1").status is OrderStatus.FILLED  # type: ignore[union-attr]


def test_duplicate_trade_id_is_ignored_and_trade_ids_are_scoped_to_the_order() -> None:
    t = OrderTracker()
    t.track(new("o1", 10))
    t.track(new("o2", 10, side=Side.SELL))
    assert len(fills_of(t.on_report(fill("o1", "t1", 4)))) == 1
    assert t.on_report(fill("o1", "t1", 4)) == []
    # a self-trade: both sides carry the same trade id, both count
    assert len(fills_of(t.on_report(fill("o2", "t1", 4)))) == 1
    assert t.get("o1").filled_quantity == 4  # type: ignore[union-attr]
    assert t.positions() == {}  # +4 - 4
    assert t.anomalies == []
    # a repeat with different details is still ignored, but noted
    assert t.on_report(fill("o1", "t1", 5)) == []
    assert len(t.anomalies) == 1 and "t1" in t.anomalies[0]


def test_overfill_is_refused_and_reported() -> None:
    t = OrderTracker()
    t.track(new("o1", 10))
    t.on_report(fill("o1", "t1", 6))
    assert t.on_report(fill("o1", "t2", 5)) == []
    order = t.get("o1")
    assert order is not None and order.filled_quantity == 6
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert t.positions() == {"X": 6}
    assert len(t.anomalies) == 1 and "refused" in t.anomalies[0] and "o1" in t.anomalies[0]


def test_cr04_external_order_is_adopted_and_counted() -> None:
    t = OrderTracker()
    details = {"symbol": "Y", "side": Side.SELL, "order_quantity": 8.0}
    events = t.on_report(VenueReport("ext1", "ack", 1, price=50.0, **details))
    [u] = updates_of(events)
    assert u.status is OrderStatus.ACCEPTED and "external" in u.note
    order = t.get("ext1")
    assert order is not None and order.strategy_id == EXTERNAL
    assert order.limit_price == 50.0
    assert t.entry("ext1").external  # type: ignore[union-attr]
    assert [o.client_order_id for o in t.open_orders()] == ["ext1"]
    assert t.positions() == {}

    t.on_report(fill("ext1", "x1", 3, price=50.0))
    assert t.positions() == {"Y": -3}
    assert [o.client_order_id for o in t.open_orders()] == ["ext1"]
    t.on_report(fill("ext1", "x2", 5, price=50.0))
    assert t.positions() == {"Y": -8}
    assert t.open_orders() == []
    assert t.get("ext1").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert t.anomalies == []


def test_cr04_external_order_first_seen_through_a_fill() -> None:
    t = OrderTracker()
    t.track(new("mine", 2))
    events = t.on_report(fill("ext", "x1", 1, symbol="Z", side="buy", order_quantity=4.0))
    assert [type(e) for e in events] == [OrderUpdate, Fill, OrderUpdate]
    assert fills_of(events)[0].strategy_id == EXTERNAL
    assert {o.client_order_id for o in t.open_orders()} == {"mine", "ext"}
    assert t.positions() == {"Z": 1}


def test_unknown_order_without_details_is_an_anomaly() -> None:
    t = OrderTracker()
    assert t.on_report(fill("ghost", "t1", 1)) == []
    assert t.on_report(VenueReport("ghost", "cancel", 1)) == []
    assert t.get("ghost") is None and t.positions() == {} and t.open_orders() == []
    assert len(t.anomalies) == 2 and all("ghost" in a for a in t.anomalies)


def test_bad_reports_are_anomalies_not_errors() -> None:
    t = OrderTracker()
    t.track(new("o1", 10))
    assert t.on_report(fill("o1", "t1", -1)) == []
    assert t.on_report(fill("o1", "t1", 1, price=0.0)) == []
    assert t.on_report(VenueReport("o1", "expire", 1)) == []  # type: ignore[arg-type]
    assert len(t.anomalies) == 3
    assert t.get("o1").status is OrderStatus.PENDING  # type: ignore[union-attr]


def test_reject_and_cancel_reject() -> None:
    t = OrderTracker()
    t.track(new("o1", 10))
    [u] = updates_of(t.on_report(VenueReport("o1", "reject", 1, reason="no margin")))
    assert u.status is OrderStatus.REJECTED and u.reason == "no margin"
    assert t.on_report(VenueReport("o1", "ack", 2)) == []
    assert t.get("o1").status is OrderStatus.REJECTED  # type: ignore[union-attr]
    # a reject after the ack while a cancel is pending: the venue refused the cancel
    t.track(new("o2", 10))
    t.on_report(VenueReport("o2", "ack", 1))
    t.request_cancel("o2")
    assert t.on_report(VenueReport("o2", "reject", 2, reason="too late")) == []
    assert not t.cancel_requested("o2")
    assert t.get("o2").status is OrderStatus.ACCEPTED  # type: ignore[union-attr]
    assert "refused to cancel" in t.anomalies[-1]
    # nothing to cancel once terminal
    assert not t.request_cancel("o1")


def test_replace_changes_quantity_but_never_below_the_filled() -> None:
    t = OrderTracker()
    t.track(new("o1", 10))
    t.on_report(fill("o1", "t1", 4))
    [u] = updates_of(t.on_report(VenueReport("o1", "replace", 3, order_quantity=6.0)))
    assert u.note == "replaced: quantity 10 -> 6" and t.get("o1").quantity == 6  # type: ignore[union-attr]
    assert t.on_report(VenueReport("o1", "replace", 4, order_quantity=3.0)) == []
    assert t.get("o1").quantity == 6  # type: ignore[union-attr]
    assert len(t.anomalies) == 1


def test_track_claims_an_order_adopted_before_it_was_tracked() -> None:
    t = OrderTracker()
    t.on_report(VenueReport("o1", "ack", 1, symbol="X", side=Side.BUY, order_quantity=10.0))
    t.on_report(fill("o1", "t1", 2))
    t.track(new("o1", 10, strategy_id="s1"))
    entry = t.entry("o1")
    assert entry is not None and not entry.external
    assert entry.order.strategy_id == "s1" and entry.order.filled_quantity == 2
    assert [f.strategy_id for f in t.fills()] == ["s1"]
    with pytest.raises(ValueError, match="already tracked"):
        t.track(new("o1", 10))

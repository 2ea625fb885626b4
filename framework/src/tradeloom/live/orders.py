"""The runner's book of orders at a venue, fed by the venue's order reports.

A venue reports on orders asynchronously, and its reports can arrive late, twice, or in an
order other than the one in which things happened. :class:`OrderTracker` turns that stream
into one consistent view of each order and of the positions the fills built, under these
rules:

* **Idempotent fills.** A fill is identified by its order and its venue trade id; a fill
  whose ``(client_order_id, trade_id)`` was already applied is ignored (it produces nothing).
  Trade ids are scoped to the order because both sides of a self-trade carry the same one.
  A fill without a trade id gets one made of its order, time, quantity and price, so an exact
  repeat of it is still ignored.
* **Never above the quantity.** A fill that would take an order's filled quantity above its
  quantity is refused, not applied, and recorded in :attr:`OrderTracker.anomalies`.
* **A fill implies the ack.** A fill for an order still PENDING (or HELD) first moves it to
  ACCEPTED, then applies the fill.
* **Terminal is terminal.** Once an order is FILLED, CANCELED, REJECTED or EXPIRED its status
  never changes again: later acks, cancels and rejects are ignored. A *new* fill arriving after
  it is still applied to the filled quantity and the positions (the venue executed it: a cancel
  confirmed after a fill it raced does not undo the fill), the status staying as it is.
* **Cancel is the venue's word.** :meth:`OrderTracker.request_cancel` only marks the order as
  "cancel requested"; it stays working, and can still fill, until the venue's cancel report.
* **Order statuses follow** :data:`tradeloom.model.orders.TRANSITIONS`: every status change
  goes through :meth:`Order.transition` / :meth:`Order.with_fill`, so no invalid transition
  can be made.
* **External orders are adopted.** A report for a client order id the runner never tracked
  that carries ``symbol``, ``side`` and ``order_quantity`` is adopted as an external order
  (strategy id ``"external"``): it counts in :meth:`OrderTracker.open_orders` while it works
  and its fills count in :meth:`OrderTracker.positions`. A report for an unknown id without
  those details cannot be placed and is recorded as an anomaly.

The tracker raises nothing on a venue's bad report: what it cannot apply it records, in plain
language, in :attr:`OrderTracker.anomalies`, for the runner to alert on and reconcile.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from tradeloom.model.orders import (
    QTY_EPSILON,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)

ReportKind = Literal["ack", "fill", "cancel", "reject", "replace"]
REPORT_KINDS: frozenset[str] = frozenset({"ack", "fill", "cancel", "reject", "replace"})
EXTERNAL = "external"
"""The strategy id of orders placed outside the runner and adopted by the tracker."""


@dataclass(frozen=True, slots=True)
class VenueReport:
    """One report from the venue about one order.

    * ``kind``: ``"ack"`` (the venue accepted the order), ``"fill"`` (an execution of
      ``quantity`` at ``price`` identified by ``trade_id``, costing ``fee``), ``"cancel"``
      (the venue canceled the order), ``"reject"`` (the venue refused it), ``"replace"`` (the
      venue amended it: new ``order_quantity`` and/or ``price`` as the new limit/stop price);
    * ``ts``: nanoseconds since the epoch (UTC);
    * ``symbol``, ``side``, ``order_quantity``: the order's details, needed only to adopt an
      order the runner did not place (and ``order_quantity`` for a replace);
    * ``reason``: why it was canceled or rejected.
    """

    client_order_id: str
    kind: ReportKind
    ts: int
    trade_id: str | None = None
    quantity: float | None = None
    price: float | None = None
    fee: float = 0.0
    venue_order_id: str | None = None
    symbol: str | None = None
    side: Side | None = None
    order_quantity: float | None = None
    reason: str = ""


@dataclass(slots=True)
class TrackedOrder:
    """The tracker's entry for one order: the order and what the venue has told about it."""

    order: Order
    external: bool = False
    cancel_requested: bool = False
    venue_order_id: str | None = None
    fills: dict[str, Fill] = field(default_factory=dict)
    """Trade id -> the fill applied for it."""


Event = Fill | OrderUpdate


class OrderTracker:
    """The runner's book of orders at one venue (see the module docstring for the rules).

    Usage: :meth:`track` every order before sending it, :meth:`request_cancel` when asking
    the venue to cancel one, and :meth:`on_report` for every report the venue sends; journal
    the :class:`Fill` and :class:`OrderUpdate` objects that :meth:`on_report` returns.
    """

    def __init__(self) -> None:
        self._entries: dict[str, TrackedOrder] = {}
        self.anomalies: list[str] = []
        """What the tracker could not apply, in plain language, oldest first."""

    # -- the runner's side -------------------------------------------------------------------

    def track(self, order: Order) -> None:
        """Start tracking ``order``, which the runner is about to send (PENDING until the
        venue acknowledges it, or HELD for a bracket exit).

        If the venue reported on the id first and the order was adopted as external with the
        same symbol and side, the runner claims it back (its strategy id is restored; its
        state so far is kept). Tracking an id already tracked otherwise raises ``ValueError``.
        """
        entry = self._entries.get(order.client_order_id)
        if entry is None:
            if order.status not in (OrderStatus.PENDING, OrderStatus.HELD):
                raise ValueError(
                    f"order {order.client_order_id}: only a pending or held order can be "
                    f"tracked, not a {order.status.value} one"
                )
            self._entries[order.client_order_id] = TrackedOrder(order)
            return
        if entry.external and (entry.order.symbol, entry.order.side) == (
            order.symbol,
            order.side,
        ):
            entry.external = False
            entry.order = entry.order._evolve(strategy_id=order.strategy_id)
            entry.fills = {
                k: _fill_for(entry.order, f.fill_id, f.quantity, f.price, f.fee, f.ts)
                for k, f in entry.fills.items()
            }
            return
        raise ValueError(f"order {order.client_order_id} is already tracked")

    def request_cancel(self, client_order_id: str) -> bool:
        """Mark that the runner asked the venue to cancel the order. Nothing else changes: the
        order stays working (and can fill) until the venue's cancel report. False (and
        nothing marked) when the order is already terminal; ``KeyError`` for an unknown id."""
        entry = self._entries[client_order_id]
        if entry.order.status.is_terminal:
            return False
        entry.cancel_requested = True
        return True

    # -- reading -----------------------------------------------------------------------------

    def get(self, client_order_id: str) -> Order | None:
        """The order's current state, or None if unknown."""
        entry = self._entries.get(client_order_id)
        return None if entry is None else entry.order

    def entry(self, client_order_id: str) -> TrackedOrder | None:
        """The tracker's full entry (cancel requested? external? its fills), or None."""
        return self._entries.get(client_order_id)

    def __contains__(self, client_order_id: object) -> bool:
        return client_order_id in self._entries

    def __iter__(self) -> Iterator[Order]:
        return (e.order for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def cancel_requested(self, client_order_id: str) -> bool:
        entry = self._entries.get(client_order_id)
        return entry is not None and entry.cancel_requested

    def open_orders(self) -> list[Order]:
        """Every order not terminal — pending, held or working, external ones included — for
        exposure (a pending order may already be live at the venue)."""
        return [e.order for e in self._entries.values() if not e.order.status.is_terminal]

    def fills(self) -> list[Fill]:
        """Every unique fill applied, order by order."""
        return [f for e in self._entries.values() for f in e.fills.values()]

    def positions(self) -> dict[str, float]:
        """Symbol -> net units (buys minus sells) = the sum of the unique fills applied,
        external orders' included. Symbols whose fills net to zero are left out."""
        by_symbol: dict[str, list[float]] = {}
        for entry in self._entries.values():
            for f in entry.fills.values():
                by_symbol.setdefault(f.symbol, []).append(f.signed_quantity)
        net = {s: math.fsum(qs) for s, qs in by_symbol.items()}
        return {s: q for s, q in net.items() if abs(q) > QTY_EPSILON}

    # -- the venue's side --------------------------------------------------------------------

    def on_report(self, report: VenueReport) -> list[Event]:
        """Apply one venue report; return the new fills and order updates it produced (empty
        for a duplicate or for anything refused, which is recorded in :attr:`anomalies`)."""
        coid = report.client_order_id
        if report.kind not in REPORT_KINDS:
            return self._anomaly(f"order {coid}: unknown report kind {report.kind!r} ignored")
        events: list[Event] = []
        entry = self._entries.get(coid)
        if entry is None:
            entry = self._adopt(report, events)
            if entry is None:
                return []
        if report.venue_order_id and entry.venue_order_id is None:
            entry.venue_order_id = report.venue_order_id
        handler = {
            "ack": self._on_ack,
            "fill": self._on_fill,
            "cancel": self._on_cancel,
            "reject": self._on_reject,
            "replace": self._on_replace,
        }[report.kind]
        handler(entry, report, events)
        return events

    def _adopt(self, report: VenueReport, events: list[Event]) -> TrackedOrder | None:
        coid = report.client_order_id
        if report.symbol is None or report.side is None or report.order_quantity is None:
            self._anomaly(
                f"order {coid}: {report.kind} report for an order the runner does not know, "
                f"without its symbol, side and quantity; ignored"
            )
            return None
        try:
            side = Side(report.side)
            limit = report.price if report.kind == "ack" and report.price else None
            order = Order(
                client_order_id=coid,
                symbol=report.symbol,
                side=side,
                quantity=float(report.order_quantity),
                type=OrderType.LIMIT if limit else OrderType.MARKET,
                limit_price=limit,
                strategy_id=EXTERNAL,
                created_ts=report.ts,
                updated_ts=report.ts,
            )
        except (ValueError, TypeError) as exc:  # OrderStateError is a ValueError
            self._anomaly(f"order {coid}: cannot adopt an external order: {exc}")
            return None
        entry = TrackedOrder(order, external=True)
        self._entries[coid] = entry
        if report.kind not in ("reject", "cancel"):
            # The venue has it and it can fill: it works from now on.
            note = "adopted as external: placed outside the runner"
            self._set_status(entry, OrderStatus.ACCEPTED, report.ts, "", events, note)
        return entry

    def _on_ack(self, entry: TrackedOrder, report: VenueReport, events: list[Event]) -> None:
        if entry.order.status in (OrderStatus.PENDING, OrderStatus.HELD):
            self._set_status(entry, OrderStatus.ACCEPTED, report.ts, "", events)
        # Anything later (working, or terminal) already implies the ack: nothing to do.

    def _on_fill(self, entry: TrackedOrder, report: VenueReport, events: list[Event]) -> None:
        order = entry.order
        coid = order.client_order_id
        qty, price = report.quantity, report.price
        if qty is None or price is None or not (qty > 0 and math.isfinite(qty)):
            self._anomaly(f"order {coid}: fill report with quantity {qty!r} refused")
            return
        if not (price > 0 and math.isfinite(price)):
            self._anomaly(f"order {coid}: fill report with price {price!r} refused")
            return
        trade_id = report.trade_id or f"{coid}:{report.ts}:{qty!r}:{price!r}"
        seen = entry.fills.get(trade_id)
        if seen is not None:
            if not (math.isclose(seen.quantity, qty) and math.isclose(seen.price, price)):
                self._anomaly(
                    f"order {coid}: trade {trade_id} reported again with different details "
                    f"({qty:g} @ {price:g}, first {seen.quantity:g} @ {seen.price:g}); "
                    f"the first report stands"
                )
            return
        if order.filled_quantity + qty > order.quantity + QTY_EPSILON:
            self._anomaly(
                f"order {coid}: fill {trade_id} of {qty:g} refused: it would fill "
                f"{order.filled_quantity + qty:g} of an order for {order.quantity:g}"
            )
            return
        if order.status in (OrderStatus.PENDING, OrderStatus.HELD):
            self._set_status(entry, OrderStatus.ACCEPTED, report.ts, "", events, "implied ack")
            order = entry.order
        previous = order.status
        if previous.is_terminal:
            # A late fill: the venue executed it, so it counts; the status stays terminal.
            filled = order.filled_quantity + qty
            avg = (order.avg_fill_price * order.filled_quantity + price * qty) / filled
            if filled >= order.quantity - QTY_EPSILON:
                filled = order.quantity
            entry.order = order._evolve(
                filled_quantity=filled, avg_fill_price=avg, updated_ts=report.ts
            )
            if previous is not OrderStatus.CANCELED:
                self._anomaly(
                    f"order {coid}: fill {trade_id} of {qty:g} arrived after the order was "
                    f"{previous.value}; applied"
                )
            note = f"late fill {trade_id}: {qty:g} @ {price:g} after {previous.value}"
        else:
            entry.order = order.with_fill(qty, price, report.ts)
            note = ""
        fill = _fill_for(entry.order, trade_id, qty, price, report.fee, report.ts)
        entry.fills[trade_id] = fill
        events.append(fill)
        events.append(OrderUpdate(entry.order, previous, report.ts, note))

    def _on_cancel(self, entry: TrackedOrder, report: VenueReport, events: list[Event]) -> None:
        entry.cancel_requested = False
        if entry.order.status.is_terminal:
            return  # e.g. filled before the cancel reached the venue: the fill stands
        self._set_status(entry, OrderStatus.CANCELED, report.ts, report.reason, events)

    def _on_reject(self, entry: TrackedOrder, report: VenueReport, events: list[Event]) -> None:
        status = entry.order.status
        coid = entry.order.client_order_id
        if status is OrderStatus.PENDING:
            entry.cancel_requested = False
            self._set_status(entry, OrderStatus.REJECTED, report.ts, report.reason, events)
        elif status.is_terminal:
            return
        elif entry.cancel_requested:
            # The venue refused the cancel: the order still works.
            entry.cancel_requested = False
            self._anomaly(
                f"order {coid}: the venue refused to cancel it ({report.reason or 'no reason'})"
                f"; it still works"
            )
        else:
            # A reject after the ack (a refused amendment, or a venue's own quirk): the
            # order is kept working, the safe side for exposure, until the venue says more.
            self._anomaly(
                f"order {coid}: reject report for a {status.value} order "
                f"({report.reason or 'no reason'}); the order is kept as {status.value}"
            )

    def _on_replace(self, entry: TrackedOrder, report: VenueReport, events: list[Event]) -> None:
        order = entry.order
        coid = order.client_order_id
        if order.status.is_terminal:
            self._anomaly(f"order {coid}: replace report for a {order.status.value} order ignored")
            return
        if order.status in (OrderStatus.PENDING, OrderStatus.HELD):
            self._set_status(entry, OrderStatus.ACCEPTED, report.ts, "", events, "implied ack")
            order = entry.order
        changes: dict[str, object] = {}
        notes = []
        new_qty = report.order_quantity
        if new_qty is not None and new_qty != order.quantity:
            if not (new_qty > order.filled_quantity + QTY_EPSILON and math.isfinite(new_qty)):
                self._anomaly(
                    f"order {coid}: replace to quantity {new_qty!r} refused: "
                    f"{order.filled_quantity:g} already filled"
                )
                return
            changes["quantity"] = float(new_qty)
            notes.append(f"quantity {order.quantity:g} -> {new_qty:g}")
        if report.price is not None:
            name = "limit_price" if order.limit_price is not None else "stop_price"
            if getattr(order, name) is None:
                self._anomaly(f"order {coid}: replace with a price for an order without one")
                return
            changes[name] = report.price
            notes.append(f"{name} {getattr(order, name):g} -> {report.price:g}")
        if not changes:
            return
        try:
            entry.order = order.evolve(updated_ts=report.ts, **changes)
        except ValueError as exc:
            self._anomaly(f"order {coid}: replace refused: {exc}")
            return
        events.append(
            OrderUpdate(entry.order, order.status, report.ts, "replaced: " + ", ".join(notes))
        )

    # -- helpers -----------------------------------------------------------------------------

    def _set_status(
        self,
        entry: TrackedOrder,
        status: OrderStatus,
        ts: int,
        reason: str,
        events: list[Event],
        note: str = "",
    ) -> None:
        previous = entry.order.status
        entry.order = entry.order.transition(status, ts, reason)
        events.append(OrderUpdate(entry.order, previous, ts, note))

    def _anomaly(self, message: str) -> list[Event]:
        self.anomalies.append(message)
        return []


def _fill_for(order: Order, trade_id: str, qty: float, price: float, fee: float, ts: int) -> Fill:
    return Fill(
        fill_id=trade_id,
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        quantity=qty,
        price=price,
        fee=fee,
        ts=ts,
        strategy_id=order.strategy_id,
    )

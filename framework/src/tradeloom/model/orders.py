"""Orders, their state machine, order updates and fills.

Every object here is immutable. An order changes state only through
:meth:`Order.transition` / :meth:`Order.with_fill`, which return a *new* order and refuse any
transition the state machine below does not allow::

    PENDING ──▶ ACCEPTED ──▶ PARTIALLY_FILLED ──▶ FILLED
       │  │        │  │            │  │
       │  │        │  └──▶ FILLED  │  └──▶ CANCELED / EXPIRED
       │  │        └──▶ CANCELED / EXPIRED
       │  └──▶ HELD ──▶ ACCEPTED / CANCELED
       └──▶ REJECTED / CANCELED

HELD is the state of a bracket's exit orders until their entry fills. FILLED, CANCELED,
REJECTED and EXPIRED are terminal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

import pandas as pd

from tradeloom.errors import OrderStateError


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"
    """A stop whose level follows the market at a distance (``trail_amount`` or
    ``trail_percent``) and never moves back; ``stop_price`` holds its current level."""
    MARKET_ON_OPEN = "market_on_open"
    """Fills at the open of the first bar of the next session."""
    MARKET_ON_CLOSE = "market_on_close"
    """Fills at the close of the last bar of a session (the first such bar after the order)."""


class TimeInForce(StrEnum):
    DAY = "day"
    """Expires at the end of the trading day it was accepted on (UTC date of the bar data)."""
    GTC = "gtc"
    """Good till canceled."""
    IOC = "ioc"
    """Immediate or cancel: whatever does not fill on the first bar the order can trade on is
    canceled."""
    FOK = "fok"
    """Fill or kill: the order fills completely on the first bar it can trade on, or is
    canceled."""


class OrderStatus(StrEnum):
    PENDING = "pending"
    HELD = "held"
    """Accepted but not active: a bracket's exit waiting for its entry to fill."""
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_working(self) -> bool:
        """Accepted by the broker and still able to fill."""
        return self in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {OrderStatus.ACCEPTED, OrderStatus.HELD, OrderStatus.REJECTED, OrderStatus.CANCELED}
    ),
    OrderStatus.HELD: frozenset({OrderStatus.ACCEPTED, OrderStatus.CANCELED}),
    OrderStatus.ACCEPTED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}
"""Allowed transitions. Fills go through :meth:`Order.with_fill`, never a bare transition."""

# Quantities are floats; two quantities closer than this are the same quantity.
QTY_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Order:
    """An order and its current state. Immutable: every change makes a new object."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    tif: TimeInForce = TimeInForce.GTC
    strategy_id: str = ""
    status: OrderStatus = OrderStatus.PENDING
    filled_quantity: float = 0.0
    avg_fill_price: float = 0.0
    created_ts: int = 0
    """Nanoseconds since the epoch (UTC) at which the strategy created the order."""
    updated_ts: int = 0
    reason: str = ""
    """Why the order was rejected, canceled or expired; empty otherwise."""
    triggered: bool = False
    """For stop-limit orders: the stop has been touched and the order now works as a limit."""
    trail_amount: float | None = None
    """Trailing stops: the stop's distance from the best price since acceptance, in price."""
    trail_percent: float | None = None
    """Trailing stops: the same distance as a percentage of that best price (0 < p < 100)."""
    oco_group: str = ""
    """Orders sharing a non-empty group are one-cancels-other: the first to fill cancels the
    rest."""
    parent_id: str = ""
    """A bracket exit: the client order id of the entry it protects (held until it fills)."""

    def __post_init__(self) -> None:
        if (
            self.type is OrderType.MARKET
            and self.limit_price is None
            and self.stop_price is None
            and 0 < self.quantity < math.inf
        ):
            return  # the common case, checked in one expression
        if not (self.quantity > 0 and math.isfinite(self.quantity)):
            raise OrderStateError(
                f"order {self.client_order_id}: quantity must be a positive finite number, "
                f"got {self.quantity!r}"
            )
        trailing = self.type is OrderType.TRAILING_STOP
        if trailing:
            self._check_trail()
        elif self.trail_amount is not None or self.trail_percent is not None:
            raise OrderStateError(
                f"order {self.client_order_id}: only trailing_stop orders take a trail"
            )
        needs_limit = self.type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = self.type in (OrderType.STOP, OrderType.STOP_LIMIT)
        checks = [("limit_price", needs_limit, self.limit_price)]
        if not (trailing and self.stop_price is None):  # a trailing stop's level comes later
            checks.append(("stop_price", needs_stop or trailing, self.stop_price))
        for name, needed, value in checks:
            if needed and (value is None or not (value > 0 and math.isfinite(value))):
                raise OrderStateError(
                    f"order {self.client_order_id}: a {self.type.value} order needs a positive "
                    f"{name}, got {value!r}"
                )
            if not needed and value is not None:
                raise OrderStateError(
                    f"order {self.client_order_id}: a {self.type.value} order takes no {name}"
                )

    def _check_trail(self) -> None:
        amount, percent = self.trail_amount, self.trail_percent
        if (amount is None) == (percent is None):
            raise OrderStateError(
                f"order {self.client_order_id}: a trailing stop needs exactly one of "
                f"trail_amount and trail_percent"
            )
        if amount is not None and not (amount > 0 and math.isfinite(amount)):
            raise OrderStateError(
                f"order {self.client_order_id}: trail_amount must be a positive price distance, "
                f"got {amount!r}"
            )
        if percent is not None and not (0 < percent < 100):
            raise OrderStateError(
                f"order {self.client_order_id}: trail_percent must be between 0 and 100, "
                f"got {percent!r}"
            )

    def trail_stop(self, price: float) -> float:
        """A trailing stop's level for a best price of ``price`` (below it for sells)."""
        distance = (
            self.trail_amount if self.trail_amount is not None else price * self.trail_percent / 100  # type: ignore[operator]
        )
        return price - distance if self.side is Side.SELL else price + distance

    @property
    def remaining(self) -> float:
        return self.quantity - self.filled_quantity

    @property
    def signed_quantity(self) -> float:
        return self.quantity * self.side.sign

    @property
    def time(self) -> pd.Timestamp:
        return pd.Timestamp(self.created_ts, tz="UTC")

    def transition(self, status: OrderStatus, ts: int, reason: str = "") -> Order:
        """The order in ``status``; raises :class:`OrderStateError` if not allowed.

        Use :meth:`with_fill` for PARTIALLY_FILLED / FILLED.
        """
        if status in (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED):
            raise OrderStateError(
                f"order {self.client_order_id}: fills go through with_fill(), "
                f"not transition({status.value})"
            )
        self._check(status)
        return _with_status(self, status, ts, reason)

    def with_fill(self, quantity: float, price: float, ts: int) -> Order:
        """The order after a fill of ``quantity`` at ``price``."""
        if not (quantity > 0 and math.isfinite(quantity)):
            raise OrderStateError(
                f"order {self.client_order_id}: fill quantity must be positive, got {quantity!r}"
            )
        if not (price > 0 and math.isfinite(price)):
            raise OrderStateError(
                f"order {self.client_order_id}: fill price must be positive, got {price!r}"
            )
        filled = self.filled_quantity + quantity
        if filled > self.quantity + QTY_EPSILON:
            raise OrderStateError(
                f"order {self.client_order_id}: fill of {quantity} would overfill "
                f"({self.filled_quantity} of {self.quantity} already filled)"
            )
        complete = filled >= self.quantity - QTY_EPSILON
        status = OrderStatus.FILLED if complete else OrderStatus.PARTIALLY_FILLED
        self._check(status)
        avg = (self.avg_fill_price * self.filled_quantity + price * quantity) / filled
        return _with_fill(self, status, self.quantity if complete else filled, avg, ts)

    def evolve(self, **changes: object) -> Order:
        """A copy with ``changes`` applied and the shape validated again (for brokers that amend
        orders). State changes go through :meth:`transition` and :meth:`with_fill` instead."""
        new = self._evolve(**changes)
        new.__post_init__()
        return new

    def _evolve(self, **changes: object) -> Order:
        # A copy without re-running __init__: the shape was validated when the order was made
        # and a state change cannot alter it. Several times faster than dataclasses.replace.
        new = _copy(self)
        for name, value in changes.items():
            _set(new, name, value)
        return new

    def _check(self, status: OrderStatus) -> None:
        if status not in TRANSITIONS[self.status]:
            raise OrderStateError(
                f"order {self.client_order_id}: cannot go from {self.status.value} to "
                f"{status.value}"
            )


_ORDER_FIELDS = tuple(f.name for f in fields(Order))


_set = object.__setattr__


def _copier(changed: tuple[str, ...]) -> Any:
    """``copy(order, *changed_values)``: a new Order with the ``changed`` fields set from the
    arguments and every other field read from ``order``, as straight-line code (one attribute
    read per field, no loop, no getattr): every order's life makes two or three copies."""
    lines = [f"def copy(self, {', '.join(changed)}):" if changed else "def copy(self):"]
    lines.append("    new = _new(Order)")
    lines += [f"    _set(new, {n!r}, {n if n in changed else 'self.' + n})" for n in _ORDER_FIELDS]
    lines.append("    return new")
    namespace = {"_new": object.__new__, "_set": _set, "Order": Order}
    exec("\n".join(lines), namespace)  # the source is built from the dataclass's own fields
    return namespace["copy"]


_copy = _copier(())
_with_status = _copier(("status", "updated_ts", "reason"))
_with_fill = _copier(("status", "filled_quantity", "avg_fill_price", "updated_ts"))


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """Sent to the strategy's ``on_order`` whenever one of its orders changes state."""

    order: Order
    previous: OrderStatus
    ts: int
    note: str = ""
    """What changed when the status did not: ``"replaced: quantity 10 -> 5"`` or
    ``"replace rejected: ..."``."""

    @property
    def status(self) -> OrderStatus:
        return self.order.status

    @property
    def reason(self) -> str:
        return self.order.reason


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution. ``price`` already includes slippage; ``fee`` is in account currency."""

    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float
    ts: int
    strategy_id: str = ""

    @property
    def signed_quantity(self) -> float:
        return self.quantity * self.side.sign

    @property
    def notional(self) -> float:
        return self.quantity * self.price

    @property
    def time(self) -> pd.Timestamp:
        return pd.Timestamp(self.ts, tz="UTC")

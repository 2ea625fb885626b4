"""Built-in pre-trade rules.

Amounts are in the account currency: positions and prices in a :class:`RiskView` are in each
symbol's quote currency and are converted with ``view.rate(symbol)``. Exposure counts working
orders as if they fill (the worst case, see :meth:`RiskView.gross_exposure`); an order that does
not add to the exposure a rule limits always passes, even when a price move has already taken the
account over the limit.

The stateful rules (message throttle, duplicate guard) remember what they let through: a rule
instance lives for one run (the runner builds a fresh one per run). They keep time on
``view.ts``, the simulated clock in a backtest.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from pydantic import Field, model_validator

from tradeloom.components import Params
from tradeloom.model import Order
from tradeloom.risk.base import Reject, RiskRule, RiskView


class MaxOrderQuantity(RiskRule):
    """Refuses any order for more than ``max_quantity`` units (fat-finger guard)."""

    class Params(Params):
        max_quantity: float = Field(gt=0)
        """Largest quantity a single order may have."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        limit = self.params.max_quantity
        if order.quantity > limit:
            return Reject(self.name, "order quantity over the limit", limit, order.quantity)
        return None


class MaxOrderNotional(RiskRule):
    """Refuses any order whose notional at the reference price exceeds ``max_notional``."""

    class Params(Params):
        max_notional: float = Field(gt=0)
        """Largest quantity × reference price a single order may have, in account currency."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        price = order.limit_price or view.last_prices.get(order.symbol)
        if price is None:
            return Reject(self.name, f"no reference price for {order.symbol}")
        notional = order.quantity * price
        if notional > self.params.max_notional:
            return Reject(
                self.name, "order notional over the limit", self.params.max_notional, notional
            )
        return None


class MaxPosition(RiskRule):
    """Caps the absolute position per symbol, counting working orders on the same side."""

    class Params(Params):
        max_quantity: float = Field(gt=0)
        """Largest absolute position (held + working orders) per symbol, in units."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        sign = order.side.sign
        worst = (
            view.position_qty(order.symbol)
            + view.working_qty(order.symbol, sign)
            + order.quantity * sign
        )
        if abs(worst) > self.params.max_quantity + 1e-9:
            return Reject(
                self.name,
                f"position in {order.symbol} would exceed the limit",
                self.params.max_quantity,
                abs(worst),
            )
        return None


def _over(value: float, limit: float) -> bool:
    """``value`` above ``limit``, allowing for float rounding."""
    return value - limit > 1e-9 * max(1.0, abs(limit))


def _adds(before: float, after: float) -> bool:
    """An order takes an exposure from ``before`` to ``after``: does it add to it?"""
    return after - before > 1e-9 * max(1.0, abs(before))


def _no_price(rule: RiskRule, order: Order, view: RiskView) -> Reject | None:
    if view.unit_value(order.symbol, order) is None:
        return Reject(rule.name, f"no reference price for {order.symbol}")
    return None


class PriceCollar(RiskRule):
    """Refuses limit and stop prices more than ``max_deviation_pct`` % from the latest close.

    Checks the limit price, the stop price, and a trailing stop's level once it is set. Market
    orders pass; an order with a price but no reference price yet is refused."""

    class Params(Params):
        max_deviation_pct: float = Field(gt=0)
        """Largest distance of a limit or stop price from the latest close, in percent of it."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        if order.limit_price is None and order.stop_price is None:
            return None  # market, market-on-open/close, a trailing stop whose level is not set
        ref = view.last_prices.get(order.symbol)
        if ref is None or not ref > 0:
            return Reject(
                self.name,
                f"no reference price for {order.symbol} yet: a {order.type.value} order's "
                "price cannot be checked",
            )
        limit = self.params.max_deviation_pct
        for label, price in (("limit price", order.limit_price), ("stop price", order.stop_price)):
            if price is None:
                continue
            deviation = abs(price - ref) / ref * 100.0
            if deviation > limit + 1e-9:
                return Reject(
                    self.name,
                    f"% deviation of the {label} {price:g} from the reference price {ref:g} "
                    "over the limit",
                    limit,
                    deviation,
                )
        return None


class MaxGrossExposure(RiskRule):
    """Caps the gross exposure, working orders included, in account currency.

    Σ |position value| with working orders counted as if they fill, plus the order. An order
    that does not add to it (one that reduces a position without flipping beyond it) passes."""

    class Params(Params):
        max_gross: float = Field(gt=0)
        """Largest gross exposure, including working orders and the order, in account currency."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        missing = _no_price(self, order, view)
        if missing is not None:
            return missing
        before, after = view.gross_exposure(), view.gross_exposure(order)
        if _adds(before, after) and _over(after, self.params.max_gross):
            return Reject(
                self.name, "gross exposure would exceed the limit", self.params.max_gross, after
            )
        return None


class MaxNetExposure(RiskRule):
    """Caps the absolute net exposure, working orders included, in account currency.

    |Σ signed position value| with every working buy (or every working sell) filling, plus the
    order. An order that does not add to it passes."""

    class Params(Params):
        max_net: float = Field(gt=0)
        """Largest absolute net exposure, including working orders and the order, in account
        currency."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        missing = _no_price(self, order, view)
        if missing is not None:
            return missing
        before, after = view.net_exposure(), view.net_exposure(order)
        if _adds(before, after) and _over(after, self.params.max_net):
            return Reject(
                self.name, "net exposure would exceed the limit", self.params.max_net, after
            )
        return None


class MaxLeverage(RiskRule):
    """Caps gross exposure after the order (working orders included) ÷ equity.

    With equity at or below zero, every order that adds exposure is refused."""

    class Params(Params):
        max_leverage: float = Field(gt=0)
        """Largest gross exposure as a multiple of equity (1 = unlevered)."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        missing = _no_price(self, order, view)
        if missing is not None:
            return missing
        before, after = view.gross_exposure(), view.gross_exposure(order)
        if not _adds(before, after):
            return None
        if not view.equity > 0:
            return Reject(
                self.name, "equity is not positive: no order may add exposure", 0.0, view.equity
            )
        leverage = after / view.equity
        if _over(leverage, self.params.max_leverage):
            return Reject(
                self.name, "leverage would exceed the limit", self.params.max_leverage, leverage
            )
        return None


class RestrictedInstruments(RiskRule):
    """Never opens or adds to a position in the listed symbols.

    With ``allow_reducing`` (the default) an order that only reduces a position passes: one
    against the position whose units, with the working orders on its side, do not take it
    beyond zero."""

    class Params(Params):
        symbols: list[str]
        """Symbols never to trade (an empty list restricts nothing)."""
        allow_reducing: bool = True
        """Let orders that reduce an existing position through (true), or refuse every order in
        a restricted symbol (false)."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        symbol = order.symbol
        if symbol not in self.params.symbols:
            return None
        if not self.params.allow_reducing:
            return Reject(
                self.name, f"{symbol} is restricted: units ordered (no orders allowed)",
                0.0, order.quantity,
            )  # fmt: skip
        sign = order.side.sign
        held = view.position_qty(symbol) * sign  # negative: the order is against the position
        if held >= 0:
            added = order.quantity
        else:
            room = -held - abs(view.working_qty(symbol, sign))  # left to reduce
            added = max(0.0, order.quantity - max(0.0, room))
        if added > 1e-9:
            return Reject(
                self.name, f"{symbol} is restricted: units that would open or add to a position",
                0.0, added,
            )  # fmt: skip
        return None


_NS = 1_000_000_000
"""Nanoseconds per second."""


class MessageThrottle(RiskRule):
    """Caps the orders and replaces each strategy sends per second and/or per minute.

    Counts, per strategy, the messages it let through in the sliding window ending at
    ``view.ts`` (the last second: timestamps in ``(ts - 1 s, ts]``; likewise the last minute); a
    replace reaches the gate as the amended order and counts as one message. The message that
    would take a window over its limit is refused, and a refused message does not count. Cancels
    do not pass the gate and are never refused. Place it last in the chain: a message a later
    rule refuses has already been counted here.

    State: per strategy, a deque of the timestamps of the messages it let through, dropped once
    older than the longest window (so at most the larger limit of them)."""

    class Params(Params):
        max_per_second: int | None = Field(default=None, gt=0)
        """Most orders and replaces a strategy may send in any one-second window."""
        max_per_minute: int | None = Field(default=None, gt=0)
        """Most orders and replaces a strategy may send in any one-minute window."""

        @model_validator(mode="after")
        def _one_limit(self) -> MessageThrottle.Params:
            if self.max_per_second is None and self.max_per_minute is None:
                raise ValueError("give max_per_second, max_per_minute or both")
            return self

    def __init__(self, params: Params | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        p = self.params
        self._windows = [
            (label, span, limit)
            for label, span, limit in (
                ("second", _NS, p.max_per_second),
                ("minute", 60 * _NS, p.max_per_minute),
            )
            if limit is not None
        ]
        self._span = max(span for _, span, _ in self._windows)
        self._sent: dict[str, deque[int]] = {}

    def check(self, order: Order, view: RiskView) -> Reject | None:
        now = view.ts
        sent = self._sent.get(order.strategy_id)
        if sent is None:
            sent = self._sent[order.strategy_id] = deque()
        oldest = now - self._span
        while sent and sent[0] <= oldest:
            sent.popleft()
        for label, span, limit in self._windows:
            start, count = now - span, 0
            for ts in reversed(sent):  # newest first: stops after at most `limit` of them
                if ts <= start or count >= limit:
                    break
                count += 1
            if count >= limit:
                return Reject(
                    self.name,
                    f"messages from strategy {order.strategy_id} in the last {label} over the "
                    "limit",
                    limit,
                    count + 1,
                )
        sent.append(now)
        return None


class DuplicateOrderGuard(RiskRule):
    """Refuses an order that repeats one the same strategy sent within ``window_seconds``.

    A repeat has the same symbol, side, quantity, type, limit price and stop price as an order
    with another client order id that the rule let through at most ``window_seconds`` before
    ``view.ts``. A replace (the same client order id as an earlier order) is not a duplicate of
    itself, and its amended terms are remembered as sent at its time, along with the terms it
    was first sent with. A reused client order id never reaches a fill: the engine stamps the
    ids, and the simulated broker refuses an order whose id it has seen
    (``duplicate client order id``).

    State: the terms of the orders it let through in the window, per strategy, with each one's
    client order id and time; dropped once older than the window."""

    class Params(Params):
        window_seconds: float = Field(gt=0)
        """How long after an order the same order from the same strategy is refused, in
        seconds."""

    def __init__(self, params: Params | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._window = round(self.params.window_seconds * _NS)
        self._recent: deque[tuple[int, tuple[Any, ...], str]] = deque()
        self._seen: dict[tuple[Any, ...], dict[str, int]] = {}
        """(strategy, terms) -> client order id -> when it was last let through."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        now = view.ts
        oldest = now - self._window
        recent, seen = self._recent, self._seen
        while recent and recent[0][0] < oldest:
            ts, key, coid = recent.popleft()
            ids = seen.get(key)
            if ids is not None and ids.get(coid) == ts:
                del ids[coid]
                if not ids:
                    del seen[key]
        key = (
            order.strategy_id, order.symbol, order.side, order.quantity, order.type,
            order.limit_price, order.stop_price,
        )  # fmt: skip
        ids = seen.get(key)
        coid = order.client_order_id
        if ids is not None:
            for other, ts in ids.items():
                if other != coid:
                    return Reject(
                        self.name,
                        f"same {order.type.value} {order.side.value} of {order.quantity:g} "
                        f"{order.symbol} as order {other}, sent {(now - ts) / _NS:g} s earlier "
                        f"(window {self.params.window_seconds:g} s)",
                    )
        else:
            ids = seen[key] = {}
        ids[coid] = now
        recent.append((now, key, coid))
        return None


class StaleDataGuard(RiskRule):
    """Refuses an order when the ordered symbol's latest bar is more than ``max_age_seconds``
    old at ``view.ts`` (``view.last_bar_ts``), or when there is no bar time for it (no bar yet,
    or an engine that does not provide bar times).

    In a multi-symbol run the clock moves on with the other symbols' bars, so a symbol that
    stopped trading goes stale while the others do not. Stateless."""

    class Params(Params):
        max_age_seconds: float = Field(ge=0)
        """Oldest the ordered symbol's latest bar may be, in seconds (its timestamp to now)."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        last = view.last_bar_ts.get(order.symbol)
        if last is None:
            return Reject(
                self.name, f"no bar time for {order.symbol}: the age of its data cannot be checked"
            )
        age = (view.ts - last) / _NS
        limit = self.params.max_age_seconds
        if age > limit + 1e-9:
            return Reject(
                self.name, f"latest bar of {order.symbol} too old: seconds since it over the limit",
                limit, age,
            )  # fmt: skip
        return None

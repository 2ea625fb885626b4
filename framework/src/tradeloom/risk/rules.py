"""Built-in pre-trade rules.

Amounts are in the account currency: positions and prices in a :class:`RiskView` are in each
symbol's quote currency and are converted with ``view.rate(symbol)``. Exposure counts working
orders as if they fill (the worst case, see :meth:`RiskView.gross_exposure`); an order that does
not add to the exposure a rule limits always passes, even when a price move has already taken the
account over the limit.
"""

from __future__ import annotations

from pydantic import Field

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

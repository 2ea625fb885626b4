"""Built-in pre-trade rules (the full set arrives with the risk-gate issue)."""

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

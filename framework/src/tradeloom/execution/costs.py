"""Fee and slippage models of the simulated broker."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from tradeloom.components import Params
from tradeloom.model import Side


class NoFees(Params):
    """No commission."""

    model: Literal["none"] = "none"

    def fee(self, quantity: float, price: float) -> float:
        return 0.0

    def describe(self) -> str:
        return "Fees: none."


class PercentFees(Params):
    """A percentage of the traded notional."""

    model: Literal["percent"] = "percent"
    rate: float = Field(ge=0, lt=1)
    """Fraction of notional, e.g. 0.001 for 0.1 %."""
    minimum: float = Field(default=0.0, ge=0)
    """Minimum fee per fill, in account currency."""

    def fee(self, quantity: float, price: float) -> float:
        return max(quantity * price * self.rate, self.minimum)

    def describe(self) -> str:
        text = f"Fees: {self.rate:.4%} of notional per fill"
        return text + (f", minimum {self.minimum:g}." if self.minimum else ".")


class PerUnitFees(Params):
    """A fixed amount per unit traded, with a minimum (and optional maximum) per fill."""

    model: Literal["per_unit"] = "per_unit"
    per_unit: float = Field(ge=0)
    """Fee per unit (share, contract, coin), in account currency."""
    minimum: float = Field(default=0.0, ge=0)
    """Minimum fee per fill."""
    maximum_pct: float | None = Field(default=None, gt=0, lt=1)
    """Optional cap as a fraction of notional (e.g. 0.01 = 1 %), as many brokers apply."""

    def fee(self, quantity: float, price: float) -> float:
        fee = max(quantity * self.per_unit, self.minimum)
        if self.maximum_pct is not None:
            fee = min(fee, quantity * price * self.maximum_pct)
        return fee

    def describe(self) -> str:
        text = f"Fees: {self.per_unit:g} per unit, minimum {self.minimum:g} per fill"
        if self.maximum_pct is not None:
            text += f", capped at {self.maximum_pct:.2%} of notional"
        return text + "."


FeeModel = Annotated[NoFees | PercentFees | PerUnitFees, Field(discriminator="model")]


def slipped(price: float, side: Side, bps: float) -> float:
    """``price`` moved against the trader by ``bps`` basis points."""
    if bps == 0.0:
        return price
    factor = bps / 10_000.0
    return price * (1.0 + factor) if side is Side.BUY else price * (1.0 - factor)

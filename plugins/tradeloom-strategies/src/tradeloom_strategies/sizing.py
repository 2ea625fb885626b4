"""Position sizing and direction settings shared by the single-symbol strategies.

Every per-symbol strategy in this package sizes its positions the same way, with either

* ``quantity``: a fixed number of units per position, or
* ``fraction``: a fraction of current equity, split evenly between the run's symbols and
  rounded down to whole units at the latest close.

Exactly one of the two is used. ``fraction`` defaults to 0.95 (5% of equity stays in cash as
a buffer for the gap between the close the order is sized at and the next open it fills at);
giving ``quantity`` alone switches to fixed units. Giving both is an error.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from tradeloom.components import Params
from tradeloom.model import Side
from tradeloom.strategy import Context
from tradeloom.vector.signals import Sizing

Direction = Literal["long_only", "long_short"]

DEFAULT_FRACTION = 0.95
"""Fraction of equity invested when neither ``quantity`` nor ``fraction`` is given."""

_UNIT_EPSILON = 1e-9
"""Slack when rounding down to whole units, so that 99.99999999997 units count as 100."""


class SizedParams(Params):
    """Parameters shared by the per-symbol strategies: sizing and direction."""

    quantity: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Fixed position size in units, per symbol. Mutually exclusive with ``fraction``."""
    fraction: float | None = Field(default=DEFAULT_FRACTION, gt=0, le=1)
    """Position size as a fraction of current equity (0 < fraction <= 1), divided evenly among
    the run's symbols and rounded down to whole units at the latest close. Used when
    ``quantity`` is not given; mutually exclusive with it."""
    direction: Direction = "long_only"
    """``"long_only"``: buy signals open longs, sell signals only close them.
    ``"long_short"``: sell signals also open (or flip into) shorts."""

    @model_validator(mode="before")
    @classmethod
    def _one_sizing(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        quantity, fraction = data.get("quantity"), data.get("fraction")
        if quantity is not None and fraction is not None:
            raise ValueError(
                f"set either quantity ({quantity!r} units) or fraction ({fraction!r} of equity), "
                "not both"
            )
        if quantity is not None:
            return {**data, "fraction": None}
        if "fraction" in data and fraction is None:
            raise ValueError("fraction and quantity are both unset: give one of them")
        return data

    @property
    def long_short(self) -> bool:
        """Whether sell signals may open short positions."""
        return self.direction == "long_short"


def position_size(ctx: Context, symbol: str, params: SizedParams, *, long: bool) -> float:
    """The unsigned size of a new long (``long=True``) or short position in ``symbol``.

    With ``quantity``: that many units. With ``fraction``: ``fraction`` of equity divided by the
    number of symbols in the run, in whole units at the latest close (rounded down). A long is
    also capped at ``fraction`` of the cash that is free once this strategy's working buy orders
    and the buy-back of every short position (at the latest closes) are set aside: in a
    multi-symbol run whose other positions have grown, an entry is sized down instead of being
    rejected for cash, and short-sale proceeds never finance longs (so shorts stay coverable).
    Returns 0 when that buys less than one unit or no price is known yet.
    """
    if params.quantity is not None:
        return params.quantity
    price = ctx.last_price(symbol) * ctx.fx_rate(symbol)  # in the account currency
    if not price > 0:  # NaN before the first bar
        return 0.0
    assert params.fraction is not None  # guaranteed by SizedParams validation
    units = params.fraction * ctx.equity / len(ctx.symbols) / price
    if long:
        committed = sum(
            o.remaining * ctx.last_price(o.symbol) * ctx.fx_rate(o.symbol)
            for o in ctx.open_orders()
            if o.side is Side.BUY
        )
        shorts = sum(
            -p.quantity * ctx.last_price(s) * ctx.fx_rate(s)
            for s, p in ctx.positions().items()
            if p.quantity < 0
        )
        free = max(0.0, ctx.cash - committed - shorts)
        units = min(units, params.fraction * free / price)
    return float(max(0, math.floor(units + _UNIT_EPSILON)))


def signal_sizing(params: SizedParams) -> Sizing:
    """The vector engine's :class:`~tradeloom.vector.Sizing` that reproduces
    :func:`position_size` with ``params`` (the kernel applies it with the simulated account)."""
    if params.quantity is not None:
        return Sizing(quantity=params.quantity)
    return Sizing(fraction=params.fraction)


def is_flat(quantity: float) -> bool:
    """Whether a signed position quantity is zero (up to float noise)."""
    return abs(quantity) <= _UNIT_EPSILON

"""Account models of the simulated broker: a cash account and a margin account.

Leaf module: pure functions of plain numbers (no broker, no ledger), so the rules can be tested
by hand and called by :class:`~tradeloom.execution.simulated.SimulatedBroker` at submission
(:meth:`AccountParams.refusal`), on every bar (:meth:`AccountParams.margin_call`) and when a
margin call is executed (:meth:`AccountParams.liquidation_plan`).

The numbers the broker passes, all in account currency at the latest prices:

``equity``
    ``cash + Σ quantity × price`` (:meth:`Ledger.equity <tradeloom.portfolio.Ledger.equity>`).
``cash``
    The ledger's cash (negative when borrowing).
``gross_exposure``
    ``Σ |quantity| × price`` over all positions (:meth:`Ledger.gross_exposure`).
``reserved``
    What working orders have already claimed, so that two orders that fit one at a time cannot
    together exceed the limit. Cash account: the estimated cost of working buys (today's
    ``SimulatedBroker._reserved_cash``). Margin account: the estimated notional of working
    orders that *increase* exposure (buys that open or add to a long, sells that open or add to
    a short), counted as if they had filled. Working orders that reduce exposure are not
    credited (conservative: they may never fill).
``order_notional``
    The estimated notional of the part of the order that opens or adds to a position (a flip
    is split by the broker: the covering part reduces exposure, the rest increases it). The
    broker passes its usual estimate (reference price with slippage, plus fees): exact for the
    cash account, slightly conservative for the margin account, where fees cost equity but add
    no exposure.

Amounts are compared with an absolute tolerance of ``1e-9`` (as the broker's cash check).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, model_validator

from tradeloom.components import Params

__all__ = [
    "Account",
    "AccountParams",
    "CashAccount",
    "MarginAccount",
    "MarginCall",
]

EPSILON = 1e-9
"""Absolute tolerance on amounts, as in the broker's cash check."""


@dataclass(frozen=True, slots=True)
class MarginCall:
    """Equity fell below the maintenance requirement; the broker liquidates at the next open."""

    requirement: float
    """``long_value × maintenance_margin + short_value × short_maintenance_margin``."""
    equity: float
    """The account's equity when the call was made."""
    deficit: float
    """``requirement − equity`` (> 0)."""
    long_value: float
    """Market value of the long positions."""
    short_value: float
    """Market value of the short positions, as a positive number."""
    reason: str
    """Plain-language explanation with the numbers, for the order updates and the report."""


class AccountParams(Params):
    """The interface every account model implements; configs pick one by ``type``."""

    def buying_power(
        self,
        equity: float,
        cash: float,
        gross_exposure: float,
        reserved: float,
        *,
        short: bool = False,
        short_exposure: float = 0.0,
        reserved_short: float = 0.0,
    ) -> float:
        """The notional a new order that increases exposure may add now (never negative).

        ``short``: the new order opens or adds to a short. ``short_exposure`` and
        ``reserved_short`` are the short parts of ``gross_exposure`` and ``reserved``; they only
        matter when short margins differ from long ones."""
        raise NotImplementedError

    def refusal(
        self,
        order_notional: float,
        increases_exposure: bool,
        equity: float,
        cash: float,
        gross_exposure: float,
        reserved: float,
        *,
        short: bool = False,
        short_exposure: float = 0.0,
        reserved_short: float = 0.0,
    ) -> str:
        """Why an order cannot be accepted, or ``""``. Risk-reducing orders
        (``increases_exposure=False``) are never refused."""
        raise NotImplementedError

    def margin_call(
        self, equity: float, long_value: float, short_value: float
    ) -> MarginCall | None:
        """The margin call to execute at the next bar's open, or None."""
        raise NotImplementedError

    def liquidation_plan(
        self, positions: Mapping[str, tuple[float, float]], equity: float
    ) -> dict[str, float]:
        """What to close after a margin call: ``{symbol: quantity to close}``."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for reports."""
        raise NotImplementedError


class CashAccount(AccountParams):
    """Today's behaviour: buys are paid in full from cash; no borrowing, no margin calls.

    A buy that opens or adds to a long is refused when its estimated cost exceeds the cash not
    reserved by working buys. Short sales are not margined: their proceeds are credited to cash
    and only the broker's ``allow_short`` governs them (a real cash account cannot short at
    all; use the margin account to put a requirement on shorts). Buys that cover a short are
    never refused, even if cash goes negative."""

    type: Literal["cash"] = "cash"
    """Account model: ``"cash"``."""

    def buying_power(
        self,
        equity: float,
        cash: float,
        gross_exposure: float,
        reserved: float,
        *,
        short: bool = False,
        short_exposure: float = 0.0,
        reserved_short: float = 0.0,
    ) -> float:
        """``max(0, cash − reserved)`` for a buy; a short sale is not limited (``inf``)."""
        if short:
            return float("inf")
        return max(0.0, cash - reserved)

    def refusal(
        self,
        order_notional: float,
        increases_exposure: bool,
        equity: float,
        cash: float,
        gross_exposure: float,
        reserved: float,
        *,
        short: bool = False,
        short_exposure: float = 0.0,
        reserved_short: float = 0.0,
    ) -> str:
        """The broker's cash check, with its reason string unchanged."""
        if not increases_exposure or short:
            return ""
        available = cash - reserved
        if order_notional > available + EPSILON:
            return (
                f"insufficient cash: order needs {order_notional:,.2f}, available {available:,.2f}"
            )
        return ""

    def margin_call(
        self, equity: float, long_value: float, short_value: float
    ) -> MarginCall | None:
        """A cash account has no maintenance requirement: never a call."""
        return None

    def liquidation_plan(
        self, positions: Mapping[str, tuple[float, float]], equity: float
    ) -> dict[str, float]:
        """Nothing is ever liquidated."""
        return {}

    def describe(self) -> str:
        return (
            "Cash account: buys are paid in full from cash not reserved by working buys; "
            "short sales are not margined (their proceeds are credited to cash)."
        )


class MarginAccount(AccountParams):
    """Borrowing against equity, with an initial margin, a leverage cap and margin calls.

    Every margin is a fraction of a position's market value that must be covered by equity.
    For shorts this is the part beyond the sale proceeds: Reg T's "150 %" short requirement is
    ``short_initial_margin = 0.5`` here.

    *Opening or increasing* (at submission). Initial margin in use, counting working orders
    that increase exposure as if filled::

        used   = initial × (long + reserved_long) + short_initial × (short + reserved_short)
        excess = equity − used

    A new order of notional ``N`` (rate ``m`` = ``initial_margin``, or
    ``short_initial_margin`` for a short) must satisfy both

    * initial margin: ``m × N ≤ excess``, i.e. ``N ≤ excess / m``;
    * leverage cap: ``gross + reserved + N ≤ max_leverage × equity``.

    ``buying_power = max(0, min(excess / m, max_leverage × equity − gross − reserved))``. With
    one margin rate for everything, the first bound is ``equity / m − gross − reserved``, so
    the leverage cap binds only when ``max_leverage < 1 / m`` (defaults 50 % and 2x: the two
    coincide, and refusals name the initial margin). Equity ≤ 0 gives no buying power. Orders
    that reduce exposure are never refused.

    *Maintenance* (every bar). ``requirement = maintenance × long + short_maintenance × short``
    (market values, shorts as positive numbers). Equity strictly below the requirement (by more
    than 1e-9) is a margin call; exactly at it is not. The broker then closes **every**
    position at the next bar's open (see :meth:`liquidation_plan`).
    """

    type: Literal["margin"] = "margin"
    """Account model: ``"margin"``."""
    initial_margin: float = Field(default=0.5, gt=0, le=1)
    """Fraction of a long position's value that must be equity when opening or increasing it
    (Reg T: 0.5). 1.0 means no borrowing."""
    maintenance_margin: float = Field(default=0.25, ge=0, le=1)
    """Fraction of the long positions' value below which equity triggers a margin call (FINRA
    rule 4210 minimum: 0.25). Must not exceed ``initial_margin``."""
    max_leverage: float = Field(default=2.0, gt=0)
    """Cap on ``(gross exposure + working orders' exposure) / equity`` for new orders."""
    short_initial_margin: float | None = Field(default=None, gt=0, le=1)
    """Initial margin of short positions, as a fraction of their value beyond the proceeds
    (Reg T's 150 % is 0.5). Default: the same as ``initial_margin``."""
    short_maintenance_margin: float | None = Field(default=None, ge=0, le=1)
    """Maintenance margin of short positions (FINRA asks 0.30 for most shorted stocks).
    Default: the same as ``maintenance_margin``."""

    @model_validator(mode="after")
    def _maintenance_below_initial(self) -> MarginAccount:
        for side, initial, maintenance in (
            ("long", self.initial_margin, self.maintenance_margin),
            ("short", self.short_initial, self.short_maintenance),
        ):
            if maintenance > initial:
                raise ValueError(
                    f"{side} maintenance margin {maintenance:g} exceeds its initial margin "
                    f"{initial:g}: every new position would be margin-called at once"
                )
        return self

    @property
    def short_initial(self) -> float:
        """The initial margin of shorts, with the default resolved."""
        rate = self.short_initial_margin
        return self.initial_margin if rate is None else rate

    @property
    def short_maintenance(self) -> float:
        """The maintenance margin of shorts, with the default resolved."""
        rate = self.short_maintenance_margin
        return self.maintenance_margin if rate is None else rate

    # --- opening orders ---------------------------------------------------------------------
    def initial_margin_in_use(
        self,
        gross_exposure: float,
        reserved: float,
        *,
        short_exposure: float = 0.0,
        reserved_short: float = 0.0,
    ) -> float:
        """Initial margin held by the positions and the working orders that increase
        exposure."""
        longs = gross_exposure - short_exposure + reserved - reserved_short
        return self.initial_margin * longs + self.short_initial * (short_exposure + reserved_short)

    def _rooms(
        self,
        equity: float,
        gross_exposure: float,
        reserved: float,
        short: bool,
        short_exposure: float,
        reserved_short: float,
    ) -> tuple[float, float, float, float]:
        """``(room under the initial margin, room under the leverage cap, margin in use, rate
        of the new order)``."""
        used = self.initial_margin_in_use(
            gross_exposure, reserved, short_exposure=short_exposure, reserved_short=reserved_short
        )
        rate = self.short_initial if short else self.initial_margin
        margin_room = (equity - used) / rate
        leverage_room = self.max_leverage * equity - gross_exposure - reserved
        return margin_room, leverage_room, used, rate

    def buying_power(
        self,
        equity: float,
        cash: float,
        gross_exposure: float,
        reserved: float,
        *,
        short: bool = False,
        short_exposure: float = 0.0,
        reserved_short: float = 0.0,
    ) -> float:
        """``max(0, min((equity − used) / m, max_leverage × equity − gross − reserved))``;
        ``cash`` does not enter (it is part of equity)."""
        margin_room, leverage_room, _, _ = self._rooms(
            equity, gross_exposure, reserved, short, short_exposure, reserved_short
        )
        return max(0.0, min(margin_room, leverage_room))

    def refusal(
        self,
        order_notional: float,
        increases_exposure: bool,
        equity: float,
        cash: float,
        gross_exposure: float,
        reserved: float,
        *,
        short: bool = False,
        short_exposure: float = 0.0,
        reserved_short: float = 0.0,
    ) -> str:
        """``""`` when ``order_notional ≤ buying_power + 1e-9``; otherwise the reason, naming
        the limit with the smaller room (the initial margin on a tie)."""
        if not increases_exposure:
            return ""
        margin_room, leverage_room, used, rate = self._rooms(
            equity, gross_exposure, reserved, short, short_exposure, reserved_short
        )
        if order_notional <= max(0.0, min(margin_room, leverage_room)) + EPSILON:
            return ""
        side = "short" if short else "long"
        if margin_room <= leverage_room:
            return (
                f"insufficient margin: a {side} order of {order_notional:,.2f} needs "
                f"{rate * order_notional:,.2f} initial margin ({_pct(rate)}), excess equity "
                f"{equity - used:,.2f} (equity {equity:,.2f} − initial margin in use "
                f"{used:,.2f}); buying power {max(0.0, margin_room):,.2f}"
            )
        after = gross_exposure + reserved + order_notional
        ratio = f"{after / equity:.2f}x equity" if equity > 0 else "equity is not positive"
        return (
            f"leverage cap {self.max_leverage:g}x: an order of {order_notional:,.2f} would take "
            f"gross exposure (with working orders) to {after:,.2f} ({ratio}, equity "
            f"{equity:,.2f}); buying power {max(0.0, leverage_room):,.2f}"
        )

    # --- maintenance ------------------------------------------------------------------------
    def maintenance_requirement(self, long_value: float, short_value: float) -> float:
        """``maintenance × long_value + short_maintenance × short_value``."""
        _check_values(long_value, short_value)
        return self.maintenance_margin * long_value + self.short_maintenance * short_value

    def margin_call(
        self, equity: float, long_value: float, short_value: float
    ) -> MarginCall | None:
        """A call when ``equity < requirement − 1e-9`` and there is a position to liquidate.

        ``long_value``: ``Σ quantity × price`` over long positions; ``short_value``:
        ``Σ |quantity| × price`` over short positions (a positive number)."""
        requirement = self.maintenance_requirement(long_value, short_value)
        if long_value == 0.0 and short_value == 0.0:
            return None  # nothing to liquidate
        if not equity < requirement - EPSILON:
            return None
        deficit = requirement - equity
        parts = [f"{_pct(self.maintenance_margin)} of long positions {long_value:,.2f}"]
        if short_value:
            parts.append(f"{_pct(self.short_maintenance)} of short positions {short_value:,.2f}")
        reason = (
            f"margin call: equity {equity:,.2f} is below the maintenance requirement "
            f"{requirement:,.2f} ({' + '.join(parts)}) by {deficit:,.2f}; every position is "
            "closed at the next bar's open"
        )
        return MarginCall(requirement, equity, deficit, long_value, short_value, reason)

    def liquidation_plan(
        self, positions: Mapping[str, tuple[float, float]], equity: float
    ) -> dict[str, float]:
        """Close every position when the positions (``{symbol: (quantity, price)}``, signed
        quantities) and ``equity`` make a margin call; ``{}`` otherwise.

        The result maps each symbol to the quantity to close, signed as held: ``+100`` closes a
        long of 100 (sell 100), ``-50`` closes a short of 50 (buy 50 back).

        Why everything: the plan is made on the bar's close and executed at the next open,
        whose prices are unknown; closing only "enough" can leave the account still short of
        the requirement after a gap. Closing everything is the simplest rule that always
        restores the account (the requirement becomes 0) and is harsher than most real brokers,
        which sell only what they must."""
        long_value = short_value = 0.0
        for quantity, price in positions.values():
            if quantity > 0.0:
                long_value += quantity * price
            elif quantity < 0.0:
                short_value -= quantity * price
        if self.margin_call(equity, long_value, short_value) is None:
            return {}
        return {symbol: quantity for symbol, (quantity, _) in positions.items() if quantity}

    def describe(self) -> str:
        text = (
            f"Margin account: {_pct(self.initial_margin)} initial, "
            f"{_pct(self.maintenance_margin)} maintenance"
        )
        if (self.short_initial, self.short_maintenance) != (
            self.initial_margin,
            self.maintenance_margin,
        ):
            text += (
                f" (shorts {_pct(self.short_initial)} initial, "
                f"{_pct(self.short_maintenance)} maintenance)"
            )
        return (
            f"{text}, leverage cap {self.max_leverage:g}x; a margin call liquidates every "
            "position at the next bar's open."
        )


Account = Annotated[CashAccount | MarginAccount, Field(discriminator="type")]
"""An account model: ``{type = "cash"}`` (default) or ``{type = "margin", ...}``."""


def _pct(rate: float) -> str:
    return f"{rate * 100:g} %"


def _check_values(long_value: float, short_value: float) -> None:
    if long_value < 0.0 or short_value < 0.0:
        raise ValueError(
            f"long_value ({long_value:g}) and short_value ({short_value:g}) are market values "
            "and must not be negative; pass shorts as Σ |quantity| × price"
        )

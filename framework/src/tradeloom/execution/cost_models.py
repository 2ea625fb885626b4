"""Cost models of the simulated broker: commissions, spread and daily financing.

A :class:`CostModel` is a component with three optional hooks; the broker calls every
configured model, in the configured order:

* :meth:`CostModel.fill_price` moves a fill price against the trader (spread, price impact).
  Each model receives the price the previous model returned. It is meant for fills that *take*
  liquidity (market, stop and marketable limit orders); a resting limit order fills at its
  limit price, as slippage already works in the simulated broker.
* :meth:`CostModel.commission` returns the commission of one fill (:class:`TradeInfo`, whose
  ``price`` is the final fill price), in account currency. It is ``>= 0`` except for a maker
  rebate (:class:`MakerTakerCommission` with a negative ``maker_rate``), which is negative: cash
  the trader receives.
* :meth:`CostModel.accrue` is called once per UTC calendar day the run crosses, on the first
  bar of the new day (:class:`Accrual`), and returns a cash change: negative is a cost
  (borrow fee, debit interest), positive is income (interest on cash).

Conventions shared by every model:

* Notional is ``quantity × price`` in account currency; every rate is a fraction
  (``0.001`` = 0.1 %), spreads are in basis points (1 bp = 0.01 %) or a fraction of the bar's
  range.
* Annual financing rates accrue simply (no compounding) for the calendar days since the
  previous accrual: ``amount × annual_rate × days / day_count``, ``day_count`` 360 (the money
  market convention, default) or 365. A Friday-to-Monday accrual has ``days = 3``.
* Time is the bar's ``ts`` (integer nanoseconds since the epoch, UTC); months and days are UTC
  calendar months and days. Nothing reads the wall clock.
* :class:`TieredCommission` keeps state (the month's traded notional); :meth:`CostModel.reset`
  clears it and the broker calls it when a run starts.

:data:`BUILTIN_COST_MODELS` maps each built-in model's registered name to its class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from tradeloom.components import Capabilities, Component, Mode, Params
from tradeloom.model import Bar, Side

NS_PER_DAY = 86_400_000_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

Liquidity = Literal["maker", "taker"]
"""``"maker"``: a resting limit order was filled; ``"taker"``: a market, stop or marketable
order."""


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


Number = Annotated[float, Field(allow_inf_nan=False), BeforeValidator(_no_bool)]
"""A finite float that refuses booleans (pydantic would read ``true`` as 1.0)."""


# --- what the broker hands the models ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TradeInfo:
    """One fill as a cost model sees it."""

    symbol: str
    side: Side
    quantity: float
    """Units filled, > 0."""
    price: float
    """Fill price before this model's adjustments, > 0."""
    ts: int
    """Nanoseconds since the epoch, UTC."""
    liquidity: Liquidity
    """``"maker"``: a resting limit order was filled; ``"taker"``: market, stop, marketable."""

    def __post_init__(self) -> None:
        if not (self.quantity > 0 and math.isfinite(self.quantity)):
            raise ValueError(f"TradeInfo.quantity must be a finite number > 0, got {self.quantity}")
        if not (self.price > 0 and math.isfinite(self.price)):
            raise ValueError(f"TradeInfo.price must be a finite number > 0, got {self.price}")
        if self.liquidity not in ("maker", "taker"):
            raise ValueError(
                f"TradeInfo.liquidity must be 'maker' or 'taker', got {self.liquidity!r}"
            )

    @property
    def notional(self) -> float:
        """``quantity × price``, in account currency."""
        return self.quantity * self.price


@dataclass(frozen=True, slots=True)
class Accrual:
    """What a financing model needs once per calendar day (UTC) the run crosses."""

    ts: int
    """Nanoseconds since the epoch, UTC: the first bar of the new day."""
    days: float
    """Calendar days since the previous accrual (3 over a weekend), > 0."""
    cash: float
    """Account cash; negative is a debit (borrowed cash)."""
    long_value: float
    """Sum of ``quantity × price`` over long positions, >= 0."""
    short_value: float
    """Sum of ``|quantity| × price`` over short positions, >= 0."""

    def __post_init__(self) -> None:
        if not (self.days > 0 and math.isfinite(self.days)):
            raise ValueError(f"Accrual.days must be a finite number > 0, got {self.days}")
        if not math.isfinite(self.cash):
            raise ValueError(f"Accrual.cash must be finite, got {self.cash}")
        for name in ("long_value", "short_value"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"Accrual.{name} must be a finite number >= 0, got {value}")


# --- the contract --------------------------------------------------------------------------------


class CostModel(Component):
    """Base: each hook is optional; the broker calls all configured models in order."""

    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST, Mode.PAPER}))

    def commission(self, trade: TradeInfo) -> float:
        """Commission of one fill in account currency: ``>= 0``, negative only for a rebate."""
        return 0.0

    def fill_price(self, price: float, side: Side, bar: Bar) -> float:
        """``price`` moved against the trader (up for buys, down for sells), on ``bar``."""
        return price

    def accrue(self, accrual: Accrual) -> float:
        """Cash change for the days in ``accrual``: negative is a cost, positive is income."""
        return 0.0

    def reset(self) -> None:
        """Forget any state kept between fills; called when a run starts."""

    def describe(self) -> str:
        """One plain-language line for reports. Default: the class docstring's first line."""
        doc = (type(self).__doc__ or type(self).__name__).strip().splitlines()[0]
        return doc if doc.endswith(".") else doc + "."


# --- formatting helpers for describe() -----------------------------------------------------------


def _pct(rate: float) -> str:
    """``0.001`` -> ``"0.10 %"``; more decimals only when needed (``0.00005`` -> ``"0.005 %"``)."""
    value = rate * 100.0
    for decimals in range(2, 8):
        text = f"{value:.{decimals}f}"
        if abs(float(text) - value) <= 1e-9 * max(1.0, abs(value)):
            return text + " %"
    return f"{value:g} %"


def _num(value: float) -> str:
    """An amount without noise: ``1`` -> ``"1"``, ``1000000`` -> ``"1,000,000"``."""
    return format(value, ",.10g")


def _per_year(annual_rate: float, day_count: int) -> str:
    return f"{_pct(annual_rate)} a year (actual/{day_count})"


# --- commissions ------------------------------------------------------------------------------


class PercentCommission(CostModel):
    """Commission as a fraction of each fill's notional, with a minimum per fill."""

    class Params(Params):
        rate: Number = Field(ge=0, lt=1)
        """Fraction of notional, e.g. 0.001 for 0.1 %; 0 <= rate < 1."""
        minimum: Number = Field(default=0.0, ge=0)
        """Minimum commission per fill, in account currency (0 = none)."""

    params: PercentCommission.Params

    def commission(self, trade: TradeInfo) -> float:
        p = self.params
        return max(trade.quantity * trade.price * p.rate, p.minimum)

    def describe(self) -> str:
        p = self.params
        if p.minimum:
            return f"Commission: {_pct(p.rate)} of notional, minimum {_num(p.minimum)} per fill."
        return f"Commission: {_pct(p.rate)} of notional per fill."


class PerUnitCommission(CostModel):
    """Commission per unit traded, with a minimum and an optional cap per fill."""

    class Params(Params):
        per_unit: Number = Field(ge=0)
        """Commission per unit (share, contract, coin), in account currency."""
        minimum: Number = Field(default=0.0, ge=0)
        """Minimum commission per fill, in account currency (0 = none)."""
        maximum_pct: Number | None = Field(default=None, gt=0, lt=1)
        """Optional cap per fill as a fraction of notional (0.01 = 1 %). The cap wins over the
        minimum, as at brokers that apply both (a tiny fill pays at most the cap)."""

    params: PerUnitCommission.Params

    def commission(self, trade: TradeInfo) -> float:
        p = self.params
        fee = max(trade.quantity * p.per_unit, p.minimum)
        if p.maximum_pct is not None:
            fee = min(fee, trade.quantity * trade.price * p.maximum_pct)
        return fee

    def describe(self) -> str:
        p = self.params
        text = f"Commission: {_num(p.per_unit)} per unit"
        if p.minimum:
            text += f", minimum {_num(p.minimum)} per fill"
        else:
            text += " per fill"
        if p.maximum_pct is not None:
            text += f", capped at {_pct(p.maximum_pct)} of notional"
        return text + "."


class Tier(Params):
    """One band of a tiered commission schedule."""

    up_to: Number | None = Field(default=None, gt=0)
    """Upper bound (exclusive) of the month's traded notional for this tier, in account
    currency. Leave it out (null in JSON) on the last tier, which is open-ended."""
    rate: Number = Field(ge=0, lt=1)
    """Commission as a fraction of notional while the month's volume is in this tier."""


class TieredCommission(CostModel):
    """Commission rate chosen by the notional already traded this calendar month (UTC).

    The rate of a fill is the rate of the tier the month's volume is in *before* the fill; the
    whole fill is charged at that one rate, even when it carries the volume into the next tier
    (the rule most brokers use). A tier covers volumes from the previous tier's ``up_to``
    (inclusive) to its own ``up_to`` (exclusive). Buys and sells both count towards the volume,
    at the price the model is given. The volume starts again from 0 on the first fill of each new
    UTC calendar month. Fills must arrive in time order; :meth:`reset` starts over.
    """

    class Params(Params):
        tiers: list[Tier] = Field(min_length=1)
        """Tiers in ascending order of ``up_to``, e.g.
        ``[{up_to = 1_000_000, rate = 0.001}, {rate = 0.0005}]``; the last has no ``up_to``."""
        minimum: Number = Field(default=0.0, ge=0)
        """Minimum commission per fill, in account currency (0 = none)."""

        @model_validator(mode="after")
        def _check_tiers(self) -> TieredCommission.Params:
            tiers = self.tiers
            if tiers[-1].up_to is not None:
                raise ValueError(
                    f"tiers: the last tier must be open-ended; remove up_to = "
                    f"{_num(tiers[-1].up_to)} from it or add a final tier with only a rate"
                )
            previous = 0.0
            for i, tier in enumerate(tiers[:-1]):
                if tier.up_to is None:
                    raise ValueError(
                        f"tiers[{i}] has no up_to, but only the last tier may be open-ended; "
                        f"give it an upper bound"
                    )
                if tier.up_to <= previous:
                    raise ValueError(
                        f"tiers must be in ascending order of up_to: tiers[{i}].up_to = "
                        f"{_num(tier.up_to)} is not above the previous bound {_num(previous)}"
                    )
                previous = tier.up_to
            return self

    params: TieredCommission.Params

    def __init__(self, params: Params | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        tiers = self.params.tiers
        self._bounds = tuple(t.up_to for t in tiers[:-1])
        self._rates = tuple(t.rate for t in tiers)
        self._month: int | None = None
        self._volume = 0.0

    @property
    def month_volume(self) -> float:
        """Notional traded so far in the current month (0 before the first fill)."""
        return self._volume

    def reset(self) -> None:
        self._month = None
        self._volume = 0.0

    def rate_for(self, volume: float) -> float:
        """The rate of the tier that a month's volume of ``volume`` is in."""
        for bound, rate in zip(self._bounds, self._rates, strict=False):
            if volume < bound:
                return rate
        return self._rates[-1]

    def commission(self, trade: TradeInfo) -> float:
        month = _month_index(trade.ts)
        if month != self._month:
            if self._month is not None and month < self._month:
                raise ValueError(
                    "tiered commission: a fill arrived in an earlier month than the previous "
                    "one; fills must come in time order (call reset() between runs)"
                )
            self._month = month
            self._volume = 0.0
        notional = trade.quantity * trade.price
        fee = max(notional * self.rate_for(self._volume), self.params.minimum)
        self._volume += notional
        return fee

    def describe(self) -> str:
        parts = []
        lower = 0.0
        for bound, rate in zip(self._bounds, self._rates, strict=False):
            if lower == 0.0:
                parts.append(f"{_pct(rate)} below {_num(bound)}")
            else:
                parts.append(f"{_pct(rate)} from {_num(lower)} to {_num(bound)}")
            lower = bound
        last = self._rates[-1]
        parts.append(f"{_pct(last)} from {_num(lower)} on" if lower else f"{_pct(last)}")
        text = (
            "Commission: tiered by notional traded in the UTC calendar month — "
            + ", ".join(parts)
            + "; each fill at the rate of the month's volume before it"
        )
        if self.params.minimum:
            text += f"; minimum {_num(self.params.minimum)} per fill"
        return text + "."


def _month_index(ts: int) -> int:
    """``year * 12 + month - 1`` of the UTC calendar month containing ``ts`` (ns)."""
    day = date.fromordinal(_EPOCH_ORDINAL + ts // NS_PER_DAY)
    return day.year * 12 + day.month - 1


class MakerTakerCommission(CostModel):
    """Commission by liquidity: one rate for resting (maker) fills, another for taker fills."""

    class Params(Params):
        maker_rate: Number = Field(ge=-0.01, lt=1)
        """Fraction of notional for maker fills (a resting limit order filled); negative is a
        rebate paid to the trader, down to -0.01 (-1 %)."""
        taker_rate: Number = Field(ge=0, lt=1)
        """Fraction of notional for taker fills (market, stop, marketable limit)."""

    params: MakerTakerCommission.Params

    def commission(self, trade: TradeInfo) -> float:
        p = self.params
        rate = p.maker_rate if trade.liquidity == "maker" else p.taker_rate
        return trade.quantity * trade.price * rate

    def describe(self) -> str:
        p = self.params
        if p.maker_rate < 0:
            maker = f"makers receive a {_pct(-p.maker_rate)} rebate"
        else:
            maker = f"makers pay {_pct(p.maker_rate)}"
        return f"Commission: takers pay {_pct(p.taker_rate)} of notional, {maker}."


# --- price adjustments ---------------------------------------------------------------------------


class SpreadCost(CostModel):
    """Half the bid-ask spread against the trader: buys fill higher, sells lower.

    The half-spread is either fixed in basis points of the price or a fraction of the fill bar's
    range (high − low). The adjusted price never leaves the bar's [low, high]: it is clamped to
    the high for buys and the low for sells, since no trade happened outside that range. The model
    never improves a price: one already outside the bar (which the broker should not produce) is
    returned unchanged.
    """

    class Params(Params):
        half_spread_bps: Number | None = Field(default=None, ge=0, le=1000)
        """Fixed half-spread in basis points of the price (5 = 0.05 %). Give this or
        ``range_fraction``, not both."""
        range_fraction: Number | None = Field(default=None, ge=0, le=1)
        """Half-spread as a fraction of the fill bar's high − low (0.1 = a tenth of the
        range). Give this or ``half_spread_bps``, not both."""

        @model_validator(mode="after")
        def _exactly_one(self) -> SpreadCost.Params:
            given = (self.half_spread_bps is not None) + (self.range_fraction is not None)
            if given != 1:
                problem = "both are set; remove one" if given else "neither is set; add one"
                raise ValueError(
                    "give exactly one of half_spread_bps (a fixed half-spread in basis points) "
                    f"or range_fraction (a fraction of the bar's high − low): {problem}"
                )
            return self

    params: SpreadCost.Params

    def fill_price(self, price: float, side: Side, bar: Bar) -> float:
        p = self.params
        if p.half_spread_bps is not None:
            half = price * p.half_spread_bps / 10_000.0
        else:
            half = (bar.high - bar.low) * p.range_fraction  # type: ignore[operator]
        if side is Side.BUY:
            return max(price, min(price + half, bar.high))
        return min(price, max(price - half, bar.low))

    def describe(self) -> str:
        p = self.params
        if p.half_spread_bps is not None:
            half = f"{p.half_spread_bps:g} bps of the price"
        else:
            half = f"{p.range_fraction:g} × the fill bar's high − low"
        return (
            f"Spread: half-spread of {half} against the trader (buys higher, sells lower), "
            "clamped to the bar's low–high range."
        )


# --- daily financing --------------------------------------------------------------------------


class BorrowFee(CostModel):
    """Fee for borrowing the shares of short positions, accrued daily on their value."""

    class Params(Params):
        annual_rate: Number = Field(ge=0)
        """Yearly fee as a fraction of the short positions' value (0.02 = 2 % a year)."""
        day_count: Literal[360, 365] = 360
        """Days per year of the rate: 360 (money-market convention) or 365."""

    params: BorrowFee.Params

    def accrue(self, accrual: Accrual) -> float:
        p = self.params
        cost = accrual.short_value * p.annual_rate * accrual.days / p.day_count
        return -cost if cost else 0.0

    def describe(self) -> str:
        p = self.params
        return (
            f"Borrow fee: {_per_year(p.annual_rate, p.day_count)} on the value of short "
            "positions, accrued daily."
        )


class CashInterest(CostModel):
    """Interest paid on positive cash and charged on negative cash (a debit), accrued daily."""

    class Params(Params):
        annual_rate: Number = Field(ge=0)
        """Yearly interest paid on positive cash (0.03 = 3 % a year)."""
        debit_rate: Number | None = Field(default=None, ge=0)
        """Yearly interest charged on negative cash; default: ``annual_rate``."""
        day_count: Literal[360, 365] = 360
        """Days per year of the rates: 360 (money-market convention) or 365."""

    params: CashInterest.Params

    def accrue(self, accrual: Accrual) -> float:
        p = self.params
        cash = accrual.cash
        if cash > 0:
            rate = p.annual_rate
        elif cash < 0:
            rate = p.annual_rate if p.debit_rate is None else p.debit_rate
        else:
            return 0.0
        return cash * rate * accrual.days / p.day_count

    def describe(self) -> str:
        p = self.params
        debit = p.annual_rate if p.debit_rate is None else p.debit_rate
        return (
            f"Cash interest: {_per_year(p.annual_rate, p.day_count)} paid on positive cash, "
            f"{_pct(debit)} a year charged on negative cash, accrued daily."
        )


BUILTIN_COST_MODELS: dict[str, type[CostModel]] = {
    "percent": PercentCommission,
    "per-unit": PerUnitCommission,
    "tiered": TieredCommission,
    "maker-taker": MakerTakerCommission,
    "spread": SpreadCost,
    "borrow-fee": BorrowFee,
    "cash-interest": CashInterest,
}
"""The kernel's cost models by registered name."""

__all__ = [
    "BUILTIN_COST_MODELS",
    "Accrual",
    "BorrowFee",
    "CashInterest",
    "CostModel",
    "Liquidity",
    "MakerTakerCommission",
    "PerUnitCommission",
    "PercentCommission",
    "SpreadCost",
    "Tier",
    "TieredCommission",
    "TradeInfo",
]

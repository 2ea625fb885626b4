"""Cost models of the simulated broker: every number below is worked out by hand in a comment."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tradeloom.components import Params
from tradeloom.execution.cost_models import (
    BUILTIN_COST_MODELS,
    Accrual,
    BorrowFee,
    CashInterest,
    CostModel,
    MakerTakerCommission,
    PercentCommission,
    PerUnitCommission,
    SpreadCost,
    TieredCommission,
    TradeInfo,
)
from tradeloom.model import Bar, Side


def ns(text: str) -> int:
    """A UTC timestamp as integer nanoseconds."""
    return pd.Timestamp(text, tz="UTC").value


def trade(
    quantity: float,
    price: float,
    *,
    side: Side = Side.BUY,
    ts: str = "2024-01-15 15:00",
    liquidity: str = "taker",
) -> TradeInfo:
    return TradeInfo("XYZ", side, quantity, price, ns(ts), liquidity)  # type: ignore[arg-type]


def bar(low: float, high: float) -> Bar:
    return Bar("XYZ", ns("2024-01-15 15:00"), (low + high) / 2, high, low, (low + high) / 2, 1e6)


def accrual(days: float = 1, cash: float = 0.0, long: float = 0.0, short: float = 0.0) -> Accrual:
    return Accrual(ns("2024-01-15"), days, cash, long, short)


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-12, abs=1e-12)


# --- percent -----------------------------------------------------------------------------------


def test_percent_rate_and_minimum() -> None:
    model = PercentCommission(rate=0.001, minimum=1.0)
    # 100 × 50 = 5,000 notional; × 0.001 = 5.00 (above the minimum).
    assert model.commission(trade(100, 50.0)) == approx(5.0)
    # 10 × 50 = 500; × 0.001 = 0.50 -> the minimum of 1.00 applies.
    assert model.commission(trade(10, 50.0)) == approx(1.0)
    # Sells pay the same: 30 × 200 = 6,000; × 0.001 = 6.00.
    assert model.commission(trade(30, 200.0, side=Side.SELL)) == approx(6.0)
    assert model.describe() == "Commission: 0.10 % of notional, minimum 1 per fill."
    assert PercentCommission(rate=0.00005).describe() == "Commission: 0.005 % of notional per fill."


# --- per-unit ----------------------------------------------------------------------------------


def test_per_unit_minimum_and_cap() -> None:
    model = PerUnitCommission(per_unit=0.005, minimum=1.0, maximum_pct=0.01)
    # 1,000 × 0.005 = 5.00; the cap is 1,000 × 20 × 0.01 = 200 -> 5.00.
    assert model.commission(trade(1000, 20.0)) == approx(5.0)
    # 100 × 0.005 = 0.50 -> minimum 1.00; the cap 100 × 20 × 0.01 = 20 does not bite.
    assert model.commission(trade(100, 20.0)) == approx(1.0)
    # 10,000 × 0.005 = 50.00; the cap is 10,000 × 0.2 × 0.01 = 20.00 -> 20.00.
    assert model.commission(trade(10_000, 0.2)) == approx(20.0)
    # A tiny fill: 100 × 0.005 = 0.50 -> minimum 1.00, but the cap 100 × 0.5 × 0.01 = 0.50 wins.
    assert model.commission(trade(100, 0.5)) == approx(0.5)
    assert model.describe() == (
        "Commission: 0.005 per unit, minimum 1 per fill, capped at 1.00 % of notional."
    )
    # Without a cap: 3,000 × 0.005 = 15.00, never capped.
    assert PerUnitCommission(per_unit=0.005).commission(trade(3000, 0.1)) == approx(15.0)


# --- tiered ------------------------------------------------------------------------------------

TIERS = [
    {"up_to": 10_000, "rate": 0.001},
    {"up_to": 50_000, "rate": 0.0005},
    {"rate": 0.0002},
]


def test_tiered_across_a_tier_boundary_and_a_month_change() -> None:
    model = TieredCommission(tiers=TIERS)
    # Volume before 0 (tier 1, 0.1 %): 60 × 100 = 6,000 -> 6.00. Volume 6,000.
    assert model.commission(trade(60, 100.0, ts="2024-01-02 15:00")) == approx(6.0)
    # Volume before 6,000 (still tier 1): 50 × 100 = 5,000 takes it to 11,000, across the
    # 10,000 boundary, but the whole fill pays tier 1's 0.1 %: 5.00. Volume 11,000.
    assert model.commission(trade(50, 100.0, ts="2024-01-03 15:00")) == approx(5.0)
    assert model.month_volume == approx(11_000.0)
    # Volume before 11,000 (tier 2, 0.05 %): 10 × 100 = 1,000 -> 0.50. Volume 12,000.
    assert model.commission(trade(10, 100.0, ts="2024-01-04 15:00")) == approx(0.5)
    # Sells count too: 400 × 100 = 40,000 at 0.05 % -> 20.00. Volume 52,000.
    sell = trade(400, 100.0, side=Side.SELL, ts="2024-01-05 15:00")
    assert model.commission(sell) == approx(20.0)
    # Volume before 52,000 (tier 3, 0.02 %): 10 × 100 = 1,000 -> 0.20. Volume 53,000.
    assert model.commission(trade(10, 100.0, ts="2024-01-31 23:59:59.999999999")) == approx(0.2)
    assert model.month_volume == approx(53_000.0)
    # 1 February 00:00 UTC: a new month, the volume restarts at 0 -> tier 1: 1,000 × 0.1 % = 1.00.
    assert model.commission(trade(10, 100.0, ts="2024-02-01 00:00")) == approx(1.0)
    assert model.month_volume == approx(1_000.0)


def test_tiered_bound_is_exclusive_and_minimum_applies() -> None:
    model = TieredCommission(tiers=TIERS, minimum=2.0)
    # 100 × 100 = 10,000 at 0.1 % = 10.00; the volume is now exactly 10,000.
    assert model.commission(trade(100, 100.0)) == approx(10.0)
    # Volume exactly at up_to = 10,000 is in tier 2: 60 × 100 = 6,000 × 0.05 % = 3.00. Volume 16,000.
    assert model.commission(trade(60, 100.0)) == approx(3.0)
    # 10 × 100 = 1,000 × 0.05 % = 0.50 is raised to the minimum of 2.00.
    assert model.commission(trade(10, 100.0)) == approx(2.0)
    assert model.rate_for(9_999.99) == 0.001
    assert model.rate_for(10_000.0) == 0.0005
    assert model.rate_for(1e12) == 0.0002


def test_tiered_refuses_time_going_back_a_month_until_reset() -> None:
    model = TieredCommission(tiers=TIERS)
    # 20 × 100 = 2,000 at 0.1 % = 2.00.
    assert model.commission(trade(20, 100.0, ts="2024-03-10")) == approx(2.0)
    with pytest.raises(ValueError, match="time order"):
        model.commission(trade(20, 100.0, ts="2024-02-28"))
    model.reset()
    assert model.month_volume == 0.0
    # After reset February is fine again: 2,000 at 0.1 % = 2.00.
    assert model.commission(trade(20, 100.0, ts="2024-02-28")) == approx(2.0)
    assert model.month_volume == approx(2_000.0)


def test_tiered_describe() -> None:
    model = TieredCommission(tiers=TIERS, minimum=1)
    assert model.describe() == (
        "Commission: tiered by notional traded in the UTC calendar month — 0.10 % below 10,000, "
        "0.05 % from 10,000 to 50,000, 0.02 % from 50,000 on; each fill at the rate of the "
        "month's volume before it; minimum 1 per fill."
    )


# --- maker-taker -------------------------------------------------------------------------------


def test_maker_taker_with_rebate() -> None:
    model = MakerTakerCommission(maker_rate=-0.0002, taker_rate=0.0007)
    # Taker: 10 × 250 = 2,500 × 0.07 % = 1.75 paid.
    assert model.commission(trade(10, 250.0, liquidity="taker")) == approx(1.75)
    # Maker: 2,500 × -0.02 % = -0.50, a rebate credited to the trader.
    assert model.commission(trade(10, 250.0, liquidity="maker")) == approx(-0.5)
    assert model.describe() == (
        "Commission: takers pay 0.07 % of notional, makers receive a 0.02 % rebate."
    )
    paying = MakerTakerCommission(maker_rate=0.0001, taker_rate=0.0007)
    # Maker: 2,500 × 0.01 % = 0.25 paid.
    assert paying.commission(trade(10, 250.0, liquidity="maker")) == approx(0.25)
    assert paying.describe() == "Commission: takers pay 0.07 % of notional, makers pay 0.01 %."


# --- spread ------------------------------------------------------------------------------------


def test_spread_fixed_bps_and_clamp() -> None:
    model = SpreadCost(half_spread_bps=10)
    b = bar(low=99.0, high=102.0)
    # 10 bps of 100 = 0.10: buys at 100.10, sells at 99.90.
    assert model.fill_price(100.0, Side.BUY, b) == approx(100.1)
    assert model.fill_price(100.0, Side.SELL, b) == approx(99.9)
    # 101.95 + 0.10195 = 102.05195 is above the high -> clamped to 102.
    assert model.fill_price(101.95, Side.BUY, b) == 102.0
    # 99.05 − 0.09905 = 98.95095 is below the low -> clamped to 99.
    assert model.fill_price(99.05, Side.SELL, b) == 99.0
    assert model.describe() == (
        "Spread: half-spread of 10 bps of the price against the trader (buys higher, sells "
        "lower), clamped to the bar's low–high range."
    )


def test_spread_range_based_and_clamp() -> None:
    model = SpreadCost(range_fraction=0.25)
    b = bar(low=98.0, high=102.0)
    # Half-spread = 0.25 × (102 − 98) = 1.00: buys at 101, sells at 99.
    assert model.fill_price(100.0, Side.BUY, b) == approx(101.0)
    assert model.fill_price(100.0, Side.SELL, b) == approx(99.0)
    # 101.5 + 1 = 102.5 -> the high, 102; 98.4 − 1 = 97.4 -> the low, 98.
    assert model.fill_price(101.5, Side.BUY, b) == 102.0
    assert model.fill_price(98.4, Side.SELL, b) == 98.0
    # A bar with no range (high == low == 100) has no spread to charge.
    assert model.fill_price(100.0, Side.BUY, bar(100.0, 100.0)) == 100.0
    # A price already outside the bar is never improved (103 > high for a buy, 97 < low).
    assert model.fill_price(103.0, Side.BUY, b) == 103.0
    assert model.fill_price(97.0, Side.SELL, b) == 97.0
    assert model.describe() == (
        "Spread: half-spread of 0.25 × the fill bar's high − low against the trader (buys "
        "higher, sells lower), clamped to the bar's low–high range."
    )


@given(
    low=st.floats(min_value=0.01, max_value=1e6),
    width=st.floats(min_value=0.0, max_value=1e5),
    where=st.floats(min_value=0.0, max_value=1.0),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    bps=st.floats(min_value=0.0, max_value=1000.0),
    fraction=st.floats(min_value=0.0, max_value=1.0),
    fixed=st.booleans(),
)
def test_spread_stays_in_the_bar_and_never_helps_the_trader(
    low: float, width: float, where: float, side: Side, bps: float, fraction: float, fixed: bool
) -> None:
    high = low + width
    price = min(max(low + where * (high - low), low), high)
    model = SpreadCost(half_spread_bps=bps) if fixed else SpreadCost(range_fraction=fraction)
    result = model.fill_price(price, side, bar(low, high))
    assert low <= result <= high
    if side is Side.BUY:
        assert result >= price
    else:
        assert result <= price


# --- financing ---------------------------------------------------------------------------------


def test_borrow_fee_over_a_weekend() -> None:
    model = BorrowFee(annual_rate=0.036)
    # Friday to Monday, 3 days: 50,000 × 0.036 × 3 / 360 = 15.00 charged.
    assert model.accrue(accrual(days=3, short=50_000.0, long=80_000.0)) == approx(-15.0)
    # One day: 50,000 × 0.036 / 360 = 5.00.
    assert model.accrue(accrual(days=1, short=50_000.0)) == approx(-5.0)
    # No shorts, no fee (longs are never charged).
    assert model.accrue(accrual(days=3, long=80_000.0)) == 0.0
    # Actual/365: 50,000 × 0.0365 × 3 / 365 = 15.00.
    model_365 = BorrowFee(annual_rate=0.0365, day_count=365)
    assert model_365.accrue(accrual(days=3, short=50_000.0)) == approx(-15.0)
    assert model.describe() == (
        "Borrow fee: 3.60 % a year (actual/360) on the value of short positions, accrued daily."
    )


def test_cash_interest_on_positive_and_negative_cash() -> None:
    model = CashInterest(annual_rate=0.036, debit_rate=0.072)
    # 100,000 × 0.036 × 1 / 360 = 10.00 earned.
    assert model.accrue(accrual(days=1, cash=100_000.0)) == approx(10.0)
    # Weekend: 100,000 × 0.036 × 3 / 360 = 30.00 earned.
    assert model.accrue(accrual(days=3, cash=100_000.0)) == approx(30.0)
    # A debit of 20,000 over 3 days: −20,000 × 0.072 × 3 / 360 = −12.00 charged.
    assert model.accrue(accrual(days=3, cash=-20_000.0)) == approx(-12.0)
    assert model.accrue(accrual(days=3, cash=0.0)) == 0.0
    # Debit rate defaults to the annual rate: −20,000 × 0.036 × 3 / 360 = −6.00.
    same = CashInterest(annual_rate=0.036)
    assert same.accrue(accrual(days=3, cash=-20_000.0)) == approx(-6.0)
    # Actual/365: 36,500 × 0.04 × 1 / 365 = 4.00.
    assert CashInterest(annual_rate=0.04, day_count=365).accrue(
        accrual(days=1, cash=36_500.0)
    ) == approx(4.0)
    assert model.describe() == (
        "Cash interest: 3.60 % a year (actual/360) paid on positive cash, 7.20 % a year charged "
        "on negative cash, accrued daily."
    )


# --- the contract ------------------------------------------------------------------------------


def test_models_chain_like_the_broker_will_call_them() -> None:
    models: list[CostModel] = [SpreadCost(half_spread_bps=10), PercentCommission(rate=0.001)]
    b = bar(low=99.0, high=102.0)
    price = 100.0
    for model in models:
        price = model.fill_price(price, Side.BUY, b)
    # The spread moves 100 to 100.10; the percent model leaves prices alone.
    assert price == approx(100.1)
    fill = trade(10, price)
    # Commission: the spread model charges none; 10 × 100.10 × 0.001 = 1.001.
    assert sum(m.commission(fill) for m in models) == approx(1.001)
    # Neither model accrues anything.
    assert sum(m.accrue(accrual(days=3, cash=1e6, short=1e6)) for m in models) == 0.0


def test_builtin_registry() -> None:
    expected = {
        "percent": PercentCommission,
        "per-unit": PerUnitCommission,
        "tiered": TieredCommission,
        "maker-taker": MakerTakerCommission,
        "spread": SpreadCost,
        "borrow-fee": BorrowFee,
        "cash-interest": CashInterest,
    }
    assert expected == BUILTIN_COST_MODELS
    for name, cls in BUILTIN_COST_MODELS.items():
        assert re.fullmatch(r"[a-z][a-z0-9_-]*", name)
        assert issubclass(cls, CostModel)
        assert issubclass(cls.Params, Params) and cls.Params is not Params
        for field_name, field in cls.Params.model_fields.items():
            assert field.description, f"{name}.{field_name} has no docstring"


def test_trade_info_and_accrual_check_their_inputs() -> None:
    with pytest.raises(ValueError, match="quantity"):
        trade(0, 100.0)
    with pytest.raises(ValueError, match="price"):
        trade(1, math.nan)
    with pytest.raises(ValueError, match="liquidity"):
        trade(1, 100.0, liquidity="resting")
    with pytest.raises(ValueError, match="days"):
        accrual(days=0)
    with pytest.raises(ValueError, match="short_value"):
        accrual(short=-1.0)
    # notional = 3 × 12.5 = 37.5
    assert trade(3, 12.5).notional == 37.5


# --- validation --------------------------------------------------------------------------------


def _error(cls: type[CostModel], **params: object) -> tuple[str, str]:
    """(location, message) of the single validation error of ``cls.Params(**params)``."""
    with pytest.raises(ValidationError) as info:
        cls.Params(**params)
    errors = info.value.errors()
    assert len(errors) == 1, errors
    return ".".join(str(p) for p in errors[0]["loc"]), errors[0]["msg"]


def test_tiers_must_ascend() -> None:
    tiers = [{"up_to": 50_000, "rate": 0.001}, {"up_to": 10_000, "rate": 0.0005}, {"rate": 0}]
    _, msg = _error(TieredCommission, tiers=tiers)
    assert "ascending" in msg and "tiers[1].up_to = 10,000" in msg and "50,000" in msg
    equal = [{"up_to": 10_000, "rate": 0.001}, {"up_to": 10_000, "rate": 0.0005}, {"rate": 0}]
    assert "ascending" in _error(TieredCommission, tiers=equal)[1]


def test_tiers_last_open_ended_and_only_last() -> None:
    closed = [{"up_to": 10_000, "rate": 0.001}, {"up_to": 50_000, "rate": 0.0005}]
    _, msg = _error(TieredCommission, tiers=closed)
    assert "last tier must be open-ended" in msg and "50,000" in msg
    gap = [{"rate": 0.001}, {"rate": 0.0005}]
    assert "tiers[0] has no up_to" in _error(TieredCommission, tiers=gap)[1]
    assert _error(TieredCommission, tiers=[])[0] == "tiers"
    loc, _ = _error(TieredCommission, tiers=[{"up_to": -5, "rate": 0.001}, {"rate": 0.0}])
    assert loc == "tiers.0.up_to"


def test_spread_needs_exactly_one_parameter() -> None:
    _, both = _error(SpreadCost, half_spread_bps=5, range_fraction=0.1)
    assert "half_spread_bps" in both and "range_fraction" in both and "both are set" in both
    _, neither = _error(SpreadCost)
    assert "half_spread_bps" in neither and "range_fraction" in neither and "neither" in neither
    assert _error(SpreadCost, range_fraction=1.5)[0] == "range_fraction"
    assert _error(SpreadCost, half_spread_bps=-1)[0] == "half_spread_bps"


@pytest.mark.parametrize(
    ("cls", "params", "field"),
    [
        (PercentCommission, {"rate": -0.001}, "rate"),
        (PercentCommission, {"rate": 1.0}, "rate"),
        (PercentCommission, {"rate": 0.001, "minimum": -1}, "minimum"),
        (PerUnitCommission, {"per_unit": -0.005}, "per_unit"),
        (PerUnitCommission, {"per_unit": 0.005, "maximum_pct": 0}, "maximum_pct"),
        (TieredCommission, {"tiers": [{"rate": -0.001}]}, "tiers.0.rate"),
        (MakerTakerCommission, {"maker_rate": -0.02, "taker_rate": 0.001}, "maker_rate"),
        (MakerTakerCommission, {"maker_rate": 0.0, "taker_rate": -0.0001}, "taker_rate"),
        (BorrowFee, {"annual_rate": -0.01}, "annual_rate"),
        (BorrowFee, {"annual_rate": 0.01, "day_count": 364}, "day_count"),
        (CashInterest, {"annual_rate": -0.01}, "annual_rate"),
        (CashInterest, {"annual_rate": 0.01, "debit_rate": -0.01}, "debit_rate"),
    ],
)
def test_out_of_range_values_are_refused(
    cls: type[CostModel], params: dict[str, object], field: str
) -> None:
    assert _error(cls, **params)[0] == field


def test_non_finite_booleans_and_unknown_keys_are_refused() -> None:
    loc, msg = _error(PercentCommission, rate=math.inf)
    assert (loc, msg) == ("rate", "Input should be a finite number")
    assert _error(CashInterest, annual_rate=math.nan)[0] == "annual_rate"
    loc, msg = _error(BorrowFee, annual_rate=True)
    assert loc == "annual_rate" and "not true/false" in msg
    loc, msg = _error(PercentCommission, rate=0.001, minimun=1)
    assert loc == "minimun" and "not permitted" in msg
    model = PercentCommission(rate=0.001)
    with pytest.raises(ValidationError):
        model.params.rate = 0.5  # type: ignore[misc]
    # The failed assignment left the rate alone: 1,000 × 0.001 = 1.00.
    assert model.commission(trade(10, 100.0)) == approx(1.0)

"""Position-sizing helpers (tradeloom.risk.sizing) on hand-computed numbers.

Expected values are worked out on paper in the comments, never by calling the code under test
or re-implementing it with numpy. Property tests check the invariants every sizer promises:
the loss at the stop never exceeds the risk budget, limits are never exceeded, and every
result is a whole multiple of the lot.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tradeloom.risk.sizing import (
    atr,
    atr_target,
    cap,
    fixed_fractional,
    round_to_lot,
    volatility_target,
)

DECIMAL_LOTS = [0.00001, 0.001, 0.01, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0, 100.0]


def is_exact_multiple(value: float, lot: float) -> bool:
    """Whether ``value`` prints as a whole multiple of ``lot`` (both read as decimals)."""
    return Decimal(repr(value)) % Decimal(repr(lot)) == 0


# -- round_to_lot ----------------------------------------------------------------------------


def test_round_to_lot_whole_units():
    assert round_to_lot(2.7) == 2.0  # floor(2.7) = 2
    assert round_to_lot(3.0) == 3.0
    assert round_to_lot(0.99) == 0.0  # less than one lot


def test_round_to_lot_decimal_lots_are_exact():
    # 1.2345 ÷ 0.001 = 1234.5 lots → 1234 lots × 0.001 = 1.234
    assert round_to_lot(1.2345, 0.001) == 1.234
    # In floats 0.3 / 0.1 == 2.9999999999999996, which would floor to 2 lots = 0.2;
    # in decimals 0.3 ÷ 0.1 = 3 lots exactly → 0.3.
    assert 0.3 / 0.1 < 3  # the float artefact the helper must avoid
    assert round_to_lot(0.3, 0.1) == 0.3
    # 0.7 ÷ 0.1 = 7 lots (floats: 6.999999999999999)
    assert round_to_lot(0.7, 0.1) == 0.7
    # 1.005 ÷ 0.01 = 100.5 lots → 100 lots = 1.0
    assert round_to_lot(1.005, 0.01) == 1.0
    # 0.123456789 ÷ 0.00001 = 12345.6789 lots → 12345 lots = 0.12345
    assert round_to_lot(0.123456789, 0.00001) == 0.12345


def test_round_to_lot_larger_lots():
    assert round_to_lot(1428.57, 100) == 1400.0  # 14.2857 lots → 14 lots
    assert round_to_lot(12.6, 0.25) == 12.5  # 50.4 lots → 50 lots × 0.25
    assert round_to_lot(99.0, 100) == 0.0  # under one lot


def test_round_to_lot_shorts_round_toward_zero():
    assert round_to_lot(-2.7) == -2.0  # toward zero, not floor (−3)
    assert round_to_lot(-1.2345, 0.001) == -1.234
    assert round_to_lot(-0.3, 0.1) == -0.3
    assert round_to_lot(-150.0, 100) == -100.0


def test_round_to_lot_never_returns_negative_zero():
    result = round_to_lot(-0.4)  # under one lot, short side
    assert result == 0.0
    assert math.copysign(1.0, result) == 1.0
    assert math.copysign(1.0, round_to_lot(-0.0)) == 1.0


def test_round_to_lot_snaps_float_artefacts_just_under_a_lot():
    # 100 × 0.29 == 28.999999999999996 in floats; the intended size is 29 units.
    assert 100 * 0.29 < 29
    assert round_to_lot(100 * 0.29) == 29.0
    # A genuine shortfall (one part in a million) is still rounded down.
    assert round_to_lot(28.99997) == 28.0


@pytest.mark.parametrize(
    ("quantity", "lot", "field"),
    [
        (math.nan, 1.0, "quantity"),
        (math.inf, 1.0, "quantity"),
        (1.0, 0.0, "lot"),
        (1.0, -0.1, "lot"),
        (1.0, math.inf, "lot"),
    ],
)
def test_round_to_lot_validation(quantity, lot, field):
    with pytest.raises(ValueError, match=f"^{field}"):
        round_to_lot(quantity, lot)


def test_round_to_lot_rejects_non_numbers():
    with pytest.raises(TypeError, match=r"^quantity"):
        round_to_lot("1.5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^lot"):
        round_to_lot(1.5, True)  # type: ignore[arg-type]


# -- fixed_fractional ------------------------------------------------------------------------


def test_fixed_fractional_textbook():
    # 100,000 × 1 % = 1,000 at risk; |50 − 48| = 2 per unit → 1,000 ÷ 2 = 500 units.
    assert fixed_fractional(100_000, 0.01, 50, 48) == 500.0
    # 500 is already a multiple of 100 → 500.
    assert fixed_fractional(100_000, 0.01, 50, 48, lot=100) == 500.0


def test_fixed_fractional_short_side_is_symmetric():
    # Stop above the entry (a short): |50 − 52| = 2 → the same 500 units, unsigned.
    assert fixed_fractional(100_000, 0.01, 50, 52) == 500.0


def test_fixed_fractional_floors_to_the_lot():
    # |50 − 49.3| = 0.7 (in floats 0.7000000000000028); 1,000 ÷ 0.7 = 1,428.571… units.
    assert fixed_fractional(100_000, 0.01, 50, 49.3) == 1428.0  # lot 1 → 1,428
    assert fixed_fractional(100_000, 0.01, 50, 49.3, lot=100) == 1400.0  # 14.28 lots → 14
    assert fixed_fractional(100_000, 0.01, 50, 49.3, lot=0.001) == 1428.571  # 1,428,571 lots
    # Risk at the stop stays within budget: 1,428 × 0.7 = 999.6 ≤ 1,000.
    assert 1428 * 0.7 <= 1000


def test_fixed_fractional_nothing_to_trade():
    assert fixed_fractional(100_000, 0.01, 50, 50) == 0.0  # zero stop distance
    assert fixed_fractional(0, 0.01, 50, 48) == 0.0  # no equity
    assert fixed_fractional(-5_000, 0.01, 50, 48) == 0.0  # negative equity
    assert fixed_fractional(100, 0.01, 50, 48) == 0.0  # 1 ÷ 2 = 0.5 unit → under one lot


def test_fixed_fractional_full_risk_allowed():
    # risk_fraction = 1 is the inclusive upper bound: 10,000 × 1 ÷ 4 = 2,500.
    assert fixed_fractional(10_000, 1.0, 100, 96) == 2500.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"risk_fraction": 0.0}, "risk_fraction"),
        ({"risk_fraction": -0.01}, "risk_fraction"),
        ({"risk_fraction": 1.5}, "risk_fraction"),
        ({"risk_fraction": math.nan}, "risk_fraction"),
        ({"entry": math.nan}, "entry"),
        ({"entry": math.inf}, "entry"),
        ({"stop": -math.inf}, "stop"),
        ({"stop": math.nan}, "stop"),
        ({"equity": math.inf}, "equity"),
        ({"lot": 0.0}, "lot"),
    ],
)
def test_fixed_fractional_validation(kwargs, field):
    args = {"equity": 100_000, "risk_fraction": 0.01, "entry": 50, "stop": 48} | kwargs
    with pytest.raises(ValueError, match=f"^{field}"):
        fixed_fractional(**args)


# -- atr -------------------------------------------------------------------------------------

# Sixteen bars (index: high, low, close) and their true ranges, with C_prev the close before:
#   0: 101,   99,    100   — no previous close, no TR
#   1: 100.5, 99.5,  100   TR = max(1,   |100.5−100| = 0.5, |99.5−100| = 0.5) = 1
#   2: 101,   99,    100   TR = max(2,   1,   1)                               = 2
#   3: 101,   99,    101   TR = max(2,   1,   1)                               = 2
#   4: 101.5, 100.5, 101   TR = max(1,   0.5, 0.5)        (C_prev = 101)       = 1
#   5: 99,    97,    98    TR = max(2,   |99−101| = 2, |97−101| = 4)           = 4  gap down
#   6: 99,    97,    98    TR = max(2,   1,   1)          (C_prev = 98)        = 2
#   7: 99,    97,    98    TR = 2
#   8: 99,    97,    98    TR = 2
#   9: 100,   98,    99    TR = max(2,   |100−98| = 2, |98−98| = 0)            = 2
#  10-14: 100, 98,   99    TR = max(2,   1,   1)          (C_prev = 99)        = 2 each
#  15: 115,   113,   114   TR = max(2,   |115−99| = 16, |113−99| = 14)         = 16 gap up
# Seed (window 14): (1 + 2 + 2 + 1 + 4 + 9 × 2) ÷ 14 = 28 ÷ 14 = 2.0 = ATR at bar 14.
# Bar 15, Wilder: (2.0 × 13 + 16) ÷ 14 = 42 ÷ 14 = 3.0.
# (A simple mean of the last 14 TRs would be (28 − 1 + 16) ÷ 14 = 43 ÷ 14 ≈ 3.0714 instead.)
BARS = [
    (101, 99, 100),
    (100.5, 99.5, 100),
    (101, 99, 100),
    (101, 99, 101),
    (101.5, 100.5, 101),
    (99, 97, 98),
    (99, 97, 98),
    (99, 97, 98),
    (99, 97, 98),
    (100, 98, 99),
    (100, 98, 99),
    (100, 98, 99),
    (100, 98, 99),
    (100, 98, 99),
    (100, 98, 99),
    (115, 113, 114),
]
HIGH = np.array([bar[0] for bar in BARS], dtype=float)
LOW = np.array([bar[1] for bar in BARS], dtype=float)
CLOSE = np.array([bar[2] for bar in BARS], dtype=float)


def test_atr_sixteen_bars_wilder():
    assert len(BARS) == 16
    assert atr(HIGH, LOW, CLOSE, 14) == pytest.approx(3.0, abs=1e-12)
    assert atr(HIGH, LOW, CLOSE, 14) != pytest.approx(43 / 14)  # not a simple moving average


def test_atr_minimum_history_is_the_seed():
    # window + 1 = 15 bars (0-14): exactly the seed, 28 ÷ 14 = 2.0.
    assert atr(HIGH[:15], LOW[:15], CLOSE[:15], 14) == pytest.approx(2.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"window \+ 1 = 15 bars"):
        atr(HIGH[:14], LOW[:14], CLOSE[:14], 14)


def test_atr_short_window_two_smoothing_steps():
    # window 3, six bars (high, low, close):
    #   0: 11, 9, 10
    #   1: 11, 9, 10     TR = max(2, 1, 1) = 2
    #   2: 12, 10, 11    TR = max(2, |12−10| = 2, |10−10| = 0) = 2
    #   3: 12, 10, 11    TR = max(2, 1, 1) = 2              → seed (2 + 2 + 2) ÷ 3 = 2
    #   4: 14, 13, 13    TR = max(1, |14−11| = 3, |13−11| = 2) = 3  (gap up)
    #                    ATR = (2 × 2 + 3) ÷ 3 = 7/3
    #   5: 13.5, 12.5, 13  TR = max(1, 0.5, 0.5) = 1
    #                    ATR = (7/3 × 2 + 1) ÷ 3 = (14/3 + 3/3) ÷ 3 = 17/9 ≈ 1.8889
    high = np.array([11, 11, 12, 12, 14, 13.5])
    low = np.array([9, 9, 10, 10, 13, 12.5])
    close = np.array([10, 10, 11, 11, 13, 13])
    assert atr(high, low, close, 3) == pytest.approx(17 / 9, abs=1e-12)
    assert atr(high[:5], low[:5], close[:5], 3) == pytest.approx(7 / 3, abs=1e-12)


def test_atr_accepts_lists():
    assert atr([11, 11], [9, 9], [10, 10], 1) == pytest.approx(2.0)  # window 1: the last TR


def test_atr_validation():
    with pytest.raises(ValueError, match=r"^low must have the same length"):
        atr(HIGH, LOW[:-1], CLOSE)
    with pytest.raises(ValueError, match=r"^close must be finite"):
        atr(HIGH, LOW, np.where(np.arange(16) == 3, np.nan, CLOSE))
    with pytest.raises(ValueError, match=r"^high must be >= low"):
        atr(LOW, HIGH, CLOSE)
    with pytest.raises(ValueError, match=r"^high must be 1-D"):
        atr(HIGH.reshape(4, 4), LOW, CLOSE)
    with pytest.raises(ValueError, match=r"^window must be >= 1"):
        atr(HIGH, LOW, CLOSE, 0)
    with pytest.raises(TypeError, match=r"^window must be an integer"):
        atr(HIGH, LOW, CLOSE, 14.0)  # type: ignore[arg-type]


# -- volatility_target -----------------------------------------------------------------------


def test_volatility_target_known_std():
    # returns 0.02, 0, −0.02: mean 0, Σ squares = 0.0004 + 0 + 0.0004 = 0.0008,
    # ÷ (3 − 1) = 0.0004 → σ = 0.02 per period.
    returns = np.array([0.02, 0.0, -0.02])
    # 100 periods a year: σ_annual = 0.02 × √100 = 0.2.
    # units = 100,000 × 0.10 ÷ (50 × 0.2) = 10,000 ÷ 10 = 1,000.
    assert volatility_target(100_000, 0.10, 50, returns, periods_per_year=100) == 1000.0
    # Daily (252): σ_annual = 0.02 × 15.874507866 = 0.31749; 10,000 ÷ (50 × 0.31749)
    # = 10,000 ÷ 15.8745 = 629.94 → 629 units.
    assert volatility_target(100_000, 0.10, 50, returns) == 629.0
    # Lot 100: 1,000 units is 10 lots exactly.
    assert volatility_target(100_000, 0.10, 50, returns, periods_per_year=100, lot=100) == 1000.0
    # Lot 0.001: 629.9407883… → 629.940.
    assert volatility_target(100_000, 0.10, 50, returns, lot=0.001) == 629.94


def test_volatility_target_ignores_the_mean():
    # Shifting every return by +0.01 leaves σ = 0.02 → still 1,000 units.
    returns = np.array([0.03, 0.01, -0.01])
    assert volatility_target(100_000, 0.10, 50, returns, periods_per_year=100) == 1000.0


def test_volatility_target_zero_volatility_or_equity():
    flat = np.array([0.01, 0.01, 0.01])  # σ = 0
    assert volatility_target(100_000, 0.10, 50, flat) == 0.0
    assert volatility_target(0, 0.10, 50, np.array([0.02, 0.0, -0.02])) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"returns": np.array([0.01])}, "returns"),  # a single return has no sample std
        ({"returns": np.array([0.01, np.nan, 0.02])}, "returns"),
        ({"target_vol": 0.0}, "target_vol"),
        ({"target_vol": -0.1}, "target_vol"),
        ({"price": 0.0}, "price"),
        ({"price": math.nan}, "price"),
        ({"periods_per_year": 0}, "periods_per_year"),
        ({"equity": math.nan}, "equity"),
        ({"lot": -1.0}, "lot"),
    ],
)
def test_volatility_target_validation(kwargs, field):
    args = {
        "equity": 100_000,
        "target_vol": 0.1,
        "price": 50,
        "returns": np.array([0.02, 0.0, -0.02]),
    } | kwargs
    with pytest.raises(ValueError, match=f"^{field}"):
        volatility_target(**args)


# -- atr_target ------------------------------------------------------------------------------


def test_atr_target():
    # Stop 2 ATRs away, ATR 2.5 → 5 per unit; 100,000 × 1 % = 1,000 → 1,000 ÷ 5 = 200 units.
    assert atr_target(100_000, 0.01, 2.5) == 200.0
    # 3 ATRs: 1,000 ÷ 7.5 = 133.33 → 133 units; lot 10 → 130; lot 0.01 → 133.33.
    assert atr_target(100_000, 0.01, 2.5, 3.0) == 133.0
    assert atr_target(100_000, 0.01, 2.5, 3.0, lot=10) == 130.0
    assert atr_target(100_000, 0.01, 2.5, 3.0, lot=0.01) == 133.33
    # Same as fixed_fractional with the stop 2 × 2.5 = 5 below a 50 entry.
    assert atr_target(100_000, 0.01, 2.5) == fixed_fractional(100_000, 0.01, 50, 45)


def test_atr_target_with_the_atr_helper():
    # ATR of the sixteen bars is 3.0; 2 ATRs = 6 per unit; 1,000 ÷ 6 = 166.67 → 166.
    assert atr_target(100_000, 0.01, atr(HIGH, LOW, CLOSE)) == 166.0


def test_atr_target_nothing_to_trade():
    assert atr_target(100_000, 0.01, 0.0) == 0.0  # zero ATR: no stop distance
    assert atr_target(-1.0, 0.01, 2.5) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"risk_fraction": 0.0}, "risk_fraction"),
        ({"risk_fraction": 1.01}, "risk_fraction"),
        ({"atr_value": -1.0}, "atr_value"),
        ({"atr_value": math.inf}, "atr_value"),
        ({"atr_multiple": 0.0}, "atr_multiple"),
        ({"equity": -math.inf}, "equity"),
        ({"lot": 0}, "lot"),
    ],
)
def test_atr_target_validation(kwargs, field):
    args = {"equity": 100_000, "risk_fraction": 0.01, "atr_value": 2.5} | kwargs
    with pytest.raises(ValueError, match=f"^{field}"):
        atr_target(**args)


# -- cap -------------------------------------------------------------------------------------


def test_cap_no_limits_just_rounds():
    assert cap(500.7, 50) == 500.0
    assert cap(500.7, 50, lot=100) == 500.0
    assert cap(-500.7, 50) == -500.0


def test_cap_max_quantity_binds():
    # min(500, 300) = 300
    assert cap(500, 50, max_quantity=300) == 300.0
    # notional 20,000 ÷ 50 = 400 units is looser than 300 → 300
    assert cap(500, 50, max_quantity=300, max_notional=20_000) == 300.0


def test_cap_max_notional_binds():
    # 10,000 ÷ 50 = 200 units < 500
    assert cap(500, 50, max_notional=10_000) == 200.0
    # both given, notional tighter: min(500, 300, 200) = 200
    assert cap(500, 50, max_quantity=300, max_notional=10_000) == 200.0
    # 12,345 ÷ 50 = 246.9 → 246 units; lot 100 → 200; lot 0.1 → 246.9
    assert cap(500, 50, max_notional=12_345) == 246.0
    assert cap(500, 50, max_notional=12_345, lot=100) == 200.0
    assert cap(500, 50, max_notional=12_345, lot=0.1) == 246.9


def test_cap_units_bind():
    # 150 is under both limits (300 units, 10,000 ÷ 50 = 200 units) → 150
    assert cap(150, 50, max_quantity=300, max_notional=10_000) == 150.0


def test_cap_keeps_the_sign_of_shorts():
    assert cap(-500, 50, max_quantity=300) == -300.0
    assert cap(-500, 50, max_notional=10_000) == -200.0
    assert cap(-500, 50, max_notional=12_345, lot=100) == -200.0  # −246.9 toward zero


def test_cap_zero_limit():
    assert cap(500, 50, max_quantity=0) == 0.0
    result = cap(-500, 50, max_notional=0)
    assert result == 0.0
    assert math.copysign(1.0, result) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"units": math.nan}, "units"),
        ({"price": 0.0}, "price"),
        ({"price": -50.0}, "price"),
        ({"max_quantity": -1.0}, "max_quantity"),
        ({"max_quantity": math.nan}, "max_quantity"),
        ({"max_notional": -1.0}, "max_notional"),
        ({"lot": 0.0}, "lot"),
    ],
)
def test_cap_validation(kwargs, field):
    args = {"units": 500, "price": 50} | kwargs
    with pytest.raises(ValueError, match=f"^{field}"):
        cap(**args)


# -- properties ------------------------------------------------------------------------------

equities = st.floats(min_value=1.0, max_value=1e9)
risks = st.floats(min_value=1e-4, max_value=1.0)
prices = st.floats(min_value=0.01, max_value=1e5)
decimal_lots = st.sampled_from(DECIMAL_LOTS)
any_lots = st.floats(min_value=1e-6, max_value=1e3)


def assert_lot_multiple(value: float, lot: float) -> None:
    count = value / lot
    assert abs(count - round(count)) <= 1e-6 * max(1.0, abs(count))


@given(equity=equities, risk=risks, entry=prices, stop=prices, lot=decimal_lots)
def test_property_fixed_fractional_risk_within_budget(equity, risk, entry, stop, lot):
    distance = abs(entry - stop)
    assume(distance > 0)
    units = fixed_fractional(equity, risk, entry, stop, lot=lot)
    budget = equity * risk
    assert units >= 0
    # The loss at the stop never exceeds the budget (1e-8 relative covers the documented
    # 1e-9 float-artefact snap and float rounding).
    assert units * distance <= budget * (1 + 1e-8)
    # …and the size is not needlessly small: one more lot would break the budget.
    assert (units + lot) * distance > budget * (1 - 1e-8)
    assert_lot_multiple(units, lot)


@given(equity=equities, risk=risks, atr_value=st.floats(1e-4, 1e4), multiple=st.floats(0.1, 10))
def test_property_atr_target_risk_within_budget(equity, risk, atr_value, multiple):
    units = atr_target(equity, risk, atr_value, multiple, lot=0.01)
    assert units * multiple * atr_value <= equity * risk * (1 + 1e-8)
    assert_lot_multiple(units, 0.01)


@given(
    quantity=st.floats(min_value=-1e6, max_value=1e6, allow_subnormal=False),
    lot=decimal_lots,
)
def test_property_round_to_lot_decimal_lots(quantity, lot):
    result = round_to_lot(quantity, lot)
    assert is_exact_multiple(result, lot)  # prints as a whole number of lots
    assert abs(result) <= abs(quantity) * (1 + 1e-9)  # toward zero (up to the snap)
    assert abs(quantity) - abs(result) < lot  # never drops a whole lot
    assert result == 0 or math.copysign(1.0, result) == math.copysign(1.0, quantity)
    assert round_to_lot(result, lot) == result  # idempotent


@given(quantity=st.floats(min_value=-1e9, max_value=1e9), lot=any_lots)
def test_property_round_to_lot_any_lot(quantity, lot):
    result = round_to_lot(quantity, lot)
    assert_lot_multiple(result, lot)
    assert abs(result) <= abs(quantity) * (1 + 1e-9) + 1e-12
    assert abs(quantity) - abs(result) < lot * (1 + 1e-9)


@given(
    units=st.floats(min_value=-1e7, max_value=1e7),
    price=prices,
    max_quantity=st.none() | st.floats(min_value=0, max_value=1e7),
    max_notional=st.none() | st.floats(min_value=0, max_value=1e9),
    lot=decimal_lots,
)
def test_property_cap_respects_every_limit(units, price, max_quantity, max_notional, lot):
    result = cap(units, price, max_quantity=max_quantity, max_notional=max_notional, lot=lot)
    assert abs(result) <= abs(units) * (1 + 1e-9)
    if max_quantity is not None:
        assert abs(result) <= max_quantity * (1 + 1e-9)
    if max_notional is not None:
        assert abs(result) * price <= max_notional * (1 + 1e-8)
    assert result == 0 or math.copysign(1.0, result) == math.copysign(1.0, units)
    assert_lot_multiple(result, lot)

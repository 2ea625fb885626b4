"""Account models: hand-computed buying power, refusals, margin calls and liquidation plans."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from tradeloom.execution.accounts import Account, CashAccount, MarginAccount, MarginCall

REG_T = MarginAccount()  # 50 % initial, 25 % maintenance, 2x


# --- cash account -------------------------------------------------------------------------------
def test_cash_buying_power_is_cash_not_reserved() -> None:
    cash = CashAccount()
    assert cash.buying_power(10_000.0, 10_000.0, 0.0, 0.0) == 10_000.0
    assert cash.buying_power(10_000.0, 10_000.0, 0.0, 2_500.0) == 7_500.0
    # equity and exposure do not matter: 4,000 in stock, 6,000 cash, 1,000 reserved
    assert cash.buying_power(10_000.0, 6_000.0, 4_000.0, 1_000.0) == 5_000.0
    # never negative (cash below zero after covering a short)
    assert cash.buying_power(5_000.0, -200.0, 5_200.0, 0.0) == 0.0
    # short sales are not limited by cash in a cash account (today's behaviour)
    assert cash.buying_power(10_000.0, 0.0, 0.0, 0.0, short=True) == float("inf")


def test_cash_refusal_matches_the_broker_message() -> None:
    cash = CashAccount()
    assert cash.refusal(7_500.0, True, 10_000.0, 10_000.0, 0.0, 2_500.0) == ""
    assert cash.refusal(7_500.0 + 5e-10, True, 10_000.0, 10_000.0, 0.0, 2_500.0) == ""
    assert (
        cash.refusal(7_500.01, True, 10_000.0, 10_000.0, 0.0, 2_500.0)
        == "insufficient cash: order needs 7,500.01, available 7,500.00"
    )
    assert (
        cash.refusal(1_000.0, True, 10_000.0, -250.0, 10_250.0, 0.0)
        == "insufficient cash: order needs 1,000.00, available -250.00"
    )


def test_cash_never_refuses_covering_or_short_sales() -> None:
    cash = CashAccount()
    assert cash.refusal(1e9, False, 10.0, -500.0, 1e6, 1e6) == ""  # covers a short
    assert cash.refusal(1e9, True, 10.0, 0.0, 0.0, 0.0, short=True) == ""  # opens a short


def test_cash_account_has_no_margin_calls() -> None:
    cash = CashAccount()
    assert cash.margin_call(-1_000.0, 50_000.0, 20_000.0) is None
    assert cash.liquidation_plan({"A": (100.0, 10.0)}, -1_000.0) == {}
    assert cash.describe() == (
        "Cash account: buys are paid in full from cash not reserved by working buys; "
        "short sales are not margined (their proceeds are credited to cash)."
    )


# --- margin account: buying power and refusals ----------------------------------------------------
def test_margin_buying_power_without_positions() -> None:
    # equity 100,000: 50 % initial margin -> 200,000; cap 2x -> 200,000
    assert REG_T.buying_power(100_000.0, 100_000.0, 0.0, 0.0) == 200_000.0
    # a 4x cap does not lift the initial margin limit
    assert MarginAccount(max_leverage=4.0).buying_power(100_000.0, 100_000.0, 0.0, 0.0) == 200_000.0
    # a 1.5x cap binds before the 50 % initial margin
    assert MarginAccount(max_leverage=1.5).buying_power(100_000.0, 100_000.0, 0.0, 0.0) == 150_000.0


def test_margin_buying_power_counts_positions_and_reservations() -> None:
    # longs 120,000, working buys 30,000: margin in use 0.5 × 150,000 = 75,000, excess 25,000
    # -> 25,000 / 0.5 = 50,000; cap: 2 × 100,000 − 120,000 − 30,000 = 50,000
    assert REG_T.buying_power(100_000.0, -20_000.0, 120_000.0, 30_000.0) == 50_000.0
    assert REG_T.initial_margin_in_use(120_000.0, 30_000.0) == 75_000.0
    # without the reservation: (100,000 − 60,000) / 0.5 = 80,000
    assert REG_T.buying_power(100_000.0, -20_000.0, 120_000.0, 0.0) == 80_000.0
    # cash does not enter: only equity
    assert REG_T.buying_power(100_000.0, 999.0, 120_000.0, 0.0) == 80_000.0
    # fully used and beyond: zero, never negative
    assert REG_T.buying_power(100_000.0, 0.0, 200_000.0, 0.0) == 0.0
    assert REG_T.buying_power(50_000.0, 0.0, 200_000.0, 0.0) == 0.0
    assert REG_T.buying_power(-5_000.0, -55_000.0, 50_000.0, 0.0) == 0.0


def test_refusal_at_the_initial_margin() -> None:
    args = (100_000.0, -20_000.0, 120_000.0, 30_000.0)  # buying power 50,000 (see above)
    assert REG_T.refusal(50_000.0, True, *args) == ""
    assert REG_T.refusal(50_000.0 + 5e-10, True, *args) == ""
    # both limits leave 50,000: the tie is reported as the initial margin
    assert REG_T.refusal(60_000.0, True, *args) == (
        "insufficient margin: a long order of 60,000.00 needs 30,000.00 initial margin (50 %), "
        "excess equity 25,000.00 (equity 100,000.00 − initial margin in use 75,000.00); "
        "buying power 50,000.00"
    )
    # a 4x cap leaves 250,000 of room: the initial margin alone refuses
    loose = MarginAccount(max_leverage=4.0)
    assert loose.refusal(50_000.0, True, *args) == ""
    assert loose.refusal(50_000.01, True, *args).startswith(
        "insufficient margin: a long order of 50,000.01 needs 25,000.01 initial margin (50 %)"
    )


def test_refusal_at_the_leverage_cap() -> None:
    # 25 % initial (day-trading style) but capped at 2x
    account = MarginAccount(initial_margin=0.25, maintenance_margin=0.2, max_leverage=2.0)
    args = (100_000.0, -20_000.0, 120_000.0, 30_000.0)
    # margin: (100,000 − 0.25 × 150,000) / 0.25 = 250,000; cap: 200,000 − 150,000 = 50,000
    assert account.buying_power(*args) == 50_000.0
    assert account.refusal(50_000.0, True, *args) == ""
    assert account.refusal(60_000.0, True, *args) == (
        "leverage cap 2x: an order of 60,000.00 would take gross exposure (with working orders) "
        "to 210,000.00 (2.10x equity, equity 100,000.00); buying power 50,000.00"
    )


def test_refusal_with_no_equity_left() -> None:
    account = MarginAccount(initial_margin=0.25, maintenance_margin=0.2, max_leverage=2.0)
    # equity −5,000: margin room (−5,000 − 12,500) / 0.25 = −70,000 is smaller than the cap's
    # −10,000 − 50,000 = −60,000
    assert account.refusal(1.0, True, -5_000.0, -55_000.0, 50_000.0, 0.0) == (
        "insufficient margin: a long order of 1.00 needs 0.25 initial margin (25 %), excess "
        "equity -17,500.00 (equity -5,000.00 − initial margin in use 12,500.00); "
        "buying power 0.00"
    )
    capped = MarginAccount(initial_margin=0.25, maintenance_margin=0.2, max_leverage=10.0)
    # cap room: −50,000 − 50,000 = −100,000 < margin room −70,000
    assert capped.refusal(1.0, True, -5_000.0, -55_000.0, 50_000.0, 0.0) == (
        "leverage cap 10x: an order of 1.00 would take gross exposure (with working orders) to "
        "50,001.00 (equity is not positive, equity -5,000.00); buying power 0.00"
    )


def test_risk_reducing_orders_are_never_refused() -> None:
    for account in (REG_T, MarginAccount(initial_margin=1.0, max_leverage=0.5)):
        assert account.refusal(1e12, False, -1e6, -2e6, 1e6, 1e6) == ""
        assert account.refusal(1e12, False, -1e6, -2e6, 1e6, 1e6, short=True) == ""


def test_short_margins_differ_from_long() -> None:
    account = MarginAccount(
        initial_margin=0.5,
        maintenance_margin=0.25,
        short_initial_margin=1.0,
        short_maintenance_margin=0.3,
        max_leverage=3.0,
    )
    # gross 60,000 = longs 40,000 + shorts 20,000: in use 0.5 × 40,000 + 1.0 × 20,000 = 40,000
    kw = {"short_exposure": 20_000.0}
    assert account.initial_margin_in_use(60_000.0, 0.0, **kw) == 40_000.0
    assert account.buying_power(100_000.0, 80_000.0, 60_000.0, 0.0, **kw) == 120_000.0
    assert account.buying_power(100_000.0, 80_000.0, 60_000.0, 0.0, short=True, **kw) == 60_000.0
    # a working short sale of 10,000: in use 0.5 × 40,000 + 1.0 × 30,000 = 50,000
    kw["reserved_short"] = 10_000.0
    assert account.buying_power(100_000.0, 80_000.0, 60_000.0, 10_000.0, **kw) == 100_000.0
    assert account.buying_power(100_000.0, 80_000.0, 60_000.0, 10_000.0, short=True, **kw) == (
        50_000.0
    )
    assert account.refusal(
        60_000.0, True, 100_000.0, 80_000.0, 60_000.0, 10_000.0, short=True, **kw
    ) == (
        "insufficient margin: a short order of 60,000.00 needs 60,000.00 initial margin (100 %), "
        "excess equity 50,000.00 (equity 100,000.00 − initial margin in use 50,000.00); "
        "buying power 50,000.00"
    )
    assert account.describe() == (
        "Margin account: 50 % initial, 25 % maintenance (shorts 100 % initial, 30 % "
        "maintenance), leverage cap 3x; a margin call liquidates every position at the next "
        "bar's open."
    )


# --- margin calls ---------------------------------------------------------------------------------
def test_margin_call_boundary_on_a_long() -> None:
    # 10,000 of equity buys 200 shares at 100 (cash −10,000). At price p: equity 200p − 10,000,
    # requirement 0.25 × 200p = 50p; the call comes below p = 66.666...
    assert REG_T.margin_call(200 * 66.67 - 10_000.0, 200 * 66.67, 0.0) is None
    call = REG_T.margin_call(200 * 66.66 - 10_000.0, 200 * 66.66, 0.0)
    assert isinstance(call, MarginCall)
    assert call.requirement == pytest.approx(3_333.0)
    assert call.equity == pytest.approx(3_332.0)
    assert call.deficit == pytest.approx(1.0)
    assert call.reason == (
        "margin call: equity 3,332.00 is below the maintenance requirement 3,333.00 "
        "(25 % of long positions 13,332.00) by 1.00; every position is closed at the next "
        "bar's open"
    )
    # exactly at the requirement (40,000 of stock, 10,000 of equity): no call
    assert REG_T.maintenance_requirement(40_000.0, 0.0) == 10_000.0
    assert REG_T.margin_call(10_000.0, 40_000.0, 0.0) is None
    assert REG_T.margin_call(10_000.01, 40_000.0, 0.0) is None
    assert REG_T.margin_call(10_000.0 - 5e-10, 40_000.0, 0.0) is None  # within 1e-9
    call = REG_T.margin_call(9_999.99, 40_000.0, 0.0)
    assert call is not None and call.deficit == pytest.approx(0.01)


def test_margin_call_boundary_on_a_short() -> None:
    # short 100 at 50 with 10,000 of equity: cash 15,000. At price p: equity 15,000 − 100p,
    # requirement 0.25 × 100p = 25p; equal at p = 120.
    assert REG_T.margin_call(15_000.0 - 100 * 120.0, 0.0, 100 * 120.0) is None
    call = REG_T.margin_call(15_000.0 - 100 * 120.01, 0.0, 100 * 120.01)
    assert call is not None
    assert call.requirement == pytest.approx(3_000.25)
    assert call.equity == pytest.approx(2_999.0)
    assert call.deficit == pytest.approx(1.25)
    assert call.reason == (
        "margin call: equity 2,999.00 is below the maintenance requirement 3,000.25 "
        "(25 % of long positions 0.00 + 25 % of short positions 12,001.00) by 1.25; every "
        "position is closed at the next bar's open"
    )
    # 30 % short maintenance: requirement 0.25 × 60,000 + 0.3 × 20,000 = 21,000
    account = MarginAccount(short_maintenance_margin=0.3)
    assert account.maintenance_requirement(60_000.0, 20_000.0) == 21_000.0
    assert account.margin_call(21_000.0, 60_000.0, 20_000.0) is None
    assert account.margin_call(20_999.0, 60_000.0, 20_000.0).deficit == pytest.approx(1.0)  # type: ignore[union-attr]


def test_no_call_without_positions_and_values_must_be_positive() -> None:
    assert REG_T.margin_call(-100.0, 0.0, 0.0) is None  # nothing to liquidate
    with pytest.raises(ValueError, match="short_value"):
        REG_T.margin_call(1_000.0, 0.0, -500.0)


def test_liquidation_plan_closes_everything_on_a_call() -> None:
    # long 200 A at 66.66 bought on credit, short 10 B at 50: cash −10,000 + 500 = −9,500
    positions = {"A": (200.0, 66.66), "B": (-10.0, 50.0), "C": (0.0, 10.0)}
    equity = -9_500.0 + 200 * 66.66 - 10 * 50.0  # 3,332
    # requirement 0.25 × 13,332 + 0.25 × 500 = 3,458 > 3,332
    assert REG_T.liquidation_plan(positions, equity) == {"A": 200.0, "B": -10.0}
    # above the requirement: nothing to close
    assert REG_T.liquidation_plan(positions, 3_458.0) == {}
    assert REG_T.liquidation_plan({}, -1.0) == {}


# --- parameters -------------------------------------------------------------------------------
def test_params_validate_and_discriminate() -> None:
    adapter: TypeAdapter[CashAccount | MarginAccount] = TypeAdapter(Account)
    assert adapter.validate_python({"type": "cash"}) == CashAccount()
    margin = adapter.validate_python({"type": "margin", "initial_margin": 0.4})
    assert isinstance(margin, MarginAccount)
    assert (margin.initial_margin, margin.short_initial, margin.short_maintenance) == (
        0.4,
        0.4,
        0.25,
    )
    with pytest.raises(ValidationError):
        adapter.validate_python({"type": "portfolio"})
    with pytest.raises(ValidationError, match="extra"):
        adapter.validate_python({"type": "margin", "initial": 0.4})
    with pytest.raises(ValidationError, match=r"long maintenance margin 0\.6 exceeds"):
        MarginAccount(maintenance_margin=0.6)
    with pytest.raises(ValidationError, match=r"short maintenance margin 0\.3 exceeds"):
        MarginAccount(short_initial_margin=0.2, short_maintenance_margin=0.3)
    with pytest.raises(ValidationError):
        MarginAccount(initial_margin=0.0)
    with pytest.raises(ValidationError):
        REG_T.initial_margin = 0.3  # type: ignore[misc]  # frozen
    for name, field in MarginAccount.model_fields.items():
        assert field.description, name


def test_describe_reg_t() -> None:
    assert REG_T.describe() == (
        "Margin account: 50 % initial, 25 % maintenance, leverage cap 2x; a margin call "
        "liquidates every position at the next bar's open."
    )


# --- properties -----------------------------------------------------------------------------
@st.composite
def margin_accounts(draw: st.DrawFn) -> MarginAccount:
    initial = draw(st.floats(0.05, 1.0))
    maintenance = draw(st.floats(0.0, initial))
    short_initial = draw(st.none() | st.floats(maintenance, 1.0).filter(lambda x: x > 0))
    return MarginAccount(
        initial_margin=initial,
        maintenance_margin=maintenance,
        max_leverage=draw(st.floats(0.25, 10.0)),
        short_initial_margin=short_initial,
    )


money = st.floats(0.0, 1e7)


@st.composite
def states(draw: st.DrawFn) -> dict[str, float | bool]:
    gross = draw(money)
    reserved = draw(money)
    return {
        "equity": draw(st.floats(-1e6, 1e7)),
        "gross_exposure": gross,
        "reserved": reserved,
        "short_exposure": draw(st.floats(0.0, 1.0)) * gross,
        "reserved_short": draw(st.floats(0.0, 1.0)) * reserved,
        "short": draw(st.booleans()),
    }


def _call(method, state, *lead):  # type: ignore[no-untyped-def]
    return method(
        *lead,
        state["equity"],
        0.0,
        state["gross_exposure"],
        state["reserved"],
        short=state["short"],
        short_exposure=state["short_exposure"],
        reserved_short=state["reserved_short"],
    )


@settings(max_examples=400)
@given(margin_accounts(), states(), st.floats(0.01, 2e7))
def test_margin_rules_are_consistent(account: MarginAccount, state, notional: float) -> None:  # type: ignore[no-untyped-def]
    power = _call(account.buying_power, state)
    assert power >= 0.0
    why = _call(account.refusal, state, notional, True)
    # allowed exactly when within the buying power
    assert (why == "") == (notional <= power + 1e-9)
    assert _call(account.refusal, state, power, True) == ""
    assert _call(account.refusal, state, notional, False) == ""
    if why == "":
        equity = state["equity"]
        after = state["gross_exposure"] + state["reserved"] + notional
        tolerance = 1e-9 * max(1.0, abs(equity), after)
        assert after <= account.max_leverage * equity + tolerance  # never above the cap
        used = account.initial_margin_in_use(
            state["gross_exposure"] + notional,
            state["reserved"],
            short_exposure=state["short_exposure"] + (notional if state["short"] else 0.0),
            reserved_short=state["reserved_short"],
        )
        assert used <= equity + tolerance  # never above the initial margin
    else:
        assert why.startswith(("insufficient margin:", "leverage cap"))


@settings(max_examples=300)
@given(
    margin_accounts(),
    st.floats(-1e6, 1e7),
    st.dictionaries(
        st.sampled_from(["A", "B", "C", "D"]),
        st.tuples(st.floats(-1e4, 1e4), st.floats(0.01, 1e4)),
    ),
)
def test_calls_and_plans_agree(account: MarginAccount, equity: float, positions) -> None:  # type: ignore[no-untyped-def]
    long_value = sum(q * p for q, p in positions.values() if q > 0)
    short_value = sum(-q * p for q, p in positions.values() if q < 0)
    assume(long_value or short_value)
    call = account.margin_call(equity, long_value, short_value)
    requirement = account.maintenance_requirement(long_value, short_value)
    assert (call is not None) == (equity < requirement - 1e-9)
    plan = account.liquidation_plan(positions, equity)
    if call is None:
        assert plan == {}
    else:
        assert call.deficit > 0
        assert call.requirement - call.deficit == pytest.approx(equity, abs=1e-6)
        assert plan == {s: q for s, (q, _) in positions.items() if q}


@settings(max_examples=200)
@given(money, st.floats(-1e6, 1e7), money, st.floats(0.01, 1e7))
def test_cash_rules_are_consistent(
    cash: float, reserved_or_equity: float, reserved: float, notional: float
) -> None:
    account = CashAccount()
    power = account.buying_power(reserved_or_equity, cash, 0.0, reserved)
    assert power == max(0.0, cash - reserved)
    allowed = account.refusal(notional, True, reserved_or_equity, cash, 0.0, reserved) == ""
    assert allowed == (notional <= cash - reserved + 1e-9)

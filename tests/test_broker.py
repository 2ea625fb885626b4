"""Hand-computed fills of the simulated broker: every order type, costs, gaps, rejects."""

from __future__ import annotations

import pytest

from tradeloom.execution import PercentFees, PerUnitFees, SimulatedBroker
from tradeloom.model import OrderStatus
from tradeloom.risk.rules import MaxOrderQuantity

from helpers import GAP_ROWS, Scripted, bars, run

ROWS = GAP_ROWS


def fills_of(strategy: Scripted) -> list[tuple[str, float, float]]:
    return [(f.side.value, f.quantity, f.price) for f in strategy.fills]


def final(strategy: Scripted, broker: SimulatedBroker, index: int = 0):
    return broker.orders[strategy.placed[index].client_order_id]


def test_market_order_fills_at_next_open_and_books_cash() -> None:
    s = Scripted({0: lambda c: c.buy("X", 10)})
    out, broker = run(bars(ROWS), s)
    assert fills_of(s) == [("buy", 10, 102.0)]
    assert broker.ledger.cash == pytest.approx(10_000 - 1_020)
    # marked at each close: b0 flat, b1 10 × 103
    assert out.equity[0] == 10_000
    assert out.equity[1] == pytest.approx(8_980 + 1_030)
    assert out.equity[4] == pytest.approx(8_980 + 960)
    assert [u.status for u in s.updates] == [OrderStatus.ACCEPTED, OrderStatus.FILLED]


def test_order_is_pending_when_placed() -> None:
    s = Scripted({0: lambda c: c.buy("X", 1)})
    run(bars(ROWS), s)
    assert s.placed[0].status is OrderStatus.PENDING
    assert s.updates[0].previous is OrderStatus.PENDING


def test_same_bar_close_fill_is_explicit_opt_in() -> None:
    s = Scripted({0: lambda c: c.buy("X", 10)})
    _, broker = run(bars(ROWS), s, broker=SimulatedBroker(fill_at="close"))
    assert fills_of(s) == [("buy", 10, 100.0)]
    assert any("OPTIMISTIC" in line for line in broker.conventions())


def test_limit_buy_fills_at_limit_inside_the_bar() -> None:
    s = Scripted({0: lambda c: c.buy("X", 10, limit=101.5)})
    run(bars(ROWS), s)
    assert fills_of(s) == [("buy", 10, 101.5)]


def test_limit_buy_fills_at_better_open() -> None:
    s = Scripted({0: lambda c: c.buy("X", 10, limit=103.0)})
    run(bars(ROWS), s)
    assert fills_of(s) == [("buy", 10, 102.0)]


def test_limit_buy_never_touched_stays_working_then_is_canceled_at_end() -> None:
    s = Scripted({0: lambda c: c.buy("X", 10, limit=80.0)})
    _, broker = run(bars(ROWS), s)
    assert fills_of(s) == []
    order = final(s, broker)
    assert order.status is OrderStatus.CANCELED
    assert "backtest ended" in order.reason


def test_limit_sell_fills_at_limit() -> None:
    s = Scripted({1: lambda c: c.sell("X", 10, limit=105.0)})
    run(bars(ROWS), s)
    assert fills_of(s) == [("sell", 10, 105.0)]


def test_stop_buy_fills_at_stop_with_slippage() -> None:
    s = Scripted({0: lambda c: c.buy("X", 10, stop=103.5)})
    run(bars(ROWS), s, broker=SimulatedBroker(slippage_bps=10))
    assert fills_of(s) == [("buy", 10, pytest.approx(103.5 * 1.001))]


def test_slippage_never_takes_a_fill_beyond_the_bar() -> None:
    # b1's high is 104: a stop at 104 fills there, not at 104 × 1.001 (a price never traded).
    s = Scripted({0: lambda c: c.buy("X", 10, stop=104.0)})
    run(bars(ROWS), s, broker=SimulatedBroker(slippage_bps=10))
    assert fills_of(s) == [("buy", 10, 104.0)]
    # b4 opens at 95, its low is 90: a market sell with 10 % slippage fills at 90, not 85.5.
    s = Scripted({3: lambda c: c.sell("X", 10)})
    run(bars(ROWS), s, broker=SimulatedBroker(slippage_bps=1000))
    assert fills_of(s) == [("sell", 10, 90.0)]


def test_stop_buy_gapped_through_fills_at_open() -> None:
    s = Scripted({2: lambda c: c.buy("X", 10, stop=108.0)})
    run(bars(ROWS), s)
    assert fills_of(s) == [("buy", 10, 110.0)]


def test_gap_through_a_stop_loss_fills_at_the_open_not_the_stop() -> None:
    s = Scripted({0: lambda c: c.buy("X", 10), 1: lambda c: c.sell("X", 10, stop=98.0)})
    _, broker = run(bars(ROWS), s)
    # b2 low 100 and b3 low 108 never reach 98; b4 opens at 95, below the stop.
    assert fills_of(s) == [("buy", 10, 102.0), ("sell", 10, 95.0)]
    (trade,) = broker.ledger.trades
    assert trade.pnl == pytest.approx((95.0 - 102.0) * 10)


def test_stop_limit_triggered_inside_bar_fills_at_trigger() -> None:
    s = Scripted({0: lambda c: c.buy("X", 10, stop=104.0, limit=104.5)})
    run(bars(ROWS), s)
    assert fills_of(s) == [("buy", 10, 104.0)]


def test_stop_limit_gapped_beyond_limit_waits_then_works_as_limit() -> None:
    s = Scripted({2: lambda c: c.buy("X", 10, stop=108.0, limit=109.0)})
    run(bars(ROWS), s)
    # b3 opens 110: triggered but above the 109 limit, no fill on b3; b4 opens 95 <= 109.
    assert fills_of(s) == [("buy", 10, 95.0)]
    assert s.fills[0].ts == bars(ROWS).index[4].value


def test_percent_fee_and_minimum() -> None:
    s = Scripted({0: lambda c: c.buy("X", 10)})
    _, broker = run(bars(ROWS), s, broker=SimulatedBroker(fees=PercentFees(rate=0.001)))
    assert s.fills[0].fee == pytest.approx(1.02)
    assert broker.ledger.cash == pytest.approx(10_000 - 1_020 - 1.02)

    s = Scripted({0: lambda c: c.buy("X", 10)})
    run(bars(ROWS), s, broker=SimulatedBroker(fees=PercentFees(rate=0.001, minimum=5)))
    assert s.fills[0].fee == 5.0


def test_per_unit_fee_with_minimum_and_cap() -> None:
    model = PerUnitFees(per_unit=0.01, minimum=1.0)
    assert model.fee(10, 102.0) == 1.0
    assert model.fee(1_000, 5.0) == pytest.approx(10.0)
    capped = PerUnitFees(per_unit=0.01, minimum=1.0, maximum_pct=0.001)
    assert capped.fee(1_000, 5.0) == pytest.approx(5.0)  # 0.1 % of 5,000

    s = Scripted({0: lambda c: c.buy("X", 50)})
    run(bars(ROWS), s, broker=SimulatedBroker(fees=model))
    assert s.fills[0].fee == 1.0  # 50 × 0.01 = 0.5, minimum 1


def test_slippage_moves_market_fills_against_the_trader() -> None:
    s = Scripted({0: lambda c: c.buy("X", 10), 2: lambda c: c.sell("X", 10)})
    run(bars(ROWS), s, broker=SimulatedBroker(slippage_bps=20))
    assert fills_of(s) == [
        ("buy", 10, pytest.approx(102.0 * 1.002)),
        ("sell", 10, pytest.approx(110.0 * 0.998)),
    ]


def test_limit_fills_take_no_slippage() -> None:
    s = Scripted({0: lambda c: c.buy("X", 10, limit=101.5)})
    run(bars(ROWS), s, broker=SimulatedBroker(slippage_bps=50))
    assert fills_of(s) == [("buy", 10, 101.5)]


def test_short_round_trip() -> None:
    s = Scripted({0: lambda c: c.sell("X", 10), 2: lambda c: c.buy("X", 10)})
    out, broker = run(bars(ROWS), s, broker=SimulatedBroker(fees=PercentFees(rate=0.001)))
    assert fills_of(s) == [("sell", 10, 102.0), ("buy", 10, 110.0)]
    (trade,) = broker.ledger.trades
    assert trade.side == "short"
    assert trade.entry_price == 102.0 and trade.exit_price == 110.0
    assert trade.fees == pytest.approx(1.02 + 1.10)
    assert trade.pnl == pytest.approx(-80.0 - 2.12)
    assert broker.ledger.cash == pytest.approx(10_000 + 1_020 - 1.02 - 1_100 - 1.10)
    # while short at the b2 close (105): equity = cash + (-10 × 105)
    assert out.equity[2] == pytest.approx(10_000 + 1_020 - 1.02 - 1_050)


def test_order_the_account_cannot_pay_for_is_rejected_with_reason() -> None:
    s = Scripted({0: lambda c: c.buy("X", 1_000)})
    _, broker = run(bars(ROWS), s)
    order = final(s, broker)
    assert order.status is OrderStatus.REJECTED
    assert "insufficient cash" in order.reason and "100,000.00" in order.reason
    assert fills_of(s) == [] and broker.ledger.cash == 10_000


def test_working_buys_reserve_cash() -> None:
    s = Scripted({0: lambda c: [c.buy("X", 60, limit=99.0), c.buy("X", 60, limit=99.0)]})
    _, broker = run(bars(ROWS), s)
    first, second = (broker.orders[f"s-{i}"] for i in (1, 2))
    assert first.status is not OrderStatus.REJECTED
    assert second.status is OrderStatus.REJECTED and "available" in second.reason


def test_gap_that_makes_a_buy_unaffordable_cancels_it_at_fill() -> None:
    s = Scripted({2: lambda c: c.buy("X", 9.5)})
    _, broker = run(bars(ROWS), s, cash=1_000.0)
    order = final(s, broker)
    assert order.status is OrderStatus.CANCELED
    assert "insufficient cash at fill" in order.reason
    assert broker.ledger.cash == 1_000.0


def test_short_selling_can_be_disabled() -> None:
    s = Scripted({0: lambda c: c.sell("X", 10)})
    _, broker = run(bars(ROWS), s, broker=SimulatedBroker(allow_short=False))
    order = final(s, broker)
    assert order.status is OrderStatus.REJECTED and "short selling is disabled" in order.reason


def test_risk_rule_rejects_before_the_broker_sees_the_order() -> None:
    rule = MaxOrderQuantity(max_quantity=5)
    rule.name = "max-order-quantity"
    s = Scripted({0: lambda c: c.buy("X", 10), 1: lambda c: c.buy("X", 5)})
    out, broker = run(bars(ROWS), s, risk=[rule])
    rejected = next(o for o in out.orders if o.client_order_id == "s-1")
    assert rejected.status is OrderStatus.REJECTED
    assert (
        rejected.reason
        == "risk rule max-order-quantity: order quantity over the limit (limit 5, observed 10)"
    )
    assert "s-1" not in broker.orders  # never reached the broker
    assert s.updates[0].status is OrderStatus.REJECTED  # the strategy was told
    assert fills_of(s) == [("buy", 5, 103.0)]


def test_day_order_expires_after_its_first_trading_day() -> None:
    s = Scripted({0: lambda c: c.buy("X", 10, limit=50.0, tif="day")})
    _, broker = run(bars(ROWS), s)
    order = final(s, broker)
    assert order.status is OrderStatus.EXPIRED
    assert order.updated_ts == bars(ROWS).index[2].value  # after b1, its only day


def test_cancel_removes_a_working_order() -> None:
    s = Scripted({0: lambda c: c.buy("X", 10, limit=90.0)})
    s.script[1] = lambda c: c.cancel(c.open_orders("X")[0])
    _, broker = run(bars(ROWS), s)
    order = broker.orders["s-1"]
    assert order.status is OrderStatus.CANCELED and order.reason == "canceled by strategy"
    assert fills_of(s) == []


def test_order_target_counts_working_orders() -> None:
    s = Scripted({0: lambda c: c.order_target("X", 10), 1: lambda c: c.order_target("X", 10)})
    run(bars(ROWS), s)
    # b1's call sees the position of 10 (filled at b1's open) and orders nothing more
    assert fills_of(s) == [("buy", 10, 102.0)]
    assert len(s.placed) == 1


def test_covering_a_short_is_never_refused_for_cash() -> None:
    # short 10 at 102 (b1 open), then the price gaps up; cash 500 + proceeds 1,020 < cover 1,100
    s = Scripted({0: lambda c: c.sell("X", 10), 2: lambda c: c.buy("X", 10)})
    _, broker = run(bars(ROWS), s, cash=50.0)
    assert fills_of(s) == [("sell", 10, 102.0), ("buy", 10, 110.0)]
    assert broker.ledger.cash == pytest.approx(50 + 1_020 - 1_100)
    assert broker.ledger.quantity("X") == 0


def test_a_buy_that_covers_and_goes_long_is_checked_for_the_long_part() -> None:
    s = Scripted({0: lambda c: c.sell("X", 10), 1: lambda c: c.buy("X", 1_000)})
    _, broker = run(bars(ROWS), s, cash=50.0)
    assert broker.orders["s-2"].status is OrderStatus.REJECTED


def test_buying_power_excludes_cash_reserved_by_working_buys() -> None:
    seen: list[float] = []
    s = Scripted(
        {
            0: lambda c: c.buy("X", 10, limit=90.0),  # reserves 900, never fills
            1: lambda c: seen.append(c.buying_power),
        }
    )
    run(bars(ROWS), s)
    assert seen == [pytest.approx(10_000 - 900)]

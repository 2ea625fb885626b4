"""A margin account in the simulated broker: initial margin and the leverage cap at submission,
the maintenance requirement at every close, and the forced liquidation a margin call brings.

10,000 of cash; 50 % initial, 25 % maintenance, leverage cap 2: buying power 20,000.
"""

from __future__ import annotations

import pytest

from tradeloom.execution import SimulatedBroker
from tradeloom.model import OrderStatus

from helpers import Scripted, bars, run

#            open   high   low    close
CRASH = [
    (100.0, 101.0, 99.0, 100.0),  # b0
    (102.0, 104.0, 101.0, 103.0),  # b1
    (70.0, 71.0, 59.0, 60.0),  # b2 crashes: the close of 60 triggers a margin call
    (58.0, 62.0, 57.0, 61.0),  # b3 the positions are closed at its open
    (61.0, 63.0, 60.0, 62.0),  # b4
]
FRAME = bars(CRASH)


def margin(**account) -> SimulatedBroker:  # type: ignore[no-untyped-def]
    return SimulatedBroker(account={"type": "margin", **account})


def status(broker: SimulatedBroker, s: Scripted, i: int = 0) -> tuple[OrderStatus, str]:
    order = broker.orders[s.placed[i].client_order_id]
    return order.status, order.reason


def test_a_margin_account_buys_twice_its_cash() -> None:
    # 190 × 100 (b0's close) = 19,000 fits the 20,000 of buying power; a cash account refuses.
    s = Scripted({0: lambda c: c.buy("X", 190)})
    _, broker = run(FRAME[:2], s, broker=margin())
    assert status(broker, s)[0] is OrderStatus.FILLED
    assert broker.ledger.cash == pytest.approx(10_000 - 190 * 102)  # -9,380: borrowed
    s = Scripted({0: lambda c: c.buy("X", 190)})
    _, cash = run(FRAME[:2], s)
    assert status(cash, s)[0] is OrderStatus.REJECTED


def test_initial_margin_and_leverage_cap_refusals_name_the_limit() -> None:
    s = Scripted({0: lambda c: c.buy("X", 210)})  # 21,000 > 20,000
    _, broker = run(FRAME[:2], s, broker=margin())
    assert status(broker, s) == (
        OrderStatus.REJECTED,
        "insufficient margin: a long order of 21,000.00 needs 10,500.00 initial margin (50 %), "
        "excess equity 10,000.00 (equity 10,000.00 − initial margin in use 0.00); buying power "
        "20,000.00",
    )
    s = Scripted({0: lambda c: c.sell("X", 160)})  # short 16,000 > the 1.5x cap of 15,000
    _, broker = run(FRAME[:2], s, broker=margin(max_leverage=1.5))
    assert status(broker, s) == (
        OrderStatus.REJECTED,
        "leverage cap 1.5x: an order of 16,000.00 would take gross exposure (with working orders) "
        "to 16,000.00 (1.60x equity, equity 10,000.00); buying power 15,000.00",
    )


def test_working_orders_count_against_buying_power() -> None:
    # Two limit buys of 100 at 100: the first reserves 10,000, the second fits (20,000 in all),
    # a third does not.
    # (b2 opens at 70, below the limit: the two working ones fill there.)
    s = Scripted({0: lambda c: [c.buy("X", 100, limit=100.0) for _ in range(3)]})
    _, broker = run(FRAME, s, broker=margin())
    orders = [broker.orders[f"s-{i}"] for i in (1, 2, 3)]
    assert [o.status for o in orders] == [
        OrderStatus.FILLED,
        OrderStatus.FILLED,
        OrderStatus.REJECTED,
    ]
    assert orders[2].reason.startswith("insufficient margin: a long order of 10,000.00")


def test_a_margin_call_closes_every_position_at_the_next_open() -> None:
    # Long 190 at 102, cash -9,380. At b2's close of 60: equity -9,380 + 11,400 = 2,020, below
    # the maintenance requirement 25 % × 11,400 = 2,850 (by 830): the call cancels the open
    # orders and sells the 190 at b3's open, 58: cash -9,380 + 11,020 = 1,640.
    s = Scripted({0: lambda c: c.buy("X", 190), 1: lambda c: c.buy("X", 1, limit=50.0)})
    out, broker = run(FRAME, s, broker=margin())
    ((ts, call),) = broker.margin_calls
    assert ts == int(FRAME.index.as_unit("ns").asi8[2])
    assert (call.equity, call.requirement, call.deficit) == pytest.approx((2_020, 2_850, 830))
    assert call.reason == (
        "margin call: equity 2,020.00 is below the maintenance requirement 2,850.00 (25 % of "
        "long positions 11,400.00) by 830.00; every position is closed at the next bar's open"
    )
    liquidation = broker.orders["margin-call-1-X"]
    assert (liquidation.status, liquidation.quantity, liquidation.avg_fill_price) == (
        OrderStatus.FILLED, 190, 58.0,
    )  # fmt: skip
    assert liquidation.strategy_id == "margin-call"
    assert status(broker, s, 1) == (OrderStatus.CANCELED, call.reason)
    assert broker.ledger.quantity("X") == 0
    assert out.cash[3] == pytest.approx(1_640)
    assert out.equity[4] == pytest.approx(1_640)


def test_no_margin_call_above_the_requirement() -> None:
    # Long 100 only: at 60, equity -200 + 6,000 = 5,800 against a requirement of 1,500.
    s = Scripted({0: lambda c: c.buy("X", 100)})
    _, broker = run(FRAME, s, broker=margin())
    assert broker.margin_calls == []
    assert broker.ledger.quantity("X") == 100


def test_reducing_a_position_is_never_refused_and_the_account_is_reported() -> None:
    s = Scripted({0: lambda c: c.buy("X", 190), 2: lambda c: c.sell("X", 190)})
    _, broker = run(FRAME, s, broker=margin(maintenance_margin=0.1))
    assert status(broker, s, 1)[0] is OrderStatus.FILLED  # equity 2,020, 190 sold at b3
    assert broker.margin_calls == []
    assert any(
        line.startswith("Margin account: 50 % initial, 10 % maintenance")
        for line in broker.conventions()
    )


def test_a_deployment_with_a_margin_account_reports_its_calls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from tradeloom.api import run_backtest
    from tradeloom.data import MarketData
    from tradeloom.report.outputs import write_outputs

    s = Scripted({0: lambda c: c.buy("X", 190)})
    result = run_backtest(
        MarketData({"X": FRAME}), [("s", s)], broker=margin(), initial_cash=10_000
    )
    ((call,),) = [result.margin_calls]
    assert call["time"] == "2024-01-03T00:00:00+00:00" and call["deficit"] == pytest.approx(830)
    assert "margin-call-1-X" in set(result.orders["client_order_id"])
    paths = write_outputs(result, tmp_path)
    data = json.loads(paths["metrics.json"].read_text())
    assert data["margin_calls"][0]["reason"].startswith("margin call: equity 2,020.00")
    assert any(a.startswith("Margin account: 50 % initial") for a in data["assumptions"])

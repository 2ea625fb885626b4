"""Hand-computed fills of the order types beyond market/limit/stop: trailing stops, IOC and
FOK, replace, one-cancels-other and brackets, including gaps and same-bar ambiguity.

The bars (GAP_ROWS, daily from 2024-01-01)::

         open   high   low    close
    b0   100    101     99    100
    b1   102    104    101    103
    b2   103    106    100    105
    b3   110    112    108    111    gaps up
    b4    95     97     90     96    gaps down
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradeloom.errors import RunError
from tradeloom.execution import SimulatedBroker
from tradeloom.model import Order, OrderStatus, OrderType
from tradeloom.risk import Reject, RiskRule, RiskView
from tradeloom.risk.rules import MaxOrderQuantity

from helpers import GAP_ROWS, Scripted, bars, run

FRAME = bars(GAP_ROWS)
DAY = [int(t) for t in FRAME.index.as_unit("ns").asi8]


def fills(s: Scripted) -> list[tuple[str, float, float, int]]:
    """(side, quantity, price, bar number) of every fill."""
    return [(f.side.value, f.quantity, f.price, DAY.index(f.ts)) for f in s.fills]


def status(broker: SimulatedBroker, order: Order) -> tuple[OrderStatus, str]:
    final = broker.orders[order.client_order_id]
    return final.status, final.reason


# --- trailing stops -----------------------------------------------------------------------------


def test_trailing_sell_stop_follows_the_highs_and_gaps_out_at_the_open() -> None:
    # Long 10 from b1's open (102). At b1's close (103) a trailing sell 4 below starts at 99.
    # b2: low 100 > 99, no trigger; the level follows b2's high: 106 - 4 = 102.
    # b3: low 108 > 102; the level follows 112 - 4 = 108.
    # b4 opens at 95, through 108: filled at the open, 95.
    s = Scripted({0: lambda c: c.buy("X", 10), 1: lambda c: c.sell("X", 10, trail_amount=4)})
    _, broker = run(FRAME, s)
    assert fills(s) == [("buy", 10, 102.0, 1), ("sell", 10, 95.0, 4)]
    stop = broker.orders[s.placed[1].client_order_id]
    assert stop.type is OrderType.TRAILING_STOP
    assert stop.stop_price == 108.0 and stop.status is OrderStatus.FILLED


def test_a_bar_never_triggers_the_level_it_set() -> None:
    # A trailing sell 1 below b0's close starts at 99. b1 (low 101) does not reach 99; only
    # then does the level follow b1's high to 103 (had it moved first, b1's low of 101 would
    # have triggered it). b2 opens at 103, at the level: filled at the open.
    s = Scripted({0: lambda c: c.sell("X", 10, trail_amount=1)})
    run(FRAME, s)
    assert fills(s) == [("sell", 10, 103.0, 2)]


def test_trailing_buy_stop_in_percent_only_moves_down() -> None:
    # Buy trailing 5 % above b0's close: 105. b1: high 104 < 105; following b1's low would
    # give 101 × 1.05 = 106.05, above the level, so it stays at 105. b2: high 106 ≥ 105,
    # open 103 below it: filled at the level, 105.
    s = Scripted({0: lambda c: c.buy("X", 10, trail_percent=5)})
    run(FRAME, s)
    assert fills(s) == [("buy", 10, 105.0, 2)]


def test_trailing_stop_slippage_and_validation() -> None:
    s = Scripted({0: lambda c: c.buy("X", 10, trail_percent=3)})  # level 103, hit inside b1
    run(FRAME, s, broker=SimulatedBroker(slippage_bps=10))
    assert fills(s) == [("buy", 10, pytest.approx(103.0 * 1.001), 1)]
    for kwargs in ({"trail_percent": 0}, {"trail_amount": -1}, {"trail_percent": 100}):
        with pytest.raises(RunError, match="trail"):
            run(FRAME, Scripted({0: lambda c, k=kwargs: c.sell("X", 1, **k)}))
    with pytest.raises(RunError, match="takes no limit or stop"):
        run(FRAME, Scripted({0: lambda c: c.sell("X", 1, trail_amount=1, stop=90)}))


# --- IOC and FOK -------------------------------------------------------------------------------


@pytest.mark.parametrize("tif", ["ioc", "fok"])
def test_ioc_and_fok_get_one_bar(tif: str) -> None:
    # A limit buy at 101.5 fills inside b1 (low 101). One at 100 does not (b1's low is 101):
    # as GTC it would fill on b2 (low 100); as IOC / FOK it is canceled after b1.
    filled = Scripted({0: lambda c: c.buy("X", 10, limit=101.5, tif=tif)})
    run(FRAME, filled)
    assert fills(filled) == [("buy", 10, 101.5, 1)]

    missed = Scripted({0: lambda c: c.buy("X", 10, limit=100.0, tif=tif)})
    _, broker = run(FRAME, missed)
    assert fills(missed) == []
    state, reason = status(broker, missed.placed[0])
    assert state is OrderStatus.CANCELED
    assert (
        reason
        == f"{'immediate-or-cancel' if tif == 'ioc' else 'fill-or-kill'}: not filled on its first bar"
    )

    gtc = Scripted({0: lambda c: c.buy("X", 10, limit=100.0)})
    run(FRAME, gtc)
    assert fills(gtc) == [("buy", 10, 100.0, 2)]


def test_a_market_ioc_fills_at_the_next_open() -> None:
    s = Scripted({0: lambda c: c.buy("X", 3, tif="ioc")})
    run(FRAME, s)
    assert fills(s) == [("buy", 3, 102.0, 1)]


def test_unknown_tif_names_the_choices() -> None:
    with pytest.raises(RunError, match="unknown tif 'gtd'; use one of day, gtc, ioc, fok"):
        run(FRAME, Scripted({0: lambda c: c.buy("X", 1, tif="gtd")}))


# --- replace ----------------------------------------------------------------------------------


def test_replace_moves_a_limit_and_says_what_changed() -> None:
    # A limit buy at 95 is moved to 100.5 at b1; b2 (low 100) fills it at 100.5.
    s = Scripted(
        {
            0: lambda c: c.buy("X", 10, limit=95.0),
            1: lambda c: c.replace(c.open_orders("X")[0], limit=100.5),
        }
    )
    run(FRAME, s)
    assert fills(s) == [("buy", 10, 100.5, 2)]
    notes = [u.note for u in s.updates if u.note]
    assert notes == ["replaced: limit 95.0 -> 100.5"]


def test_replace_quantity_then_fill_the_new_quantity() -> None:
    s = Scripted(
        {
            0: lambda c: c.buy("X", 10, limit=100.0),
            1: lambda c: c.replace(c.open_orders("X")[0], quantity=4),
        }
    )
    run(FRAME, s)
    assert fills(s) == [("buy", 4, 100.0, 2)]


def test_a_replace_is_a_new_risk_check() -> None:
    # 10 units pass a 12-unit limit; raising the order to 15 does not: the order stays at 10.
    s = Scripted(
        {
            0: lambda c: c.buy("X", 10, limit=100.0),
            1: lambda c: c.replace(c.open_orders("X")[0], quantity=15),
        }
    )
    rule = MaxOrderQuantity(max_quantity=12)
    rule.name = "max-order-quantity"
    run(FRAME, s, risk=[rule])
    assert fills(s) == [("buy", 10, 100.0, 2)]
    (note,) = [u.note for u in s.updates if u.note]
    assert note == (
        "replace rejected: risk rule max-order-quantity: order quantity over the limit "
        "(limit 12, observed 15)"
    )


def test_a_replace_the_account_cannot_pay_for_is_refused() -> None:
    s = Scripted(
        {
            0: lambda c: c.buy("X", 10, limit=100.0),
            1: lambda c: c.replace(c.open_orders("X")[0], quantity=1_000),
        }
    )
    run(FRAME, s)  # 10,000 cash: 1,000 units at 100 cost 100,000
    assert fills(s) == [("buy", 10, 100.0, 2)]
    (note,) = [u.note for u in s.updates if u.note]
    assert note.startswith("replace rejected: insufficient cash: order needs 100,000.00")


def test_only_working_orders_of_the_strategy_can_be_replaced() -> None:
    s = Scripted(
        {0: lambda c: c.buy("X", 1), 2: lambda c: c.replace(c.get_order("s-1"), quantity=2)}
    )
    with pytest.raises(RunError, match="order s-1 is filled; only working orders can be replaced"):
        run(FRAME, s)
    with pytest.raises(RunError, match="give a new quantity, limit or stop"):
        run(FRAME, Scripted({0: lambda c: c.buy("X", 1, limit=90), 1: lambda c: c.replace("s-1")}))
    with pytest.raises(RunError, match="a market order takes no limit_price"):
        run(FRAME, Scripted({0: lambda c: c.replace(c.buy("X", 1), limit=3.0)}))


# --- one-cancels-other --------------------------------------------------------------------------


def long_then(action):  # type: ignore[no-untyped-def]
    """Buy 10 at b0 (filled at b1's open, 102), then ``action`` at b1."""
    return Scripted({0: lambda c: c.buy("X", 10), 1: action})


def test_oco_take_profit_fills_and_cancels_the_stop() -> None:
    # Sell 10 at 105.5 (limit) or 99.5 (stop). b2: high 106 reaches the limit, low 100 stays
    # above the stop: the limit fills at 105.5 and the stop is canceled.
    s = long_then(lambda c: c.oco("X", -10, limit=105.5, stop=99.5))
    _, broker = run(FRAME, s)
    assert fills(s)[1:] == [("sell", 10, 105.5, 2)]
    take, stop = s.placed[1]
    assert status(broker, stop) == (OrderStatus.CANCELED, f"OCO: {take.client_order_id} filled")


def test_oco_both_touched_on_one_bar_fills_the_worse() -> None:
    # b2 reaches both 105.5 (high 106) and 100.5 (low 100). Which came first is unknown, so the
    # outcome worse for the trader is assumed: the stop at 100.5.
    s = long_then(lambda c: c.oco("X", -10, limit=105.5, stop=100.5))
    _, broker = run(FRAME, s)
    assert fills(s)[1:] == [("sell", 10, 100.5, 2)]
    take, stop = s.placed[1]
    assert status(broker, take) == (OrderStatus.CANCELED, f"OCO: {stop.client_order_id} filled")


class NoStops(RiskRule):
    def check(self, order: Order, view: RiskView) -> Reject | None:
        return Reject("no-stops", "stops are not allowed") if order.type is OrderType.STOP else None


def test_an_oco_pair_is_all_or_nothing() -> None:
    s = long_then(lambda c: c.oco("X", -10, limit=105.5, stop=99.5))
    _, broker = run(FRAME, s, risk=[NoStops()])
    take, stop = s.placed[1]
    assert broker.get_order(stop.client_order_id) is None  # refused by the gate
    assert status(broker, take) == (OrderStatus.CANCELED, "one-cancels-other partner refused")
    assert fills(s) == [("buy", 10, 102.0, 1)]


# --- brackets ---------------------------------------------------------------------------------


def test_bracket_exits_wait_for_the_entry_then_take_profit() -> None:
    # Entry: market buy 10, filled at b1's open (102); exits held until then. b1's rest (high
    # 104, low 101) reaches neither 105.5 nor 99.5; b2's high 106 takes profit at 105.5.
    s = Scripted({0: lambda c: c.bracket("X", 10, take_profit=105.5, stop_loss=99.5)})
    _, broker = run(FRAME, s)
    entry, take, stop = s.placed[0]
    assert entry.parent_id == "" and take.parent_id == stop.parent_id == entry.client_order_id
    assert fills(s) == [("buy", 10, 102.0, 1), ("sell", 10, 105.5, 2)]
    assert status(broker, stop) == (OrderStatus.CANCELED, f"OCO: {take.client_order_id} filled")
    held = [u for u in s.updates if u.order.client_order_id == take.client_order_id]
    assert [u.status for u in held] == [OrderStatus.HELD, OrderStatus.ACCEPTED, OrderStatus.FILLED]
    assert broker.ledger.quantity("X") == 0
    assert broker.ledger.trades[0].pnl == pytest.approx(35.0)


def test_bracket_after_an_entry_at_the_open_exits_on_the_same_bar() -> None:
    # Entered at b1's open, the position sees all of b1 after it: the high of 104 reaches
    # the take-profit at 103.5 on the same bar.
    s = Scripted({0: lambda c: c.bracket("X", 10, take_profit=103.5, stop_loss=95)})
    run(FRAME, s)
    assert fills(s) == [("buy", 10, 102.0, 1), ("sell", 10, 103.5, 1)]


def test_bracket_after_an_entry_inside_the_bar_only_stops_out_on_that_bar() -> None:
    # Limit entry at 101.5 fills inside b1 (low 101). Whether b1's high of 104 came after the
    # entry is unknown, so the take-profit at 103.5 waits for b2 (it fills there, at b2's
    # range: open 103, high 106).
    s = Scripted({0: lambda c: c.bracket("X", 10, take_profit=103.5, stop_loss=99.5, limit=101.5)})
    run(FRAME, s)
    assert fills(s) == [("buy", 10, 101.5, 1), ("sell", 10, 103.5, 2)]
    # ... but a stop-loss the rest of the bar reaches is assumed hit: b1's low of 101 is
    # below the stop at 101.2, after an entry at 101.5.
    s = Scripted({0: lambda c: c.bracket("X", 10, take_profit=110, stop_loss=101.2, limit=101.5)})
    run(FRAME, s)
    assert fills(s) == [("buy", 10, 101.5, 1), ("sell", 10, 101.2, 1)]


def test_short_bracket_stops_out_through_a_gap() -> None:
    # Short 10 at b1's open (102). The stop-loss buy at 106.5: b2's high is 106, b3 opens at
    # 110, through the stop: bought back at the open, 110 (a loss of 8 per unit).
    s = Scripted({0: lambda c: c.bracket("X", -10, take_profit=95, stop_loss=106.5)})
    _, broker = run(FRAME, s)
    assert fills(s) == [("sell", 10, 102.0, 1), ("buy", 10, 110.0, 3)]
    assert broker.ledger.trades[0].pnl == pytest.approx(-80.0)


def test_bracket_exits_are_canceled_when_the_entry_never_fills() -> None:
    s = Scripted({0: lambda c: c.bracket("X", 10, take_profit=120, stop_loss=85, limit=88)})
    _, broker = run(FRAME, s)
    entry, take, stop = s.placed[0]
    assert fills(s) == []
    assert status(broker, entry)[0] is OrderStatus.CANCELED
    for leg in (take, stop):
        assert status(broker, leg) == (OrderStatus.CANCELED, "bracket entry ended without a fill")


def test_bracket_entry_refused_by_the_gate_cancels_its_exits() -> None:
    rule = MaxOrderQuantity(max_quantity=5)
    rule.name = "max-order-quantity"
    s = Scripted({0: lambda c: c.bracket("X", 10, take_profit=120, stop_loss=85)})
    run(FRAME, s, risk=[rule])
    assert fills(s) == []
    entry, take, stop = s.placed[0]
    statuses = {u.order.client_order_id: u.status for u in s.updates}
    assert statuses[entry.client_order_id] is OrderStatus.REJECTED
    assert statuses[take.client_order_id] is OrderStatus.CANCELED
    assert statuses[stop.client_order_id] is OrderStatus.CANCELED


def test_bracket_prices_are_checked() -> None:
    with pytest.raises(RunError, match="a long bracket needs stop_loss < take_profit"):
        run(FRAME, Scripted({0: lambda c: c.bracket("X", 10, take_profit=95, stop_loss=105)}))
    with pytest.raises(RunError, match="a short bracket needs take_profit < limit < stop_loss"):
        run(
            FRAME,
            Scripted({0: lambda c: c.bracket("X", -1, take_profit=95, stop_loss=105, limit=90)}),
        )


# --- property: no fill outside its bar ---------------------------------------------------------


@st.composite
def bar_frames(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(5, 25))
    steps = draw(st.lists(st.floats(-0.05, 0.05), min_size=n, max_size=n))
    close = 100 * np.exp(np.cumsum(steps))
    gaps = np.array(draw(st.lists(st.floats(-0.03, 0.03), min_size=n, max_size=n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(gaps)
    ups = np.array(draw(st.lists(st.floats(0, 0.02), min_size=n, max_size=n)))
    downs = np.array(draw(st.lists(st.floats(0, 0.02), min_size=n, max_size=n)))
    high = np.maximum(open_, close) * (1 + ups)
    low = np.minimum(open_, close) * (1 - downs)
    return bars(list(zip(open_, high, low, close, strict=True)))


ACTIONS = st.sampled_from(
    ["market", "limit", "stop", "stop_limit", "trail", "oco", "bracket", "ioc"]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=bar_frames(),
    plan=st.lists(st.tuples(ACTIONS, st.floats(0.9, 1.1), st.booleans()), max_size=12),
    bps=st.sampled_from([0.0, 5.0, 1000.0]),
)
def test_no_fill_is_ever_outside_its_bar(frame: pd.DataFrame, plan: list, bps: float) -> None:  # type: ignore[type-arg]
    """Whatever the order type, and with slippage too (held within the bar's range)."""

    def act(kind: str, k: float, buy: bool):  # type: ignore[no-untyped-def]
        def place(c):  # type: ignore[no-untyped-def]
            p = c.last_price("X")
            q = 1 if buy else -1
            if kind == "market":
                return c.order("X", q)
            if kind == "limit":
                return c.order("X", q, limit=p * k)
            if kind == "stop":
                return c.order("X", q, stop=p * k)
            if kind == "stop_limit":
                return c.order("X", q, stop=p * k, limit=p * k * (1.01 if buy else 0.99))
            if kind == "trail":
                return c.order("X", q, trail_percent=abs(k - 1) * 100 + 0.1)
            if kind == "ioc":
                return c.order("X", q, limit=p * k, tif="ioc")
            lo, hi = p * 0.9, p * 1.1
            if kind == "oco":
                return c.oco("X", -q, limit=hi if buy else lo, stop=lo if buy else hi)
            return c.bracket("X", q, take_profit=hi if buy else lo, stop_loss=lo if buy else hi)

        return place

    script = {i % len(frame): act(*step) for i, step in enumerate(plan)}
    s = Scripted(script)
    run(frame, s, cash=1e9, broker=SimulatedBroker(slippage_bps=bps))
    by_ts = {
        int(t): row
        for t, row in zip(frame.index.as_unit("ns").asi8, frame.itertuples(), strict=True)
    }
    for f in s.fills:
        row = by_ts[f.ts]
        assert row.low - 1e-9 <= f.price <= row.high + 1e-9, (f, row)

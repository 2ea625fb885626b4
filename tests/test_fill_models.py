"""Hand-computed fills under the fill models: volume participation (partial fills carried over
to later bars), latency, the same-bar close, and how they meet IOC/FOK, OCO and brackets.

The bars (GAP_ROWS, daily from 2024-01-01, volume 1,000 each)::

         open   high   low    close
    b0   100    101     99    100
    b1   102    104    101    103
    b2   103    106    100    105
    b3   110    112    108    111    gaps up
    b4    95     97     90     96    gaps down

With ``max_participation = 0.1`` every bar fills at most 100 units per symbol.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradeloom.execution import SimulatedBroker
from tradeloom.execution.fills import Latency, SameClose, VolumeParticipation
from tradeloom.model import OrderStatus

from helpers import GAP_ROWS, Scripted, bars, run

FRAME = bars(GAP_ROWS)
DAY = [int(t) for t in FRAME.index.as_unit("ns").asi8]


def broker(*models, **params) -> SimulatedBroker:  # type: ignore[no-untyped-def]
    b = SimulatedBroker(**params)
    b.use_fill_models(models)
    return b


def tenth() -> SimulatedBroker:
    return broker(VolumeParticipation(max_participation=0.1))


def fills(s: Scripted) -> list[tuple[str, float, float, int]]:
    return [(f.side.value, f.quantity, f.price, DAY.index(f.ts)) for f in s.fills]


def test_a_market_order_larger_than_the_cap_fills_over_several_opens() -> None:
    s = Scripted({0: lambda c: c.buy("X", 250)})
    _, b = run(FRAME, s, broker=tenth(), cash=1e6)
    assert fills(s) == [("buy", 100, 102.0, 1), ("buy", 100, 103.0, 2), ("buy", 50, 110.0, 3)]
    statuses = [u.status for u in s.updates]
    assert statuses == [
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]
    order = b.orders[s.placed[0].client_order_id]
    assert order.avg_fill_price == pytest.approx((100 * 102 + 100 * 103 + 50 * 110) / 250)


def test_orders_of_one_symbol_share_the_bar_volume_in_acceptance_order() -> None:
    s = Scripted({0: lambda c: (c.buy("X", 80), c.buy("X", 50))})
    run(FRAME, s, broker=tenth(), cash=1e6)
    assert fills(s) == [("buy", 80, 102.0, 1), ("buy", 20, 102.0, 1), ("buy", 30, 103.0, 2)]


def test_a_limit_order_fills_partly_whenever_touched() -> None:
    # Limit buy 150 at 101.5: b1 (low 101) fills 100; b2 (low 100) the remaining 50.
    s = Scripted({0: lambda c: c.buy("X", 150, limit=101.5)})
    run(FRAME, s, broker=tenth(), cash=1e6)
    assert fills(s) == [("buy", 100, 101.5, 1), ("buy", 50, 101.5, 2)]


def test_ioc_keeps_its_partial_fill_and_fok_fills_all_or_nothing() -> None:
    ioc = Scripted({0: lambda c: c.buy("X", 250, tif="ioc")})
    _, b = run(FRAME, ioc, broker=tenth(), cash=1e6)
    assert fills(ioc) == [("buy", 100, 102.0, 1)]
    order = b.orders[ioc.placed[0].client_order_id]
    assert (order.status, order.filled_quantity) == (OrderStatus.CANCELED, 100)
    assert order.reason == "immediate-or-cancel: not filled on its first bar"

    fok = Scripted({0: lambda c: c.buy("X", 250, tif="fok")})
    _, b = run(FRAME, fok, broker=tenth(), cash=1e6)
    assert fills(fok) == []
    assert (
        b.orders[fok.placed[0].client_order_id].reason
        == "fill-or-kill: not filled on its first bar"
    )

    small = Scripted({0: lambda c: c.buy("X", 80, tif="fok")})
    run(FRAME, small, broker=tenth(), cash=1e6)
    assert fills(small) == [("buy", 80, 102.0, 1)]


def test_a_partial_oco_fill_shrinks_the_other_order() -> None:
    # Long 100 (b1's open). At b1: sell 150 at 105.5 (limit) or 99.5 (stop). b2 reaches the
    # limit: 100 fill (the cap) and the stop shrinks to 50. b3 opens at 110, above the limit:
    # the last 50 fill at the open, and the stop is canceled.
    s = Scripted(
        {0: lambda c: c.buy("X", 100), 1: lambda c: c.oco("X", -150, limit=105.5, stop=99.5)}
    )
    _, b = run(FRAME, s, broker=tenth(), cash=1e6)
    assert fills(s)[1:] == [("sell", 100, 105.5, 2), ("sell", 50, 110.0, 3)]
    take, stop = s.placed[1]
    notes = [u.note for u in s.updates if u.note]
    assert notes == [f"OCO: {take.client_order_id} filled 100: quantity 150 -> 50"]
    final = b.orders[stop.client_order_id]
    assert (final.status, final.quantity) == (OrderStatus.CANCELED, 50)


def test_bracket_exits_follow_a_partially_filled_entry() -> None:
    # Entry: market buy 150 with exits at 105.5 / 99.5. b1: 100 at the open (102); the exits
    # are active for 100. b2: the last 50 at the open (103), the exits grow to 150, and the
    # take-profit gets the 50 units of volume left on b2 at 105.5 (the stop shrinks to 100).
    # b3 opens at 110, above the take-profit: its last 100 fill there; the stop is canceled.
    s = Scripted({0: lambda c: c.bracket("X", 150, take_profit=105.5, stop_loss=99.5)})
    _, b = run(FRAME, s, broker=tenth(), cash=1e6)
    assert fills(s) == [
        ("buy", 100, 102.0, 1),
        ("buy", 50, 103.0, 2),
        ("sell", 50, 105.5, 2),
        ("sell", 100, 110.0, 3),
    ]
    assert b.ledger.quantity("X") == 0
    _, take, stop = s.placed[0]
    assert b.orders[take.client_order_id].status is OrderStatus.FILLED
    assert b.orders[stop.client_order_id].status is OrderStatus.CANCELED


def test_latency_in_bars_and_milliseconds() -> None:
    s = Scripted({0: lambda c: c.buy("X", 1)})
    run(FRAME, s, broker=broker(Latency(bars=1)))
    assert fills(s) == [("buy", 1, 103.0, 2)]  # skips b1: first trades on b2's open
    s = Scripted({0: lambda c: c.buy("X", 1)})
    run(FRAME, s, broker=broker(Latency(ms=86_400_000 + 1)))  # a day and 1 ms: b2 again
    assert fills(s) == [("buy", 1, 103.0, 2)]
    s = Scripted({0: lambda c: c.buy("X", 1)})
    run(FRAME, s, broker=broker(Latency(ms=5)))  # daily bars: 5 ms changes nothing
    assert fills(s) == [("buy", 1, 102.0, 1)]


def test_latency_delays_an_ioc_to_its_first_active_bar() -> None:
    # A limit buy at 100.5 IOC: b1 (low 101) would miss it, but with one bar of latency its one
    # bar is b2 (low 100), where it fills.
    s = Scripted({0: lambda c: c.buy("X", 1, limit=100.5, tif="ioc")})
    run(FRAME, s, broker=broker(Latency(bars=1)))
    assert fills(s) == [("buy", 1, 100.5, 2)]


def test_same_close_is_optimistic_and_combines_with_latency() -> None:
    s = Scripted({0: lambda c: c.buy("X", 1)})
    _, b = run(FRAME, s, broker=broker(SameClose()))
    assert fills(s) == [("buy", 1, 100.0, 0)]
    assert any("OPTIMISTIC" in line for line in b.conventions())
    s = Scripted({0: lambda c: c.buy("X", 1)})
    run(FRAME, s, broker=broker(SameClose(), Latency(bars=1)))
    assert fills(s) == [("buy", 1, 105.0, 2)]  # not b0's or b1's close: b2's


def test_the_fill_models_are_printed_in_the_conventions() -> None:
    b = broker(VolumeParticipation(max_participation=0.05), Latency(bars=2, ms=150))
    lines = b.conventions()
    assert (
        "Fill model volume-participation: at most 5.0% of each bar's volume per symbol; the "
        "rest of an order carries over to later bars (partial fills); bars without volume fill "
        "nothing." in lines
    )
    assert (
        "Fill model latency: an order can trade only from the 3rd bar after the one it was sent "
        "on and 150 ms after it was sent." in lines
    )


# --- property: participation never exceeds its cap ---------------------------------------------


@st.composite
def frames(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(4, 15))
    closes = 100 * np.exp(np.cumsum(draw(st.lists(st.floats(-0.04, 0.04), min_size=n, max_size=n))))
    opens = np.concatenate(([100.0], closes[:-1]))
    rows = [(o, max(o, c) * 1.01, min(o, c) * 0.99, c) for o, c in zip(opens, closes, strict=True)]
    frame = bars(rows)
    frame["volume"] = draw(st.lists(st.floats(0, 5_000), min_size=n, max_size=n))
    return frame


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=frames(),
    cap=st.floats(0.01, 1.0),
    plan=st.lists(
        st.tuples(st.sampled_from(["market", "limit", "oco", "bracket", "ioc"]), st.floats(1, 800)),
        max_size=10,
    ),
)
def test_volume_participation_never_exceeds_its_cap(
    frame: pd.DataFrame, cap: float, plan: list
) -> None:  # type: ignore[type-arg]
    def act(kind: str, qty: float):  # type: ignore[no-untyped-def]
        def place(c):  # type: ignore[no-untyped-def]
            p = c.last_price("X")
            if kind == "market":
                return c.buy("X", qty)
            if kind == "limit":
                return c.sell("X", qty, limit=p * 0.99)
            if kind == "ioc":
                return c.buy("X", qty, limit=p * 1.01, tif="ioc")
            if kind == "oco":
                return c.oco("X", -qty, limit=p * 1.02, stop=p * 0.98)
            return c.bracket("X", qty, take_profit=p * 1.02, stop_loss=p * 0.98)

        return place

    s = Scripted({i % len(frame): act(*step) for i, step in enumerate(plan)})
    run(frame, s, broker=broker(VolumeParticipation(max_participation=cap)), cash=1e12)
    volume = dict(zip(frame.index.as_unit("ns").asi8.tolist(), frame["volume"], strict=True))
    filled: dict[int, float] = {}
    for f in s.fills:
        filled[f.ts] = filled.get(f.ts, 0.0) + f.quantity
    for ts, qty in filled.items():
        assert qty <= cap * volume[ts] + 1e-6

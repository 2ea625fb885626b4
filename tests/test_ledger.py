"""Ledger invariants under random fill sequences (hypothesis) and a hand-computed flip."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloom.model import Fill, Side
from tradeloom.portfolio import Ledger

fills = st.lists(
    st.tuples(
        st.sampled_from(["A", "B"]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(min_value=1, max_value=50),
        st.floats(min_value=1.0, max_value=500.0),
        st.floats(min_value=0.0, max_value=5.0),
    ),
    max_size=40,
)


@settings(max_examples=300)
@given(fills, st.floats(min_value=1.0, max_value=500.0), st.floats(min_value=1.0, max_value=500.0))
def test_ledger_invariants(seq, mark_a: float, mark_b: float) -> None:  # type: ignore[no-untyped-def]
    ledger = Ledger(100_000.0)
    expected_qty = {"A": 0.0, "B": 0.0}
    for i, (symbol, side, qty, price, fee) in enumerate(seq):
        ledger.apply_fill(Fill(f"f{i}", f"o{i}", symbol, side, float(qty), price, fee, i), i)
        ledger.mark(symbol, price)
        expected_qty[symbol] += side.sign * qty
    ledger.mark("A", mark_a)
    ledger.mark("B", mark_b)

    # position = signed sum of fills
    for symbol, qty in expected_qty.items():
        assert ledger.quantity(symbol) == pytest.approx(qty, abs=1e-9)
    # cash + position value = equity
    value = sum(ledger.quantity(s) * p for s, p in (("A", mark_a), ("B", mark_b)))
    assert ledger.equity() == pytest.approx(ledger.cash + value, rel=1e-12, abs=1e-6)
    # equity = initial + realised + unrealised − fees
    explained = 100_000.0 + ledger.realized_pnl() + ledger.unrealized_pnl() - ledger.fees_paid
    assert math.isclose(ledger.equity(), explained, rel_tol=1e-9, abs_tol=1e-6)
    # closed trades' net pnl + fees still attributed to open positions = realised − fees paid
    open_entry_fees = sum(b.entry_fees for b in ledger.books.values())
    net = sum(t.pnl for t in ledger.trades)
    assert net == pytest.approx(
        ledger.realized_pnl() - ledger.fees_paid + open_entry_fees, abs=1e-6
    )


def test_flip_from_long_to_short_books_one_trade_and_a_new_position() -> None:
    ledger = Ledger(10_000.0)
    ledger.apply_fill(Fill("f1", "o1", "X", Side.BUY, 10, 100.0, 2.0, 1), 0)
    ledger.apply_fill(Fill("f2", "o2", "X", Side.SELL, 15, 110.0, 3.0, 2), 3)
    (trade,) = ledger.trades
    assert trade.side == "long" and trade.quantity == 10
    assert trade.fees == pytest.approx(2.0 + 2.0)  # all entry fee + 10/15 of the exit fee
    assert trade.pnl == pytest.approx(100.0 - 4.0)
    assert trade.bars_held == 3
    pos = ledger.position("X")
    assert pos.quantity == -5 and pos.avg_price == 110.0
    assert ledger.books["X"].entry_fees == pytest.approx(1.0)
    assert ledger.cash == pytest.approx(10_000 - 1_000 - 2 + 1_650 - 3)

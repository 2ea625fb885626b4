"""The sizing helpers as strategies call them through their Context (``ctx.size_...``): the
formulas of ``tradeloom.risk.sizing`` on the strategy's equity, latest close and history."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tradeloom.errors import RunError
from tradeloom.risk import sizing

from helpers import GAP_ROWS, Scripted, bars, run

FRAME = bars(GAP_ROWS)


def sized(bar: int, how):  # type: ignore[no-untyped-def]
    seen: list[float] = []
    run(FRAME, Scripted({bar: lambda c: seen.append(how(c))}), cash=100_000.0)
    return seen[0]


def test_fixed_fractional_risks_the_fraction_of_equity_to_the_stop() -> None:
    # At b1: close 103, stop 98, 1 % of 100,000 = 1,000 at risk: 1,000 / 5 = 200 units.
    assert sized(1, lambda c: c.size_fixed_fractional("X", 0.01, 98.0)) == 200
    # lot 30: 180 (six lots), never more risk than allowed
    assert sized(1, lambda c: c.size_fixed_fractional("X", 0.01, 98.0, lot=30)) == 180


def test_atr_sizing_uses_wilders_atr_of_the_history() -> None:
    # window 3 at b4 (5 bars): true ranges of b1..b4: 4 (104 - b0's close 100), 6, 7 (b3's
    # gap: 112 - 105), 21 (b4: 111 - 90); seed mean(4, 6, 7) = 17/3, then
    # (17/3 × 2 + 21) / 3 = 97/9; 2 % of 100,000 over 2 ATRs: 2,000 / 21.56 = 92.78 -> 92.
    atr = 97 / 9
    assert math.floor(100_000 * 0.02 / (2 * atr)) == 92
    assert sized(4, lambda c: c.size_atr("X", 0.02, window=3)) == 92
    high, low, close = (FRAME[f].to_numpy() for f in ("high", "low", "close"))
    assert sizing.atr(high, low, close, window=3) == pytest.approx(atr)


def test_volatility_target_uses_the_last_window_returns() -> None:
    # b4 with window 3: returns of closes 103, 105, 111, 96
    closes = np.array([103.0, 105.0, 111.0, 96.0])
    returns = closes[1:] / closes[:-1] - 1
    sigma = returns.std(ddof=1) * math.sqrt(252)
    expected = math.floor(100_000 * 0.1 / (96 * sigma))
    assert sized(4, lambda c: c.size_volatility_target("X", 0.1, window=3)) == expected


def test_bad_sizing_input_is_one_clear_error() -> None:
    with pytest.raises(RunError, match=r"fixed_fractional\(\): risk_fraction must be in \(0, 1\]"):
        sized(1, lambda c: c.size_fixed_fractional("X", 1.5, 98.0))
    with pytest.raises(RunError, match=r"atr\(\):"):
        sized(1, lambda c: c.size_atr("X", 0.01, window=14))  # 2 bars of history


def _room(script_bar: int, ask, rules, prior=None):  # type: ignore[no-untyped-def]
    """What ``ask(ctx)`` returns at bar ``script_bar`` with ``rules`` (``prior`` placed at b0)."""
    seen: list[float] = []
    steps = {script_bar: lambda c: seen.append(ask(c))}
    if prior is not None:
        steps[0] = prior
    run(FRAME, Scripted(steps), cash=1_000_000.0, risk=rules)
    return seen[0]


def _named(rule, name):  # type: ignore[no-untyped-def]
    rule.name = name
    return rule


def test_max_order_size_is_the_tightest_quantity_limit_of_the_gate() -> None:
    from tradeloom.risk.rules import MaxOrderNotional, MaxOrderQuantity, MaxPosition

    rules = [
        _named(MaxOrderQuantity(max_quantity=50), "max-order-quantity"),
        _named(MaxPosition(max_quantity=80), "max-position"),
        _named(MaxOrderNotional(max_notional=10_000), "max-order-notional"),
    ]
    # No rules: nothing limits it.
    assert _room(1, lambda c: c.max_order_size("X", "buy"), []) == math.inf
    # At b2 (close 105) after buying 40 at b0 (filled at b1's open): position 40.
    # quantity 50; position room 80 - 40 = 40 buys; notional 10,000 / 105 = 95.24.
    buy = _room(2, lambda c: c.max_order_size("X", "buy"), rules, lambda c: c.buy("X", 40))
    assert buy == 40
    # Sells: the position can go from +40 to -80: 120, capped by quantity 50.
    sell = _room(2, lambda c: c.max_order_size("X", "sell"), rules, lambda c: c.buy("X", 40))
    assert sell == 50
    # A working buy of 40 more counts: 80 - 40 - 40 = 0.
    working = _room(
        2, lambda c: c.max_order_size("X", "buy"), rules[1:2],
        lambda c: (c.buy("X", 40), c.buy("X", 40, limit=1.0)),
    )  # fmt: skip
    assert working == 0
    # Notional alone: 10,000 / close 105.
    notional = _room(2, lambda c: c.max_order_size("X", "buy"), rules[2:])
    assert notional == pytest.approx(10_000 / 105)

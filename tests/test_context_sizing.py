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

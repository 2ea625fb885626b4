"""The first-party strategies of ``tradeloom-strategies``, driven through the backtest engine.

Every expected trade below was worked out by hand from the price series next to it; the
comments give the arithmetic. Unless a test says otherwise, bars are daily, ``open = close -
0.5``, ``high = close + 1`` and ``low = close - 1``, and market orders fill at the next bar's
open (the simulated broker's default).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tradeloom.components import Kind, Mode
from tradeloom.data import MarketData
from tradeloom.engine.backtest import BacktestEngine, EngineOutput
from tradeloom.errors import ConfigError
from tradeloom.execution import SimulatedBroker
from tradeloom.model import Bar, OrderStatus
from tradeloom.plugins import PluginHost
from tradeloom.risk import RiskGate
from tradeloom.strategy import Context, Strategy
from tradeloom_strategies import (
    CrossSectionalMomentum,
    DonchianBreakout,
    RsiMeanReversion,
    SmaCrossover,
)
from tradeloom_strategies.rsi_reversion import wilder_rsi

START = pd.Timestamp("2024-01-01", tz="UTC")


# --- helpers ----------------------------------------------------------------------------------


def frame(
    closes: Sequence[float],
    *,
    opens: Sequence[float] | None = None,
    highs: Sequence[float] | None = None,
    lows: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Daily bars from 2024-01-01; defaults: open = close - 0.5, high/low = extremes ± 1."""
    c = np.asarray(closes, dtype=float)
    o = c - 0.5 if opens is None else np.asarray(opens, dtype=float)
    h = np.maximum(o, c) + 1.0 if highs is None else np.asarray(highs, dtype=float)
    lo = np.minimum(o, c) - 1.0 if lows is None else np.asarray(lows, dtype=float)
    index = pd.date_range(START, periods=len(c), freq="D", name="ts")
    return pd.DataFrame(
        {"open": o, "high": h, "low": lo, "close": c, "volume": np.full(len(c), 1000.0)},
        index=index,
    )


def ts(i: int) -> int:
    """Nanosecond timestamp of bar ``i``."""
    return (START + pd.Timedelta(days=i)).value


def run(
    strategy: Strategy, frames: dict[str, pd.DataFrame], cash: float = 10_000.0
) -> tuple[EngineOutput, SimulatedBroker]:
    broker = SimulatedBroker()
    engine = BacktestEngine(
        MarketData(frames), [("s", strategy)], broker, RiskGate([]),
        initial_cash=cash, currency="USD",
    )  # fmt: skip
    return engine.run(), broker


def trades(broker: SimulatedBroker) -> list[tuple[object, ...]]:
    return [
        (t.symbol, t.side, t.quantity, t.entry_ts, t.entry_price, t.exit_ts, t.exit_price, t.pnl)
        for t in broker.ledger.trades
    ]


def fills(output: EngineOutput) -> list[tuple[object, ...]]:
    return [(f.symbol, f.ts, f.signed_quantity, f.price) for f in output.fills]


def statuses(output: EngineOutput) -> list[OrderStatus]:
    return [o.status for o in output.orders]


# --- sma-crossover ----------------------------------------------------------------------------

# fast = 2, slow = 4:
# i      0  1  2  3     4     5     6    7    8     9    10   11   12    13   14   15
# close 10 10 10 10    11    12    13   12   11    10    9    8    9    10   11   12
# SMA2             10  10.5  11.5  12.5 12.5 11.5 10.5  9.5  8.5  8.5  9.5 10.5 11.5
# SMA4             10 10.25 10.75 11.5  12   12   11.5 10.5  9.5  9    9    9.5 10.5
# d                 0  0.25  0.75  1.0  0.5 -0.5 -1.0 -1.0 -1.0 -0.5  0.5  1.0  1.0
# cross up at 4 (0.25 > 0 >= 0: the first possible signal, bar index slow), cross down at 8,
# cross up at 13.  Fills at the next opens: open5 = 11.5, open9 = 9.5, open14 = 10.5.
SMA_CLOSES = [10, 10, 10, 10, 11, 12, 13, 12, 11, 10, 9, 8, 9, 10, 11, 12]


def test_sma_crossover_long_only_trades_at_next_open() -> None:
    out, broker = run(SmaCrossover(fast=2, slow=4, quantity=10), {"X": frame(SMA_CLOSES)})
    assert fills(out) == [("X", ts(5), 10, 11.5), ("X", ts(9), -10, 9.5), ("X", ts(14), 10, 10.5)]
    assert trades(broker) == [("X", "long", 10, ts(5), 11.5, ts(9), 9.5, -20.0)]
    assert broker.ledger.position("X").quantity == 10
    assert set(statuses(out)) == {OrderStatus.FILLED}


def test_sma_crossover_long_short_flips_into_a_short_round_trip() -> None:
    out, broker = run(
        SmaCrossover(fast=2, slow=4, quantity=10, direction="long_short"), {"X": frame(SMA_CLOSES)}
    )
    # cross down at 8: target -10 from +10 is one sell of 20; cross up at 13: one buy of 20.
    assert fills(out) == [("X", ts(5), 10, 11.5), ("X", ts(9), -20, 9.5), ("X", ts(14), 20, 10.5)]
    assert trades(broker) == [
        ("X", "long", 10, ts(5), 11.5, ts(9), 9.5, -20.0),
        ("X", "short", 10, ts(9), 9.5, ts(14), 10.5, -10.0),
    ]
    assert broker.ledger.position("X").quantity == 10


def test_sma_crossover_signal_on_the_last_bar_is_not_filled() -> None:
    out, broker = run(SmaCrossover(fast=2, slow=4, quantity=10), {"X": frame(SMA_CLOSES[:14])})
    assert fills(out) == [("X", ts(5), 10, 11.5), ("X", ts(9), -10, 9.5)]
    assert statuses(out) == [OrderStatus.FILLED, OrderStatus.FILLED, OrderStatus.CANCELED]
    assert out.orders[-1].created_ts == ts(13)
    assert broker.ledger.position("X").quantity == 0


def test_sma_crossover_fraction_sizing_rounds_down_whole_units() -> None:
    # Default fraction 0.95 of 10,000 cash: cross up at 4 (close 11): 9500 / 11 = 863.6 -> 863,
    # bought at 11.5 and sold at 9.5 (loss 1726, equity 8274); cross up at 13 (close 10):
    # 0.95 * 8274 / 10 = 786.03 -> 786.
    out, broker = run(SmaCrossover(fast=2, slow=4), {"X": frame(SMA_CLOSES)})
    assert fills(out) == [
        ("X", ts(5), 863, 11.5), ("X", ts(9), -863, 9.5), ("X", ts(14), 786, 10.5),
    ]  # fmt: skip
    assert broker.ledger.trades[0].pnl == pytest.approx(-1726.0)


def test_sma_crossover_fraction_is_split_between_symbols() -> None:
    # Two symbols with the same bars: each gets 0.95 / 2 of equity: 4750 / 11 = 431.8 -> 431.
    data = {"AAA": frame(SMA_CLOSES[:8]), "BBB": frame(SMA_CLOSES[:8])}
    out, _ = run(SmaCrossover(fast=2, slow=4), data)
    assert fills(out) == [("AAA", ts(5), 431, 11.5), ("BBB", ts(5), 431, 11.5)]


def test_sma_crossover_matches_a_vectorised_reference_on_a_random_walk() -> None:
    rng = np.random.default_rng(7)
    closes = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 3000))), 5)
    fast, slow = 5, 20
    sma = lambda w: pd.Series(closes).rolling(w).mean().to_numpy()  # noqa: E731
    d = sma(fast) - sma(slow)
    up = (d[1:] > 0) & (d[:-1] <= 0)
    down = (d[1:] < 0) & (d[:-1] >= 0)
    expected, long = [], False
    for t in range(1, len(closes) - 1):  # a signal on the last bar is never filled
        if not long and up[t - 1]:
            expected.append((ts(t + 1), 1.0))
            long = True
        elif long and down[t - 1]:
            expected.append((ts(t + 1), -1.0))
            long = False
    out, _ = run(SmaCrossover(fast=fast, slow=slow, quantity=1), {"X": frame(closes)}, 1e6)
    assert [(f.ts, f.signed_quantity) for f in out.fills] == expected
    assert len(expected) > 50


# --- donchian-breakout ------------------------------------------------------------------------

# entry N = 3, exit M = 2, high = close + 1, low = close - 1, open = close - 0.5:
# i      0  1  2  3  4  5  6  7     8  9     10 11 12 13 14 15
# close 10 10 10 10 12 13 14 13.5  12 10.5  9  8  7 12 14 15
# 4: 12 > max(high 1..3) = 11 -> long, fills open5 = 12.5.
# 8: long exit: 12 < min(low 6..7) = 12.5 -> sell, fills open9 = 10.  (The short entry
#    12 < min(low 5..7) = 12 is not met: comparisons are strict.)
# long only: 9..12 no close beats max(high of the 3 previous bars) (15, 14.5, 13, 11.5);
#    13: 12 > max(high 10..12) = 10 -> long, fills open14 = 13.5.
# long/short: 9: 10.5 < min(low 6..8) = 11 -> short, fills open10 = 8.5; 10..12 no exit
#    (9 > 13? 8 > 11.5? 7 > 10? no); 13: 12 > max(high 10..12) = 10 -> flip long with one buy
#    of 20, fills open14 = 13.5.
DONCHIAN_CLOSES = np.array([10, 10, 10, 10, 12, 13, 14, 13.5, 12, 10.5, 9, 8, 7, 12, 14, 15])


def donchian_frame() -> pd.DataFrame:
    c = DONCHIAN_CLOSES
    return frame(c, highs=c + 1, lows=c - 1)


def test_donchian_long_only() -> None:
    out, broker = run(DonchianBreakout(entry=3, exit=2, quantity=10), {"X": donchian_frame()})
    assert fills(out) == [("X", ts(5), 10, 12.5), ("X", ts(9), -10, 10.0), ("X", ts(14), 10, 13.5)]
    assert trades(broker) == [("X", "long", 10, ts(5), 12.5, ts(9), 10.0, -25.0)]


def test_donchian_long_short() -> None:
    strategy = DonchianBreakout(entry=3, exit=2, quantity=10, direction="long_short")
    out, broker = run(strategy, {"X": donchian_frame()})
    assert fills(out) == [
        ("X", ts(5), 10, 12.5), ("X", ts(9), -10, 10.0), ("X", ts(10), -10, 8.5),
        ("X", ts(14), 20, 13.5),
    ]  # fmt: skip
    assert trades(broker) == [
        ("X", "long", 10, ts(5), 12.5, ts(9), 10.0, -25.0),
        ("X", "short", 10, ts(10), 8.5, ts(14), 13.5, -50.0),
    ]
    assert broker.ledger.position("X").quantity == 10


def test_donchian_channel_excludes_the_current_bar() -> None:
    # Close always equals the bar's high: a channel that included the current bar could never
    # be broken. Rising closes 10, 11, 12, ...: 12 > max(high 0..1) = 11 at bar 2 (entry N = 2).
    c = np.arange(10.0, 16.0)
    out, _ = run(
        DonchianBreakout(entry=2, exit=2, quantity=1), {"X": frame(c, highs=c, lows=c - 1)}
    )
    assert fills(out)[0] == ("X", ts(3), 1, 12.5)


# --- rsi-mean-reversion -----------------------------------------------------------------------

# period 3; every change is +1 or -1, so avg_gain + avg_loss = 1 and RSI = 100 * avg_gain,
# with avg_gain seeded as the mean of the first 3 gains, then (2 * previous + gain) / 3:
# i      0  1  2  3     4     5     6     7     8     9     10    11    12    13
# close 10 11 12 11    10     9    10    11    12    13    14    13    12    11
# RSI            66.7  44.4  29.6  53.1  68.7  79.2  86.1  90.7  60.5  40.3  26.9
# 5: 29.6 < 30 -> long, fills open6 = 9.5;  6: 53.1 > 50 -> sell, fills open7 = 10.5.
# long/short: 8: 79.2 > 70 -> short, fills open9 = 12.5; 12: 40.3 < 50 -> cover at open13 = 10.5.
# 13 (last bar): 26.9 < 30 -> a buy that never fills.
RSI_CLOSES = [10, 11, 12, 11, 10, 9, 10, 11, 12, 13, 14, 13, 12, 11]


def test_rsi_long_only() -> None:
    out, broker = run(RsiMeanReversion(period=3, quantity=10), {"X": frame(RSI_CLOSES)})
    assert fills(out) == [("X", ts(6), 10, 9.5), ("X", ts(7), -10, 10.5)]
    assert trades(broker) == [("X", "long", 10, ts(6), 9.5, ts(7), 10.5, 10.0)]
    assert statuses(out) == [OrderStatus.FILLED, OrderStatus.FILLED, OrderStatus.CANCELED]


def test_rsi_long_short() -> None:
    strategy = RsiMeanReversion(period=3, quantity=10, direction="long_short")
    out, broker = run(strategy, {"X": frame(RSI_CLOSES)})
    assert fills(out) == [
        ("X", ts(6), 10, 9.5), ("X", ts(7), -10, 10.5), ("X", ts(9), -10, 12.5),
        ("X", ts(13), 10, 10.5),
    ]  # fmt: skip
    assert trades(broker) == [
        ("X", "long", 10, ts(6), 9.5, ts(7), 10.5, 10.0),
        ("X", "short", 10, ts(9), 12.5, ts(13), 10.5, 20.0),
    ]


class _RsiRecorder(RsiMeanReversion):
    """Records the strategy's RSI at every bar."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        super().on_bar(ctx, bar)
        self.values.append(self.rsi(bar.symbol))

    def on_start(self, ctx: Context) -> None:
        super().on_start(ctx)
        self.values: list[float | None] = []


def reference_rsi(closes: np.ndarray, period: int) -> list[float | None]:
    """Wilder RSI written out directly from its textbook definition."""
    delta = np.diff(closes)
    gains, losses = np.clip(delta, 0, None), np.clip(-delta, 0, None)
    out: list[float | None] = [None] * period
    avg_g, avg_l = gains[:period].mean(), losses[:period].mean()
    out.append(wilder_rsi(avg_g, avg_l))
    for g, loss in zip(gains[period:], losses[period:], strict=True):
        avg_g = (avg_g * (period - 1) + g) / period
        avg_l = (avg_l * (period - 1) + loss) / period
        out.append(wilder_rsi(avg_g, avg_l))
    return out


def test_rsi_hand_values_and_incremental_matches_reference() -> None:
    recorder = _RsiRecorder(period=3, quantity=1)
    run(recorder, {"X": frame(RSI_CLOSES)})
    assert recorder.values[:3] == [None, None, None]
    assert recorder.values[3] == pytest.approx(200 / 3)
    assert recorder.values[5] == pytest.approx(800 / 27)  # avg gain 8/27 -> 29.63
    assert recorder.values[6] == pytest.approx(4300 / 81)

    rng = np.random.default_rng(3)
    closes = np.round(50 * np.exp(np.cumsum(rng.normal(0, 0.02, 500))), 4)
    recorder = _RsiRecorder(quantity=1)
    run(recorder, {"X": frame(closes)}, 1e6)
    expected = reference_rsi(closes, 14)
    assert recorder.values[:14] == [None] * 14
    assert np.allclose(recorder.values[14:], expected[14:], rtol=0, atol=1e-9)


def test_wilder_rsi_edge_cases() -> None:
    assert wilder_rsi(0.0, 0.0) == 50.0
    assert wilder_rsi(1.0, 0.0) == 100.0
    assert wilder_rsi(0.0, 1.0) == 0.0
    assert wilder_rsi(1.0, 1.0) == 50.0


# --- xs-momentum ------------------------------------------------------------------------------

# lookback 5, rebalance every 5 bars, top 2, gross 0.9 (weight 0.45 each), 10,000 cash;
# open = previous close + 0.2 (a gap up on every bar).
# i    0  1    2    3    4    5  6  7    8   9   10  11    12  13
# A   10 11   12   13   14   15 16 16   15  14  13  12    11  10
# B   20 21   22   23   24   25 24 24   24  24  23  23    23  23
# C   10 10   10   10   10   10 10 11   12  13  14  15    16  17
# D   10  9.8  9.6  9.4  9.2  9  9  9.5 10  11  12  12.5  13  13.5
# 5 (first bar with 6 closes): returns A .5, B .25, C 0, D -.1 -> hold A, B; nothing to sell.
# 6 (buy step, equity 10,000): A 4500 / 16 = 281.25 -> 281, B 4500 / 24 = 187.5 -> 187;
#   filled at open7: A 16.2, B 24.2 (cost 9077.6, cash left 922.4).
# 10: returns A 13/15-1 = -.13, B 23/25-1 = -.08, C 14/10-1 = .4, D 12/9-1 = .33 -> C, D;
#   sell A and B, filled at open11: A 13.2, B 23.2 -> cash 922.4 + 3709.2 + 4338.4 = 8970.
# 11 (buy step, equity 8970): C 4036.5 / 15 = 269.1 -> 269, D 4036.5 / 12.5 = 322.9 -> 322;
#   filled at open12: C 15.2, D 12.7.
XS = {
    "A": [10, 11, 12, 13, 14, 15, 16, 16, 15, 14, 13, 12, 11, 10],
    "B": [20, 21, 22, 23, 24, 25, 24, 24, 24, 24, 23, 23, 23, 23],
    "C": [10, 10, 10, 10, 10, 10, 10, 11, 12, 13, 14, 15, 16, 17],
    "D": [10, 9.8, 9.6, 9.4, 9.2, 9, 9, 9.5, 10, 11, 12, 12.5, 13, 13.5],
}


def gapped(closes: Sequence[float], gap: float) -> pd.DataFrame:
    c = np.asarray(closes, dtype=float)
    return frame(c, opens=np.concatenate(([c[0]], c[:-1] + gap)))


def test_xs_momentum_rebalances_into_the_top_names_without_rejections() -> None:
    strategy = CrossSectionalMomentum(lookback=5, rebalance_every=5, top_n=2, gross_fraction=0.9)
    out, broker = run(strategy, {s: gapped(c, 0.2) for s, c in XS.items()})
    assert strategy.selections == [(ts(5), ["A", "B"]), (ts(10), ["C", "D"])]
    assert fills(out) == [
        ("A", ts(7), 281, 16.2), ("B", ts(7), 187, 24.2),
        ("A", ts(11), -281, 13.2), ("B", ts(11), -187, 23.2),
        ("C", ts(12), 269, 15.2), ("D", ts(12), 322, 12.7),
    ]  # fmt: skip
    assert [o.created_ts for o in out.orders] == [ts(6), ts(6), ts(10), ts(10), ts(11), ts(11)]
    assert set(statuses(out)) == {OrderStatus.FILLED}
    assert [(t.symbol, t.pnl) for t in broker.ledger.trades] == [
        ("A", pytest.approx(-843.0)),
        ("B", pytest.approx(-187.0)),
    ]
    assert sorted(broker.ledger.positions()) == ["C", "D"]


def test_xs_momentum_skip_leaves_out_recent_bars() -> None:
    # With skip = 2 the return at bar 10 runs from close[3] to close[8]:
    # A 15/13-1 = .15, B 24/23-1 = .04, C 12/10-1 = .2, D 10/9.4-1 = .06 -> C, A.
    # First eligible bar is 7 (8 closes); rebalances at 7 and 12.
    strategy = CrossSectionalMomentum(
        lookback=5, skip=2, rebalance_every=3, top_n=2, gross_fraction=0.9
    )
    run(strategy, {s: gapped(c, 0.2) for s, c in XS.items()})
    # 7: close[0] -> close[5]: A .5, B .25, C 0, D -.1;  10: as above -> C, A;
    # 13: close[6] -> close[11]: A 12/16-1, B 23/24-1, C 15/10-1, D 12.5/9-1 -> C, D.
    assert strategy.selections == [(ts(7), ["A", "B"]), (ts(10), ["C", "A"]), (ts(13), ["C", "D"])]


def test_xs_momentum_retries_a_buy_canceled_for_cash_at_the_fill() -> None:
    # top 1 at 0.95. Bar 2: A returned 20%, B 0% -> A. Bar 3 (close 10.3): 9500 / 10.3 -> 922,
    # but bar 4 opens at 11.5: 922 * 11.5 = 10,603 > 10,000 cash -> canceled at the fill.
    # Bar 4 retries at close 11.4: 9500 / 11.4 -> 833, filled at open5 = 11.5.
    a = frame([10, 11, 12, 10.3, 11.4, 11.6], opens=[10, 11, 12, 10.3, 11.5, 11.5])
    b = frame([10, 10, 10, 10, 10, 10])
    strategy = CrossSectionalMomentum(lookback=2, rebalance_every=10, top_n=1)
    out, _ = run(strategy, {"A": a, "B": b})
    first, second = out.orders
    assert (first.status, first.quantity, first.created_ts) == (OrderStatus.CANCELED, 922, ts(3))
    assert "insufficient cash" in first.reason
    assert (second.status, second.quantity, second.created_ts) == (OrderStatus.FILLED, 833, ts(4))
    assert fills(out) == [("A", ts(5), 833, 11.5)]


def test_xs_momentum_needs_two_symbols() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        run(CrossSectionalMomentum(), {"A": frame([10, 11, 12])})


def test_xs_momentum_skips_symbols_without_enough_history() -> None:
    # E starts late (bar 3), so at bar 5 it has 3 closes < lookback + 1 = 6 and is not ranked,
    # even though it went up the most.
    late = frame([1, 2, 4, 8, 16, 32, 64, 64, 64, 64, 64])
    late.index = late.index + pd.Timedelta(days=3)
    data = {s: gapped(c, 0.2) for s, c in XS.items()} | {"E": late}
    strategy = CrossSectionalMomentum(lookback=5, rebalance_every=5, top_n=2, gross_fraction=0.9)
    run(strategy, data)
    assert strategy.selections[0] == (ts(5), ["A", "B"])
    assert strategy.selections[1][1][0] == "E"  # eligible at bar 10 with 8 closes


# --- params -----------------------------------------------------------------------------------


def error_text(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return str(exc.value)


def test_sma_params_fast_must_be_below_slow() -> None:
    for fast, slow in [(30, 10), (20, 20)]:
        with pytest.raises(ValidationError) as exc:
            SmaCrossover.Params(fast=fast, slow=slow)
        assert f"fast ({fast})" in error_text(exc) and f"slow ({slow})" in error_text(exc)


def test_sizing_is_quantity_or_fraction_not_both() -> None:
    with pytest.raises(ValidationError) as exc:
        SmaCrossover.Params(quantity=5, fraction=0.5)
    assert "quantity" in error_text(exc) and "fraction" in error_text(exc)
    assert SmaCrossover.Params().fraction == 0.95
    assert SmaCrossover.Params().quantity is None
    fixed = SmaCrossover.Params(quantity=5)
    assert (fixed.quantity, fixed.fraction) == (5, None)
    with pytest.raises(ValidationError):
        SmaCrossover.Params(fraction=None)
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ValidationError, match="fraction"):
            DonchianBreakout.Params(fraction=bad)
    with pytest.raises(ValidationError, match="quantity"):
        RsiMeanReversion.Params(quantity=-1)


@pytest.mark.parametrize(
    ("cls", "field"),
    [
        (SmaCrossover, "fast"),
        (SmaCrossover, "slow"),
        (DonchianBreakout, "entry"),
        (DonchianBreakout, "exit"),
        (RsiMeanReversion, "period"),
        (CrossSectionalMomentum, "lookback"),
        (CrossSectionalMomentum, "skip"),
        (CrossSectionalMomentum, "rebalance_every"),
        (CrossSectionalMomentum, "top_n"),
    ],
)
def test_negative_windows_are_rejected(cls: type[Strategy], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        cls.Params(**{field: -3})
    assert exc.value.errors()[0]["loc"] == (field,)


def test_rsi_levels_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match=r"oversold \(60\).*overbought \(40\)"):
        RsiMeanReversion.Params(oversold=60, overbought=40)
    with pytest.raises(ValidationError, match=r"exit_level \(80\).*oversold.*overbought"):
        RsiMeanReversion.Params(exit_level=80)
    assert RsiMeanReversion.Params(exit_level=70).exit_level == 70


def test_params_forbid_unknown_keys_are_frozen_and_documented() -> None:
    with pytest.raises(ValidationError, match="extra"):
        SmaCrossover.Params(fastt=3)
    with pytest.raises(ValidationError, match="direction"):
        SmaCrossover.Params(direction="short_only")
    with pytest.raises(ValidationError):
        CrossSectionalMomentum.Params(gross_fraction=1.2)
    params = SmaCrossover.Params()
    with pytest.raises(ValidationError):
        params.fast = 3  # type: ignore[misc]
    for cls in (SmaCrossover, DonchianBreakout, RsiMeanReversion, CrossSectionalMomentum):
        for name, info in cls.Params.model_fields.items():
            assert info.description, f"{cls.__name__}.Params.{name} has no docstring"


def test_capabilities() -> None:
    for cls in (SmaCrossover, DonchianBreakout, RsiMeanReversion):
        assert cls.capabilities.short_selling and cls.capabilities.multi_symbol
    assert not CrossSectionalMomentum.capabilities.short_selling
    assert CrossSectionalMomentum.capabilities.multi_symbol
    for cls in (SmaCrossover, DonchianBreakout, RsiMeanReversion, CrossSectionalMomentum):
        assert cls.capabilities.modes == {Mode.BACKTEST, Mode.PAPER, Mode.LIVE}


# --- registration -----------------------------------------------------------------------------

NAMES = {
    "sma-crossover": SmaCrossover,
    "donchian-breakout": DonchianBreakout,
    "rsi-mean-reversion": RsiMeanReversion,
    "xs-momentum": CrossSectionalMomentum,
}


def test_entry_point_is_declared() -> None:
    eps = importlib.metadata.entry_points(group="tradeloom")
    ours = [ep for ep in eps if ep.name == "strategies"]
    assert len(ours) == 1
    assert ours[0].value == "tradeloom_strategies.plugin"
    assert ours[0].dist is not None and ours[0].dist.name == "tradeloom-strategies"


def test_plugin_host_lists_the_strategies() -> None:
    try:
        host = PluginHost(env={})
    except Exception:  # the kernel's built-ins may be mid-rewrite; ours do not depend on them
        host = PluginHost(env={}, builtins=False)
    specs = {s.name: s for s in host.registry.specs(Kind.STRATEGY)}
    assert NAMES.keys() <= specs.keys()
    for name, cls in NAMES.items():
        assert specs[name].cls is cls
        assert specs[name].distribution == "tradeloom-strategies"
        assert specs[name].description
    built = specs["sma-crossover"].build({"fast": 3, "slow": 7})
    assert isinstance(built, SmaCrossover) and built.params.slow == 7

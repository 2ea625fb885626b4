"""The risk monitors: protective exits (stop-loss, take-profit, trailing stop), the daily-loss and
drawdown halts, and the VaR rule, on hand-computed bars.

Conventions (see ``helpers.bars``): daily bars from 2024-01-01 unless said otherwise; market
orders, the runner's exits included, fill at the next bar's open; a monitor looks at each bar's
close after the strategies (``trigger = "range"``: its low or high). Runner exits are market
orders of strategy ``risk`` with client order ids ``risk-N``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tradeloom.data import MarketData
from tradeloom.engine.backtest import BacktestEngine, EngineOutput
from tradeloom.execution import SimulatedBroker
from tradeloom.execution.fills import Latency
from tradeloom.model import Bar, Order, OrderStatus, Position, Side
from tradeloom.risk import RiskRule, RiskView
from tradeloom.risk.base import Reject
from tradeloom.risk.control import RiskControl, RiskEvent
from tradeloom.risk.monitors import (
    MaxDailyLoss,
    MaxDrawdown,
    StopLoss,
    TakeProfit,
    TrailingStop,
)
from tradeloom.risk.rules import MaxVar
from tradeloom.risk.sizing import atr
from tradeloom.risk.var import portfolio_var
from tradeloom.strategy import Context, Strategy

from helpers import Scripted, bars

Row = tuple[float, float, float, float]


# --- building runs -------------------------------------------------------------------------------
def named(rule: RiskRule, name: str) -> RiskRule:
    rule.name = name  # what the runner does with the registered name
    return rule


def ts(frame: pd.DataFrame, i: int) -> int:
    return int(frame.index.as_unit("ns").asi8[i])


def mirror(rows: Sequence[Row]) -> list[Row]:
    """The rows reflected around 100 (price p -> 200 - p): a short sees what a long saw."""
    return [(200.0 - o, 200.0 - lo, 200.0 - h, 200.0 - c) for o, h, lo, c in rows]


class Steps(Strategy):
    """Runs ``script[i](ctx)`` once per timestamp (step ``i``), whatever the symbols."""

    def __init__(self, script: Mapping[int, Callable[[Context], Any]]) -> None:
        super().__init__()
        self.script = dict(script)
        self.step = -1

    def on_bars(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        self.step += 1
        action = self.script.get(self.step)
        if action is not None:
            action(ctx)


def engine_run(
    frames: Mapping[str, pd.DataFrame] | pd.DataFrame,
    strategy: Strategy,
    control: RiskControl,
    *,
    broker: SimulatedBroker | None = None,
    cash: float = 10_000.0,
) -> EngineOutput:
    if isinstance(frames, pd.DataFrame):
        frames = {"X": frames}
    engine = BacktestEngine(
        MarketData(dict(frames)), [("s", strategy)], broker or SimulatedBroker(), control,
        initial_cash=cash, currency="USD",
    )  # fmt: skip
    return engine.run()


def protect(
    rows: Sequence[Row],
    rules: Sequence[RiskRule],
    script: Mapping[int, Callable[[Context], Any]],
    *,
    broker: SimulatedBroker | None = None,
) -> tuple[EngineOutput, RiskControl, pd.DataFrame]:
    frame = bars(rows)
    control = RiskControl(list(rules))
    return engine_run(frame, Scripted(dict(script)), control, broker=broker), control, frame


def exits(out: EngineOutput) -> list[tuple[str, Side, float, float, int]]:
    """The runner's fills: (client order id, side, quantity, price, bar time)."""
    return [
        (f.client_order_id, f.side, f.quantity, f.price, f.ts)
        for f in out.fills
        if f.strategy_id == "risk"
    ]


def by_id(out: EngineOutput) -> dict[str, Order]:
    return {o.client_order_id: o for o in out.orders}


def buy(qty: float) -> Callable[[Context], Any]:
    return lambda c: c.buy("X", qty)


def sell(qty: float) -> Callable[[Context], Any]:
    return lambda c: c.sell("X", qty)


# --- stop-loss -----------------------------------------------------------------------------------
# Long 10 bought at b0, filled at b1's open (avg 100).
#                open   high   low    close
STOP_ROWS: list[Row] = [
    (100.0, 101.0, 99.0, 100.0),  # b0 buy
    (100.0, 102.0, 97.0, 101.0),  # b1 fill @100; low 97
    (99.0, 100.0, 94.0, 96.0),  # b2 low 94, close 96
    (96.0, 97.0, 95.0, 95.5),  # b3
    (95.0, 96.0, 94.0, 94.9),  # b4 close 94.9
    (93.0, 94.0, 92.0, 93.0),  # b5
    (93.0, 94.0, 92.0, 93.0),  # b6
]


@pytest.mark.parametrize(
    ("params", "level", "exit_bar", "price"),
    [
        ({"pct": 5}, "95", 4, "close 94.9"),  # 100 - 5 %: only b4's close is at or under 95
        ({"pct": 5, "trigger": "range"}, "95", 2, "range 94"),  # b2's low
        ({"amount": 3}, "97", 2, "close 96"),
        ({"amount": 3, "trigger": "range"}, "97", 1, "range 97"),  # b1's low touches 97
    ],
)
@pytest.mark.parametrize("short", [False, True])
def test_stop_loss_level_exit_bar_and_fill(
    params: dict[str, Any], level: str, exit_bar: int, price: str, short: bool
) -> None:
    rows = mirror(STOP_ROWS) if short else STOP_ROWS
    rule = named(StopLoss(**params), "stop-loss")
    out, control, frame = protect(rows, [rule], {0: sell(10) if short else buy(10)})
    fill_open = rows[exit_bar + 1][0]  # the exit fills at the next bar's open
    side = Side.BUY if short else Side.SELL
    assert exits(out) == [("risk-1", side, 10.0, fill_open, ts(frame, exit_bar + 1))]
    if short:  # mirrored: the level and the crossing price are 200 - the long's
        word, value = price.split()
        level, price = f"{200 - float(level):g}", f"{word} {200 - float(value):g}"
    reason = (
        f"{'short' if short else 'long'} 10 X (avg 100): {price} crossed the stop-loss level "
        f"{level}"
    )
    assert control.events == [
        RiskEvent(ts(frame, exit_bar), "exit", "instrument:X", reason, "stop-loss",
                  client_order_id="risk-1")
    ]  # fmt: skip
    assert by_id(out)["risk-1"].created_ts == ts(frame, exit_bar)


# ATR(3) at b4 (Wilder): true ranges 3, 3, 6 (seed 4), then 5: (4 * 2 + 5) / 3 = 13/3.
ATR_ROWS: list[Row] = [
    (100.0, 101.0, 99.0, 100.0),  # b0
    (100.0, 102.0, 99.0, 101.0),  # b1 TR 3
    (101.0, 103.0, 100.0, 102.0),  # b2 TR 3
    (102.0, 104.0, 98.0, 99.0),  # b3 TR 6; buy
    (100.0, 102.0, 97.0, 100.0),  # b4 TR 5; fill @100: level 100 - 1.5 * 13/3 = 93.5
    (99.0, 100.0, 95.0, 95.0),  # b5
    (95.0, 96.0, 92.0, 93.0),  # b6 close 93 <= 93.5
    (92.0, 93.0, 91.0, 92.0),  # b7 exit fills @92
]


def test_stop_loss_atr_multiple() -> None:
    arr = np.array(ATR_ROWS[:5]).T
    assert atr(arr[1], arr[2], arr[3], 3) == pytest.approx(13 / 3, abs=1e-12)
    rule = named(StopLoss(atr_multiple=1.5, atr_window=3), "stop-loss")
    out, control, frame = protect(ATR_ROWS, [rule], {3: buy(10)})
    assert exits(out) == [("risk-1", Side.SELL, 10.0, 92.0, ts(frame, 7))]
    (event,) = control.events
    assert event.reason == "long 10 X (avg 100): close 93 crossed the stop-loss level 93.5"
    assert event.ts == ts(frame, 6)


def test_stop_loss_atr_measured_once_enough_bars() -> None:
    # Entered at b1 (2 bars seen, ATR(3) needs 4). From b3 on the ATR exists; by b6 the price
    # is 40 under the entry, far beyond any ATR distance: the position must be closed.
    rows: list[Row] = [(100.0, 101.0, 99.0, 100.0)] * 4 + [(60.0, 61.0, 59.0, 60.0)] * 4
    rule = named(StopLoss(atr_multiple=1.5, atr_window=3), "stop-loss")
    out, _, _ = protect(rows, [rule], {0: buy(10)})
    assert [e[0] for e in exits(out)] == ["risk-1"]


# --- take-profit ---------------------------------------------------------------------------------
PROFIT_ROWS: list[Row] = [
    (100.0, 101.0, 99.0, 100.0),  # b0 buy
    (100.0, 106.0, 99.0, 101.0),  # b1 fill @100; high 106
    (101.0, 104.5, 100.0, 104.0),  # b2
    (104.0, 106.0, 103.0, 105.0),  # b3 close 105 >= 105
    (106.0, 107.0, 105.0, 106.0),  # b4
    (107.0, 108.0, 106.0, 107.0),  # b5
]


@pytest.mark.parametrize(
    ("params", "level", "exit_bar", "price"),
    [
        ({"pct": 5}, "105", 3, "close 105"),
        ({"pct": 5, "trigger": "range"}, "105", 1, "range 106"),
        ({"amount": 4}, "104", 2, "close 104"),
        ({"amount": 4.5, "trigger": "range"}, "104.5", 1, "range 106"),
    ],
)
@pytest.mark.parametrize("short", [False, True])
def test_take_profit_level_exit_bar_and_fill(
    params: dict[str, Any], level: str, exit_bar: int, price: str, short: bool
) -> None:
    rows = mirror(PROFIT_ROWS) if short else PROFIT_ROWS
    rule = named(TakeProfit(**params), "take-profit")
    out, control, frame = protect(rows, [rule], {0: sell(10) if short else buy(10)})
    side = Side.BUY if short else Side.SELL
    assert exits(out) == [("risk-1", side, 10.0, rows[exit_bar + 1][0], ts(frame, exit_bar + 1))]
    if short:
        word, value = price.split()
        level, price = f"{200 - float(level):g}", f"{word} {200 - float(value):g}"
    (event,) = control.events
    assert (event.ts, event.kind, event.rule) == (ts(frame, exit_bar), "exit", "take-profit")
    assert event.reason == (
        f"{'short' if short else 'long'} 10 X (avg 100): {price} crossed the take-profit level "
        f"{level}"
    )


# --- trailing stop -------------------------------------------------------------------------------
class RecordingTrail(TrailingStop):
    """A trailing stop that records the level it checks each bar."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.levels: list[float] = []

    def _level(self, symbol: str, long: bool, avg: float, distance: float, bar: Bar) -> float:
        level = super()._level(symbol, long, avg, distance, bar)
        self.levels.append(level)
        return level


TRAIL_ROWS: list[Row] = [
    (100.0, 101.0, 99.0, 100.0),  # b0 buy
    (100.0, 102.0, 99.0, 101.0),  # b1 fill @100; best 100 -> level 97; best := 101
    (101.0, 106.0, 100.0, 104.0),  # b2 level 98; best := 104
    (104.0, 104.5, 101.5, 102.0),  # b3 level 101 (a dip: the level stays)
    (102.0, 103.5, 101.5, 103.0),  # b4 level 101 (never loosens)
    (103.0, 103.5, 100.0, 100.5),  # b5 level 101: close 100.5 crosses
    (99.0, 100.0, 98.0, 99.0),  # b6 exit fills @99
    (99.0, 100.0, 98.0, 99.0),  # b7
]


@pytest.mark.parametrize("short", [False, True])
def test_trailing_stop_trails_the_best_close_and_never_loosens(short: bool) -> None:
    rows = mirror(TRAIL_ROWS) if short else TRAIL_ROWS
    rule = named(RecordingTrail(amount=3), "trailing-stop")
    out, control, frame = protect(rows, [rule], {0: sell(10) if short else buy(10)})
    levels = [97.0, 98.0, 101.0, 101.0, 101.0]
    assert rule.levels == ([200.0 - x for x in levels] if short else levels)
    side = Side.BUY if short else Side.SELL
    assert exits(out) == [("risk-1", side, 10.0, rows[6][0], ts(frame, 6))]
    (event,) = control.events
    assert event.ts == ts(frame, 5)
    close, level = (99.5, 99.0) if short else (100.5, 101.0)
    assert event.reason == (
        f"{'short' if short else 'long'} 10 X (avg 100): close {close:g} crossed the "
        f"trailing-stop level {level:g}"
    )


def test_trailing_stop_range_trails_the_high_and_pct_is_of_the_best() -> None:
    # trigger = "range": the best is the highest high; b1 level 97 (best 100), b2 99 (best
    # 102), b3 103 (best 106): b3's low 101.5 crosses it.
    rule = named(RecordingTrail(amount=3, trigger="range"), "trailing-stop")
    out, _, frame = protect(TRAIL_ROWS, [rule], {0: buy(10)})
    assert rule.levels == [97.0, 99.0, 103.0]
    assert exits(out) == [("risk-1", Side.SELL, 10.0, 102.0, ts(frame, 4))]
    # 2 % of the best close: 98 (of 100), 98.98 (of 101), then 101.92 (of 104) until b5's
    # close 100.5 crosses it.
    rule = named(RecordingTrail(pct=2), "trailing-stop")
    out, _, frame = protect(TRAIL_ROWS, [rule], {0: buy(10)})
    assert rule.levels == pytest.approx([98.0, 98.98, 101.92, 101.92, 101.92], abs=1e-12)
    assert exits(out) == [("risk-1", Side.SELL, 10.0, 99.0, ts(frame, 6))]


# --- exits and the strategy's own orders ---------------------------------------------------------
def test_exit_supersedes_the_strategys_working_sell() -> None:
    # The strategy's own take-profit sell (s-2) would sell what the exit sells: canceled first.
    # Its buy limit (s-3, the other side) stays working.
    script = {
        0: buy(10),
        1: lambda c: [c.sell("X", 10, limit=120.0), c.buy("X", 5, limit=50.0)],
    }
    rule = named(StopLoss(pct=5), "stop-loss")
    out, control, frame = protect(STOP_ROWS, [rule], script)
    orders = by_id(out)
    assert (orders["s-2"].status, orders["s-2"].reason, orders["s-2"].updated_ts) == (
        OrderStatus.CANCELED, "superseded by the stop-loss exit", ts(frame, 4),
    )  # fmt: skip
    assert (orders["s-3"].status, orders["s-3"].reason) == (
        OrderStatus.CANCELED, "backtest ended before the order could fill",
    )  # fmt: skip
    assert exits(out) == [("risk-1", Side.SELL, 10.0, 93.0, ts(frame, 5))]
    assert [e.kind for e in control.events] == ["exit"]


def test_no_duplicate_exit_while_one_is_working() -> None:
    # Orders wait two bars (latency): the buy fills at b3's open, the exit sent at b3 only at
    # b6's. Two stops cross at b3, and again at b4 and b5: a single exit.
    rows: list[Row] = [(100.0, 101.0, 99.0, 100.0)] * 3 + [
        (100.0, 100.0, 93.0, 94.0),  # b3 fill @100, close 94
        (94.0, 94.0, 92.0, 93.0),  # b4
        (93.0, 93.0, 91.0, 92.0),  # b5
        (91.0, 92.0, 90.0, 91.0),  # b6 exit fills @91
        (91.0, 92.0, 90.0, 91.0),  # b7
    ]
    broker = SimulatedBroker()
    broker.use_fill_models([Latency(bars=2)])
    rules = [named(StopLoss(pct=5), "stop-loss"), named(StopLoss(amount=5), "hard-stop")]
    out, control, frame = protect(rows, rules, {0: buy(10)}, broker=broker)
    assert exits(out) == [("risk-1", Side.SELL, 10.0, 91.0, ts(frame, 6))]
    assert [(e.kind, e.rule, e.ts) for e in control.events] == [("exit", "stop-loss", ts(frame, 3))]
    assert [o.client_order_id for o in out.orders if o.strategy_id == "risk"] == ["risk-1"]


# --- max daily loss ------------------------------------------------------------------------------
# Six-hour bars, four a day. Long 50 X bought at b0, filled at b1's open (100): equity is
# 5000 + 50 × close from b1. Day 1 marks: 10000, 9900, 10250, 10200 (the reference of day 2 is
# its last mark, 10200, not the peak 10250). Day 2: 10100, 10000 (a loss of exactly 200), 9950
# (250: the breach), 9900. Day 3: 9850, 9800, 9800, 9800.
DAILY_CLOSES = [100.0, 98.0, 105.0, 104.0, 102.0, 100.0, 99.0, 98.0, 97.0, 96.0, 96.0, 96.0]


def daily_frame(closes: Sequence[float] = DAILY_CLOSES) -> pd.DataFrame:
    rows = [(100.0 if i == 1 else c, max(c, 100.0) + 1, min(c, 100.0) - 1, c)
            for i, c in enumerate(closes)]  # fmt: skip
    return bars(rows, freq="6h")


def daily_loss(**params: Any) -> RiskRule:
    return named(MaxDailyLoss(**params), "max-daily-loss")


@pytest.mark.parametrize(
    ("params", "reason", "limit", "observed"),
    [
        ({"max_loss": 200}, "daily loss over the limit", 200.0, 250.0),
        ({"max_loss_pct": 2}, "daily loss % over the limit", 2.0, 250.0 / 10_200 * 100),
        ({"max_loss": 1000, "max_loss_pct": 2}, "daily loss % over the limit", 2.0, 250 / 102),
    ],
)
def test_max_daily_loss_halts_within_the_breaching_bar(
    params: dict[str, Any], reason: str, limit: float, observed: float
) -> None:
    frame = daily_frame()
    s = Scripted(
        {0: buy(50), 2: lambda c: c.buy("X", 1, limit=50.0), 7: buy(1)}
    )  # s-2 working; s-3 after the halt
    control = RiskControl([daily_loss(**params)])
    out = engine_run(frame, s, control)
    event, refusal = control.events
    assert (refusal.kind, refusal.client_order_id, refusal.ts) == ("reject", "s-3", ts(frame, 7))
    assert (event.ts, event.kind, event.scope, event.state, event.rule, event.by) == (
        ts(frame, 6), "state", "global", "halted", "max-daily-loss", "rule",
    )  # fmt: skip
    assert event.reason == reason
    assert event.limit == limit
    assert event.observed == pytest.approx(observed, rel=1e-12)
    orders = by_id(out)
    assert (orders["s-2"].status, orders["s-2"].reason, orders["s-2"].updated_ts) == (
        OrderStatus.CANCELED, f"global halted: {reason}", ts(frame, 6),
    )  # fmt: skip
    assert (orders["s-3"].status, orders["s-3"].reason) == (
        OrderStatus.REJECTED, f"risk rule trading-state: global is halted ({reason})",
    )  # fmt: skip
    assert exits(out) == []  # no flatten by default


def test_max_daily_loss_without_cancel_keeps_working_orders() -> None:
    frame = daily_frame()
    s = Scripted({0: buy(50), 2: lambda c: c.buy("X", 1, limit=50.0)})
    control = RiskControl([daily_loss(max_loss=200, cancel_working=False)])
    out = engine_run(frame, s, control)
    assert [e.ts for e in control.events] == [ts(frame, 6)]
    assert by_id(out)["s-2"].reason == "backtest ended before the order could fill"


def test_max_daily_loss_flatten_closes_every_position() -> None:
    # Long 50 X and short 20 Y (flat at 50: equity as in the single-symbol run).
    frames = {"X": daily_frame(), "Y": bars([(50.0, 51.0, 49.0, 50.0)] * 12, freq="6h")}
    s = Steps({0: lambda c: [c.buy("X", 50), c.sell("Y", 20)]})
    control = RiskControl([daily_loss(max_loss=200, flatten=True)])
    out = engine_run(frames, s, control)
    assert exits(out) == [
        ("risk-1", Side.SELL, 50.0, 98.0, ts(frames["X"], 7)),
        ("risk-2", Side.BUY, 20.0, 50.0, ts(frames["X"], 7)),
    ]
    reason = "global halted: daily loss over the limit"
    assert [(e.kind, e.scope, e.rule, e.client_order_id, e.by) for e in control.events] == [
        ("state", "global", "max-daily-loss", "", "rule"),
        ("exit", "global", "flatten", "risk-1", "runner"),
        ("exit", "global", "flatten", "risk-2", "runner"),
    ]
    assert {e.reason for e in control.events[1:]} == {reason}
    qty: dict[str, float] = {}
    for f in out.fills:
        qty[f.symbol] = qty.get(f.symbol, 0.0) + f.signed_quantity
    assert qty == {"X": 0.0, "Y": 0.0}


@pytest.mark.parametrize(
    ("reset", "expected"),
    [
        # From the resume's equity (9900): no loss at b7; day 3 measures from 9900 (max 100).
        (True, [("halted", 6, 250.0, "rule"), ("active", 7, None, "operator")]),
        # From the original 10200: still 300 down at b7, halted again at once.
        (
            False,
            [
                ("halted", 6, 250.0, "rule"),
                ("active", 7, None, "operator"),
                ("halted", 7, 300.0, "rule"),
            ],
        ),
    ],
)
def test_max_daily_loss_reset_on_resume(reset: bool, expected: list[tuple[Any, ...]]) -> None:
    frame = daily_frame()
    control = RiskControl([daily_loss(max_loss=200, reset_on_resume=reset)])
    control.schedule(ts(frame, 7), lambda c: c.resume(reason="checked"))
    engine_run(frame, Scripted({0: buy(50)}), control)
    got = [(e.state, e.ts, e.observed, e.by) for e in control.events]
    assert got == [(st, ts(frame, i), obs, by) for st, i, obs, by in expected]


# --- max drawdown --------------------------------------------------------------------------------
# Long 50 X filled at b1's open (100): equity 5000 + 50 × close. Marks 10000, 10100, 10500
# (peak), 10200 (2.857 %), 9950 (550 / 10500 = 5.238 %: over 5 %).
DRAWDOWN_ROWS: list[Row] = [
    (100.0, 101.0, 99.0, 100.0),
    (100.0, 103.0, 99.0, 102.0),
    (102.0, 111.0, 101.0, 110.0),
    (110.0, 111.0, 103.0, 104.0),
    (104.0, 105.0, 98.0, 99.0),  # b4 breach
    (98.0, 99.0, 97.0, 98.0),  # b5 flatten fills @98
    (98.0, 99.0, 97.0, 98.0),
]


@pytest.mark.parametrize("flatten", [False, True])
def test_max_drawdown_halts_at_the_breaching_bar(flatten: bool) -> None:
    rule = named(MaxDrawdown(max_drawdown_pct=5, flatten=flatten), "max-drawdown")
    out, control, frame = protect(DRAWDOWN_ROWS, [rule], {0: buy(50), 5: buy(1)})
    state = control.events[0]
    assert (state.ts, state.kind, state.scope, state.state, state.rule, state.limit) == (
        ts(frame, 4), "state", "global", "halted", "max-drawdown", 5.0,
    )  # fmt: skip
    assert state.observed == pytest.approx(550 / 10_500 * 100, rel=1e-12)
    assert state.reason == "drawdown % over the limit"
    assert by_id(out)["s-2"].reason == (
        "risk rule trading-state: global is halted (drawdown % over the limit)"
    )
    if flatten:
        assert exits(out) == [("risk-1", Side.SELL, 50.0, 98.0, ts(frame, 5))]
        assert [e.kind for e in control.events] == ["state", "exit", "reject"]
    else:
        assert exits(out) == []
        assert [e.kind for e in control.events] == ["state", "reject"]


def test_max_drawdown_peak_resets_on_resume() -> None:
    # Resumed at b5 (equity 9900): the new peak; b6 (9900) is no drawdown from it.
    rule = named(MaxDrawdown(max_drawdown_pct=5), "max-drawdown")
    frame = bars(DRAWDOWN_ROWS)
    control = RiskControl([rule])
    control.schedule(ts(frame, 5), lambda c: c.resume())
    engine_run(frame, Scripted({0: buy(50)}), control)
    assert [(e.state, e.ts) for e in control.events] == [
        ("halted", ts(frame, 4)),
        ("active", ts(frame, 5)),
    ]


# --- max VaR -------------------------------------------------------------------------------------
STEPS = [1.0, -2.0, 0.5, 3.0, -1.0, -0.5, 2.0, -3.0, 1.5, 0.25, -1.25, 2.5, -0.75, 0.5, -2.5,
         1.0, 3.5, -1.5, 0.75, -0.25, 2.0, -2.25, 1.25, -0.5, 1.75, -3.5, 0.5, 1.0, -1.0]  # fmt: skip
CLOSES = np.concatenate(([100.0], 100.0 + np.cumsum(STEPS)))  # 30 closes
Y_CLOSES = 50.0 + 0.5 * np.cos(np.arange(30.0)) + np.linspace(0.0, 2.0, 30)


def max_var(**params: Any) -> RiskRule:
    return named(MaxVar(**params), "max-var")


@pytest.mark.parametrize("method", ["historical", "parametric"])
def test_max_var_reject_observes_the_portfolio_var_in_a_run(method: str) -> None:
    # At b25 the rule sees the last window + 1 = 21 closes (b5..b25).
    frame = bars([(c, c + 1.0, c - 1.0, c) for c in CLOSES])
    rule = max_var(max_var=1.0, method=method, confidence=0.95, window=20)
    s = Scripted({3: buy(10), 25: buy(10)})
    control = RiskControl([rule])
    out = engine_run(frame, s, control)
    expected = portfolio_var(
        {"X": CLOSES[5:26]},
        {"X": 10.0},
        method=method,
        confidence=0.95,  # type: ignore[arg-type]
    ).var
    assert expected > 1.0
    early, late = control.events
    assert early.reason == f"only 3 one-bar P&Ls seen; the {method} VaR at 0.95 needs 20"
    assert (early.ts, early.client_order_id, early.limit) == (ts(frame, 3), "s-1", None)
    assert (late.ts, late.client_order_id, late.rule, late.limit) == (
        ts(frame, 25), "s-2", "max-var", 1.0,
    )  # fmt: skip
    assert late.observed == pytest.approx(expected, abs=1e-9)
    assert late.reason.startswith(f"{method} VaR (0.95, 1 bar(s)) would exceed the limit")
    assert out.fills == []


def var_view(
    positions: Mapping[str, float], closes: Mapping[str, np.ndarray], equity: float = 1e4
) -> RiskView:
    def history(symbol: str, n: int) -> np.ndarray:
        c = closes[symbol][-n:]
        return np.vstack([c, c + 1.0, c - 1.0, c, np.full_like(c, 1000.0)])

    return RiskView(
        ts=0, cash=equity, equity=equity,
        positions={s: Position(s, q, 100.0) for s, q in positions.items()}, open_orders=[],
        last_prices={s: float(c[-1]) for s, c in closes.items()}, bars=history,
    )  # fmt: skip


@pytest.mark.parametrize("method", ["historical", "parametric"])
def test_max_var_observed_equals_portfolio_var_on_the_holdings(method: str) -> None:
    closes = {"X": CLOSES, "Y": Y_CLOSES}
    v = var_view({"X": 10.0, "Y": -40.0}, closes)
    control = RiskControl([max_var(max_var=1.0, method=method, confidence=0.95, window=25)])
    verdict = control.check(Order("o-1", "X", Side.BUY, 10.0, strategy_id="s"), v)
    prices = {"X": CLOSES[-26:], "Y": Y_CLOSES[-26:]}
    after = portfolio_var(prices, {"X": 20.0, "Y": -40.0}, method=method, confidence=0.95)  # type: ignore[arg-type]
    before = portfolio_var(prices, {"X": 10.0, "Y": -40.0}, method=method, confidence=0.95)  # type: ignore[arg-type]
    assert after.var > before.var
    assert isinstance(verdict, Reject) and verdict.rule == "max-var" and verdict.limit == 1.0
    assert verdict.observed == pytest.approx(after.var, abs=1e-9)
    assert f"(incremental VaR {after.var - before.var:.6g})" in verdict.reason
    # As a percent of equity: the same VaR over 10,000.
    control = RiskControl([max_var(max_var_pct=0.01, method=method, confidence=0.95, window=25)])
    verdict = control.check(Order("o-2", "X", Side.BUY, 10.0, strategy_id="s"), v)
    assert verdict is not None
    assert verdict.observed == pytest.approx(after.var / 1e4 * 100, abs=1e-9)


def test_max_var_reducing_orders_pass() -> None:
    rule = max_var(max_var=1.0, confidence=0.95, window=20)
    control = RiskControl([rule])
    long10 = var_view({"X": 10.0}, {"X": CLOSES})
    assert control.check(Order("o-1", "X", Side.SELL, 4.0, strategy_id="s"), long10) is None
    assert control.check(Order("o-2", "X", Side.SELL, 10.0, strategy_id="s"), long10) is None
    assert control.check(Order("o-3", "X", Side.BUY, 1.0, strategy_id="s"), long10) is not None
    # Too few observations: reducing passes without an estimate, adding is refused.
    short = var_view({"X": 10.0}, {"X": CLOSES[:6]})
    assert control.check(Order("o-4", "X", Side.SELL, 4.0, strategy_id="s"), short) is None
    assert control.check(Order("o-5", "X", Side.BUY, 1.0, strategy_id="s"), short) == Reject(
        "max-var", "only 5 one-bar P&Ls seen; the historical VaR at 0.95 needs 20"
    )
    assert [e.client_order_id for e in control.events] == ["o-3", "o-5"]


def test_max_var_defaults_refuse_rather_than_raise_with_a_short_history() -> None:
    control = RiskControl([max_var(max_var=1000.0)])
    verdict = control.check(
        Order("o-1", "X", Side.BUY, 1.0, strategy_id="s"), var_view({}, {"X": CLOSES})
    )
    assert verdict == Reject(
        "max-var", "only 29 one-bar P&Ls seen; the historical VaR at 0.99 needs 100"
    )


def test_max_var_window_too_short_for_a_historical_var_is_a_params_error() -> None:
    with pytest.raises(ValidationError, match="raise it to at least 100"):
        MaxVar.Params(max_var=1.0, window=50)
    MaxVar.Params(max_var=1.0, window=50, method="parametric")  # fine: no tail to fill


# --- params --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [StopLoss, TakeProfit, TrailingStop])
@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({}, ""),
        ({"pct": 5, "amount": 2}, " (got pct, amount)"),
        ({"pct": 5, "atr_multiple": 2}, " (got pct, atr_multiple)"),
        ({"pct": 5, "atr_multiple": 2, "amount": 1}, " (got pct, atr_multiple, amount)"),
    ],
)
def test_exit_params_need_exactly_one_distance(
    kind: type[RiskRule], params: dict[str, Any], detail: str
) -> None:
    with pytest.raises(ValidationError, match="exactly one") as info:
        kind(**params)
    assert f"give exactly one of pct, atr_multiple or amount{detail}" in str(info.value)


def test_limit_params_validation() -> None:
    with pytest.raises(ValidationError, match="give max_loss, max_loss_pct or both"):
        MaxDailyLoss()
    with pytest.raises(ValidationError, match="give max_var, max_var_pct or both"):
        MaxVar()
    with pytest.raises(ValidationError):
        MaxDrawdown(max_drawdown_pct=100)
    with pytest.raises(ValidationError):
        StopLoss(pct=-1)

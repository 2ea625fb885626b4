"""The risk control: scopes, trading states (REDUCING, HALTED), the kill switch and its state file
(KS-01, KS-02, KS-03), the Knight replay (a strategy re-sending on every fill, stopped by the
repeated-execution guard), operator rule updates, and the risk events of a backtest result.

The bars are daily from 2024-01-01 (``helpers.bars``); market orders fill at the next bar's open.
A scheduled action (``control.schedule``) runs after the strategies of the first bar at or after
its time, so orders of that bar were sent before it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

import tradeloom
from tradeloom.data import MarketData
from tradeloom.engine.backtest import BacktestEngine, EngineOutput
from tradeloom.errors import ConfigError, TradeloomError
from tradeloom.execution import SimulatedBroker
from tradeloom.model import Bar, Fill, Order, OrderStatus, OrderType, Position, Side
from tradeloom.risk import RiskRule, RiskView
from tradeloom.risk.base import Reject
from tradeloom.risk.control import (
    KillReport,
    RiskControl,
    RiskEvent,
    Scope,
    TradingState,
)
from tradeloom.risk.monitors import RepeatedExecutionGuard
from tradeloom.risk.rules import MaxOrderQuantity, MessageThrottle
from tradeloom.strategy import Context, Strategy

from helpers import Scripted, bars

ROW = (100.0, 101.0, 99.0, 100.0)
HALTED_BY_KILL = "risk rule trading-state: global is halted (operator kill)"


# --- building runs -------------------------------------------------------------------------------
def named(rule: RiskRule, name: str) -> RiskRule:
    rule.name = name  # what the runner does with the registered name
    return rule


def ts(frame: pd.DataFrame, i: int) -> int:
    return int(frame.index.as_unit("ns").asi8[i])


class Steps(Strategy):
    """Runs ``script[i](ctx)`` once per timestamp (step ``i``, 0-based), whatever the symbols;
    ``every`` (if given) runs at every step after the script's action."""

    def __init__(
        self,
        script: Mapping[int, Callable[[Context], Any]] | None = None,
        every: Callable[[Context], Any] | None = None,
    ) -> None:
        super().__init__()
        self.script = dict(script or {})
        self.every = every
        self.step = -1
        self.updates: list[Any] = []
        self.seen: dict[int, Any] = {}

    def on_bars(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        self.step += 1
        action = self.script.get(self.step)
        if action is not None:
            self.seen[self.step] = action(ctx)
        if self.every is not None:
            self.every(ctx)

    def on_order(self, ctx: Context, update: Any) -> None:
        self.updates.append(update)


def engine_run(
    frames: Mapping[str, pd.DataFrame] | pd.DataFrame,
    strategies: Sequence[tuple[str, Strategy]],
    control: RiskControl,
    *,
    broker: SimulatedBroker | None = None,
    cash: float = 10_000.0,
) -> EngineOutput:
    if isinstance(frames, pd.DataFrame):
        frames = {"X": frames}
    engine = BacktestEngine(
        MarketData(dict(frames)), list(strategies), broker or SimulatedBroker(), control,
        initial_cash=cash, currency="USD",
    )  # fmt: skip
    return engine.run()


def by_id(out: EngineOutput) -> dict[str, Order]:
    return {o.client_order_id: o for o in out.orders}


def rejected(out: EngineOutput) -> dict[str, str]:
    return {o.client_order_id: o.reason for o in out.orders if o.status is OrderStatus.REJECTED}


def order(
    side: Side, qty: float, symbol: str = "X", sid: str = "s", coid: str = "o-1", **kw: Any
) -> Order:
    return Order(coid, symbol, side, qty, strategy_id=sid, **kw)


def view(positions: Mapping[str, float], open_orders: Sequence[Order] = ()) -> RiskView:
    return RiskView(
        ts=0, cash=1e4, equity=1e4,
        positions={s: Position(s, q, 100.0) for s, q in positions.items()},
        open_orders=list(open_orders), last_prices=dict.fromkeys(positions, 100.0),
    )  # fmt: skip


# --- scopes --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "level", "key"),
    [
        ("global", "global", ""),
        ("strategy:s1", "strategy", "s1"),
        ("instrument:X", "instrument", "X"),
        ("instrument:BRK:A", "instrument", "BRK:A"),  # only the first colon separates
    ],
)
def test_scope_parse_and_str_round_trip(text: str, level: str, key: str) -> None:
    scope = Scope.parse(text)
    assert (scope.level, scope.key) == (level, key)
    assert str(scope) == text
    assert Scope.parse(str(scope)) == scope
    assert Scope.parse(scope) is scope


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "account",
            "scope: unknown risk scope level 'account'; use global, strategy or instrument",
        ),
        ("", "scope: unknown risk scope level ''; use global, strategy or instrument"),
        (
            "strategy",
            "scope: risk scope 'strategy' needs a key: write 'global', 'strategy:ID' or "
            "'instrument:SYMBOL'",
        ),
        (
            "instrument:",
            "scope: risk scope 'instrument' needs a key: write 'global', 'strategy:ID' or "
            "'instrument:SYMBOL'",
        ),
        (
            "global:all",
            "scope: risk scope 'global' takes no key: write 'global', 'strategy:ID' or "
            "'instrument:SYMBOL'",
        ),
    ],
)
def test_bad_scope_is_a_config_error_naming_the_fix(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Scope.parse(text)
    assert str(info.value) == message
    assert info.value.path == "scope"


def test_scope_covers() -> None:
    mine, other = order(Side.BUY, 1), order(Side.BUY, 1, symbol="Y", sid="t")
    assert Scope.parse("global").covers(mine) and Scope.parse("global").covers(other)
    assert Scope.parse("strategy:s").covers(mine) and not Scope.parse("strategy:s").covers(other)
    assert Scope.parse("instrument:X").covers(mine)
    assert not Scope.parse("instrument:X").covers(other)


# --- trading states ------------------------------------------------------------------------------
def test_reducing_at_instrument_scope_on_a_view() -> None:
    control = RiskControl()
    control.set_state("instrument:X", "reducing", "X under review")
    assert control.states == {"instrument:X": TradingState.REDUCING}
    long10 = view({"X": 10.0, "Y": 5.0})
    refusal = Reject("trading-state", "instrument:X is reducing-only and the order adds risk")
    assert control.check(order(Side.SELL, 4), long10) is None
    assert control.check(order(Side.SELL, 10), long10) is None  # to flat: still reducing
    assert control.check(order(Side.SELL, 11), long10) == refusal  # would flip the long
    assert control.check(order(Side.BUY, 1), long10) == refusal
    assert control.check(order(Side.BUY, 1, sid="t"), long10) == refusal  # every strategy
    # With a working sell of 6, only 4 more can be sold without going beyond zero.
    working = view({"X": 10.0}, [order(Side.SELL, 6, coid="w-1", status=OrderStatus.ACCEPTED)])
    assert control.check(order(Side.SELL, 4), working) is None
    assert control.check(order(Side.SELL, 5), working) == refusal
    # Other symbols are unaffected, whatever the order does.
    assert control.check(order(Side.BUY, 100, symbol="Y"), long10) is None
    assert control.check(order(Side.SELL, 100, symbol="Y", sid="t"), long10) is None
    # A flat symbol: nothing to reduce, so nothing passes.
    assert control.check(order(Side.SELL, 1), view({"Y": 5.0})) == refusal
    assert [e.kind for e in control.events] == ["state"] + ["reject"] * 5
    assert control.events[0] == RiskEvent(
        0, "state", "instrument:X", "X under review", state="reducing", by="operator"
    )
    assert control.events[1] == RiskEvent(
        0, "reject", "strategy:s", refusal.reason, "trading-state", client_order_id="o-1"
    )


def test_reducing_at_instrument_scope_in_a_two_symbol_run() -> None:
    # KS-03. Both strategies' orders in X are held to reducing; Y is unaffected.
    frames = {"X": bars([ROW] * 5), "Y": bars([ROW] * 5)}
    s = Steps(
        {
            0: lambda c: [c.buy("X", 10), c.buy("Y", 10)],
            2: lambda c: [
                c.sell("X", 4),  # s-3 passes
                c.buy("X", 1),  # s-4 refused: adds
                c.sell("X", 7),  # s-5 refused: with s-3 working it would flip the long
                c.sell("X", 6),  # s-6 passes: s-3 and s-6 take X to exactly zero
                c.buy("Y", 5),  # s-7
                c.sell("Y", 12),  # s-8: flips Y, unaffected
            ],
        }
    )
    t = Steps({2: lambda c: [c.sell("X", 1), c.buy("Y", 1)]})  # t-1 refused (X), t-2 passes
    control = RiskControl()
    control.schedule(ts(frames["X"], 1), lambda c: c.set_state("instrument:X", "reducing", "why"))
    out = engine_run(frames, [("s", s), ("t", t)], control)
    refusal = "risk rule trading-state: instrument:X is reducing-only and the order adds risk"
    assert rejected(out) == {"s-4": refusal, "s-5": refusal, "t-1": refusal}
    filled = {o.client_order_id for o in out.orders if o.status is OrderStatus.FILLED}
    assert filled == {"s-1", "s-2", "s-3", "s-6", "s-7", "s-8", "t-2"}
    qty: dict[str, float] = {}
    for f in out.fills:
        qty[f.symbol] = qty.get(f.symbol, 0.0) + f.signed_quantity
    assert qty == {"X": 0.0, "Y": 4.0}


def test_strictest_state_wins() -> None:
    control = RiskControl()
    mine = order(Side.BUY, 1)
    assert control.state_of(mine) == (TradingState.ACTIVE, None)
    control.set_state("global", "reducing", "global review")
    assert control.state_of(mine) == (TradingState.REDUCING, Scope("global"))
    control.set_state("instrument:X", "halted", "X suspended")
    assert control.state_of(mine) == (TradingState.HALTED, Scope("instrument", "X"))
    control.set_state("strategy:s", "halted", "s broken")
    # Equal ranks: the first scope checked (strategy before instrument) names the halt.
    assert control.state_of(mine) == (TradingState.HALTED, Scope("strategy", "s"))
    other = order(Side.BUY, 1, symbol="Y", sid="t")
    assert control.state_of(other) == (TradingState.REDUCING, Scope("global"))
    control.resume("strategy:s")
    control.resume("instrument:X")
    assert control.state_of(mine) == (TradingState.REDUCING, Scope("global"))
    long10 = view({"X": 10.0, "Y": 0.0})
    assert control.check(order(Side.SELL, 3), long10) is None
    assert control.check(order(Side.BUY, 1, symbol="Y"), long10) == Reject(
        "trading-state", "global is reducing-only and the order adds risk"
    )
    assert control.states == {"global": TradingState.REDUCING}


def test_only_an_operator_lifts_a_state() -> None:
    control = RiskControl()
    control.halt("strategy:s", "looping", rule="guard")
    with pytest.raises(TradeloomError, match="rule tried to move strategy:s from halted to active"):
        control.set_state("strategy:s", "active", "self-healing", by="rule")
    with pytest.raises(TradeloomError, match="only an operator can lift"):
        control.set_state("strategy:s", "reducing", "partial lift", by="rule")
    assert control.state("strategy:s") is TradingState.HALTED
    control.resume("strategy:s", "checked by the desk")
    assert control.state("strategy:s") is TradingState.ACTIVE
    assert [(e.state, e.by, e.reason) for e in control.events] == [
        ("halted", "rule", "looping"),
        ("active", "operator", "checked by the desk"),
    ]


def test_halted_strategy_refuses_everything_and_cancels_pass() -> None:
    control = RiskControl()
    control.halt("strategy:s", "desk limit", by="operator")
    refusal = Reject("trading-state", "strategy:s is halted (desk limit)")
    long10 = view({"X": 10.0})
    assert control.check(order(Side.BUY, 1), long10) == refusal
    assert control.check(order(Side.SELL, 1), long10) == refusal  # even a reducing order
    assert control.check(order(Side.BUY, 1, sid="t"), long10) is None
    working = order(
        Side.BUY, 1, limit_price=50.0, type=OrderType.LIMIT, status=OrderStatus.ACCEPTED
    )
    assert control.check_cancel(working, long10) is None


def test_halted_strategy_in_a_run_cancels_still_pass() -> None:
    frame = bars([ROW] * 5)
    s = Steps(
        {
            0: lambda c: c.buy("X", 1, limit=50.0),  # s-1, working
            2: lambda c: [c.buy("X", 1), c.sell("X", 1, limit=150.0), c.cancel("s-1")],
        }
    )
    t = Steps({2: lambda c: c.buy("X", 1)})
    # A throttle that counts cancels: the engine then asks the control about every cancel.
    control = RiskControl([named(MessageThrottle(max_per_second=100), "message-throttle")])
    control.schedule(
        ts(frame, 1), lambda c: c.halt("strategy:s", "desk limit", by="operator", cancel=False)
    )
    out = engine_run(frame, [("s", s), ("t", t)], control)
    refusal = "risk rule trading-state: strategy:s is halted (desk limit)"
    assert rejected(out) == {"s-2": refusal, "s-3": refusal}
    orders = by_id(out)
    assert (orders["s-1"].status, orders["s-1"].reason) == (
        OrderStatus.CANCELED,
        "canceled by strategy",
    )
    assert orders["s-1"].updated_ts == ts(frame, 2)
    assert orders["t-1"].status is OrderStatus.FILLED
    assert [(e.kind, e.scope, e.reason) for e in control.events] == [
        ("state", "strategy:s", "desk limit"),
        ("reject", "strategy:s", "strategy:s is halted (desk limit)"),
        ("reject", "strategy:s", "strategy:s is halted (desk limit)"),
    ]


# --- the kill switch -----------------------------------------------------------------------------
class FlakyCancels(SimulatedBroker):
    """A broker whose cancels of some orders fail (a venue timing out)."""

    failing: frozenset[str] = frozenset()

    def cancel(self, client_order_id: str, reason: str = "canceled by strategy") -> None:
        if client_order_id in self.failing:
            raise ConnectionError(f"venue timeout on {client_order_id}")
        super().cancel(client_order_id, reason)


def state_file_content(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_kill_switch_cancels_reports_residuals_and_persists(tmp_path: Path) -> None:
    # KS-01. s-1..s-20 at bar 0 and one more each bar: limit buys at 50, far under every bar.
    # The kill at bar 2 runs after s-22 was sent. Cancels of s-3, s-7 and s-15 fail.
    frame = bars([ROW] * 6)
    s = Steps(
        {0: lambda c: [c.buy("X", 1, limit=50.0) for _ in range(20)],
         3: lambda c: [o.client_order_id for o in c.open_orders()]},
        every=lambda c: c.buy("X", 1, limit=50.0) if c.bar_count("X") > 1 else None,
    )  # fmt: skip
    broker = FlakyCancels()
    broker.failing = frozenset({"s-3", "s-7", "s-15"})
    path = tmp_path / "state" / "risk.json"
    control = RiskControl(state_file=path)
    assert not path.exists()
    reports: list[KillReport] = []
    kill_ts = ts(frame, 2)
    control.schedule(kill_ts, lambda c: reports.append(c.kill("operator kill")))
    out = engine_run(frame, [("s", s)], control, broker=broker)

    (report,) = reports
    failing = ("s-3", "s-7", "s-15")
    assert report.canceled == tuple(f"s-{i}" for i in range(1, 23) if f"s-{i}" not in failing)
    assert report.residual == tuple((c, f"ConnectionError: venue timeout on {c}") for c in failing)
    assert report.flattened == ()
    # The failed cancels are still working after the kill (listed for the operator).
    assert s.seen[3] == list(failing)
    # Nothing accepted after the kill: the strategy kept trying at bars 3, 4 and 5.
    after = [o for o in out.orders if o.created_ts > kill_ts]
    assert [o.client_order_id for o in after] == ["s-23", "s-24", "s-25"]
    assert all(o.status is OrderStatus.REJECTED and o.reason == HALTED_BY_KILL for o in after)
    orders = by_id(out)
    assert all(orders[c].reason == "kill switch: operator kill" for c in report.canceled)
    assert {orders[c].updated_ts for c in report.canceled} == {kill_ts}
    assert out.fills == []
    kinds = [(e.kind, e.scope, e.state, e.by) for e in control.events]
    assert kinds == [
        ("kill", "global", "halted", "operator"),
        ("alert", "global", "", "runner"),
        *[("reject", "strategy:s", "", "rule")] * 3,
    ]
    assert control.events[0].ts == kill_ts
    assert control.events[1].reason == (
        "kill switch: 3 cancel(s) failed; still working: s-3, s-7, s-15"
    )
    assert state_file_content(path) == {
        "version": 1,
        "states": {
            "global": {
                "state": "halted",
                "since": kill_ts,
                "reason": "operator kill",
                "by": "operator",
            }
        },
    }

    # Restart: a new control on the same file starts HALTED and refuses every order until the
    # operator resumes (scheduled at bar 3: orders from bar 4 on pass).
    restarted = RiskControl(state_file=path)
    assert restarted.state() is TradingState.HALTED
    assert restarted.states == {"global": TradingState.HALTED}
    assert restarted.check(order(Side.BUY, 1), view({})) == Reject(
        "trading-state", "global is halted (operator kill)"
    )
    restarted.events.clear()
    buyer = Steps(every=lambda c: c.buy("X", 1))
    restarted.schedule(ts(frame, 3), lambda c: c.resume(reason="operator cleared the desk"))
    out2 = engine_run(frame, [("s", buyer)], restarted)
    assert rejected(out2) == {f"s-{i}": HALTED_BY_KILL for i in range(1, 5)}
    assert [f.client_order_id for f in out2.fills] == ["s-5"]  # s-6 is still working at the end
    assert restarted.state() is TradingState.ACTIVE
    assert restarted.events[-1] == RiskEvent(
        ts(frame, 3), "state", "global", "operator cleared the desk", state="active", by="operator"
    )
    assert state_file_content(path) == {"version": 1, "states": {}}
    assert RiskControl(state_file=path).states == {}


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"version": 1}',
        '{"version": 1, "states": {"desk:7": {"state": "halted", "since": 0, "reason": "r", '
        '"by": "operator"}}}',
        '{"version": 1, "states": {"global": {"state": "paused", "since": 0, "reason": "r", '
        '"by": "operator"}}}',
        '{"version": 1, "states": {"global": {"state": "halted"}}}',
        "[]",
    ],
)
def test_corrupt_state_file_is_a_config_error_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "risk-state.json"
    path.write_text(content)
    with pytest.raises(
        ConfigError, match=re.escape(f"risk state file {path} is unreadable")
    ) as info:
        RiskControl(state_file=path)
    assert info.value.path == "risk_state"
    assert "repair it, or delete it only if an operator has confirmed" in str(info.value)


def test_kill_mid_run_while_flooding_accepts_nothing_after(tmp_path: Path) -> None:
    # KS-02. Five market buys every bar; the kill (with flatten) at bar 5.
    frame = bars([(100.0 + i, 101.0 + i, 99.0 + i, 100.0 + i) for i in range(10)])
    s = Steps(every=lambda c: [c.buy("X", 1) for _ in range(5)])
    control = RiskControl(state_file=tmp_path / "risk.json")
    kill_ts = ts(frame, 5)
    reports: list[KillReport] = []
    control.schedule(kill_ts, lambda c: reports.append(c.kill("flood", flatten=True)))
    out = engine_run(frame, [("s", s)], control)
    (report,) = reports
    assert (control.events[0].kind, control.events[0].ts) == ("kill", kill_ts)
    created_after = [o for o in out.orders if o.created_ts > kill_ts and o.strategy_id == "s"]
    assert len(created_after) == 4 * 5  # bars 6-9
    assert all(o.status is OrderStatus.REJECTED for o in created_after)
    assert [
        o for o in created_after if o.reason != "risk rule trading-state: global is halted (flood)"
    ] == []
    # The kill bar's own orders were sent before it ran: canceled, never filled.
    assert report.canceled == tuple(f"s-{i}" for i in range(26, 31))
    assert report.residual == ()
    assert report.flattened == ("risk-1",)
    # Bars 1-5 filled the orders of bars 0-4 (25 units); the flatten sold them at bar 6's open.
    strategy_fills = [f for f in out.fills if f.strategy_id == "s"]
    assert len(strategy_fills) == 25 and max(f.ts for f in strategy_fills) == kill_ts
    (exit_fill,) = [f for f in out.fills if f.strategy_id == "risk"]
    assert (exit_fill.side, exit_fill.quantity, exit_fill.price, exit_fill.ts) == (
        Side.SELL, 25.0, 106.0, ts(frame, 6)
    )  # fmt: skip


# --- Knight replay (acceptance) ------------------------------------------------------------------
class Knight(Strategy):
    """The runaway loop: a buy re-sent on every fill, and a buy whenever none is working."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if not ctx.open_orders():
            ctx.buy("X", 1)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        ctx.buy("X", 1)


def knight_run(window_seconds: float, resume_at: int | None) -> tuple[EngineOutput, RiskControl]:
    frame = bars([ROW] * 20)
    guard = named(
        RepeatedExecutionGuard(max_fills=3, window_seconds=window_seconds),
        "repeated-execution-guard",
    )
    control = RiskControl([guard])
    if resume_at is not None:
        control.schedule(ts(frame, resume_at), lambda c: c.resume("strategy:s", "fixed"))
    return engine_run(frame, [("s", Knight())], control), control


def fill_bars(out: EngineOutput) -> list[int]:
    start = int(pd.Timestamp("2024-01-01", tz="UTC").value)
    return [(f.ts - start) // 86_400_000_000_000 for f in out.fills]


def test_knight_replay_stopped_after_n_executions() -> None:
    out, control = knight_run(window_seconds=5 * 86_400, resume_at=None)
    # Fills at bars 1, 2, 3; the third halts the strategy before its on_fill re-sends.
    assert fill_bars(out) == [1, 2, 3]
    refusals = rejected(out)
    assert len(refusals) == 18  # the re-send at bar 3 and one buy at each of bars 3-19
    assert set(refusals.values()) == {
        "risk rule trading-state: strategy:s is halted (3 executions within 432,000 s: "
        "strategy disabled until an operator re-enables it)"
    }
    (state,) = [e for e in control.events if e.kind == "state"]
    assert (state.scope, state.state, state.rule, state.limit, state.observed, state.by) == (
        "strategy:s", "halted", "repeated-execution-guard", 3, 3, "rule",
    )  # fmt: skip
    assert state.ts == int(pd.Timestamp("2024-01-04", tz="UTC").value)
    assert control.state("strategy:s") is TradingState.HALTED


def test_knight_replay_resumed_trades_again_and_is_stopped_again() -> None:
    out, control = knight_run(window_seconds=5 * 86_400, resume_at=8)
    # Resumed after bar 8's callbacks: a buy at bar 9, then fills at 10, 11, 12 and the halt.
    assert fill_bars(out) == [1, 2, 3, 10, 11, 12]
    states = [(e.scope, e.state, e.by) for e in control.events if e.kind == "state"]
    assert states == [
        ("strategy:s", "halted", "rule"),
        ("strategy:s", "active", "operator"),
        ("strategy:s", "halted", "rule"),
    ]
    assert control.state("strategy:s") is TradingState.HALTED


def test_knight_replay_slow_fills_outside_the_window_are_not_stopped() -> None:
    # One fill a day, a 1.5-day window: never more than 2 in it.
    out, control = knight_run(window_seconds=1.5 * 86_400, resume_at=None)
    assert fill_bars(out) == list(range(1, 20))
    assert control.events == []


# --- operator actions ----------------------------------------------------------------------------
def test_update_rule_is_an_operator_event() -> None:
    rule = named(MaxOrderQuantity(max_quantity=10), "max-qty")
    control = RiskControl([rule])
    assert control.check(order(Side.BUY, 15), view({})) == Reject(
        "max-qty", "order quantity over the limit", 10, 15
    )
    assert control.update_rule("max-qty", "raised for the open", max_quantity=20) is rule
    assert rule.params.max_quantity == 20
    assert control.check(order(Side.BUY, 15), view({})) is None
    assert control.events[-1] == RiskEvent(
        0, "operator", "global", "max-qty limits changed: {'max_quantity': 20} (raised for the open)",
        "max-qty", by="operator",
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"^no risk rule named 'max-quantity'; rules: max-qty$"):
        control.update_rule("max-quantity", "typo", max_quantity=5)
    with pytest.raises(ValidationError):
        control.update_rule("max-qty", "bad", max_quantity=-1)
    assert rule.params.max_quantity == 20
    assert len(control.events) == 2


def test_risk_events_in_the_backtest_result() -> None:
    frame = bars([ROW] * 6)
    control = RiskControl([named(MaxOrderQuantity(max_quantity=1), "max-order-quantity")])
    control.schedule(ts(frame, 2), lambda c: c.kill("desk kill"))
    control.schedule(ts(frame, 4), lambda c: c.resume(reason="desk resume"))
    strategy = Scripted({0: lambda c: c.buy("X", 5), 3: lambda c: c.buy("X", 1)})
    result = tradeloom.run_backtest(
        MarketData({"X": frame}), strategy, risk=control, initial_cash=10_000
    )
    events = result.risk_events
    assert list(events["kind"]) == ["reject", "kill", "reject", "state"]
    assert list(events["scope"]) == ["strategy:scripted", "global", "strategy:scripted", "global"]
    assert list(events["state"]) == ["", "halted", "", "active"]
    assert list(events["rule"]) == ["max-order-quantity", "", "trading-state", ""]
    assert list(events["by"]) == ["rule", "operator", "rule", "operator"]
    assert list(events["client_order_id"]) == ["scripted-1", "", "scripted-2", ""]
    assert events["limit"].iloc[0] == 1.0 and events["observed"].iloc[0] == 5.0
    assert events["limit"].iloc[1:].isna().all() and events["observed"].iloc[1:].isna().all()
    assert list(events["time"]) == [frame.index[i] for i in (0, 2, 3, 4)]
    assert list(events["reason"]) == [
        "order quantity over the limit", "desk kill", "global is halted (desk kill)",
        "desk resume",
    ]  # fmt: skip

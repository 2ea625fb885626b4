"""Property tests for rows KS-01, KS-03 and KS-04 of the reliability spec (hypothesis), through
the engine and the recording broker of tests/test_risk_properties.py.

* KS-01: a kill with many working orders while one broker keeps failing some cancels → 0 orders
  accepted after the kill, a cancel sent for every working order, the failed ones listed as
  residual, HALTED persisted and still HALTED for a control built again from the file.
* KS-03: REDUCING at one strategy's or one instrument's scope → in that scope only
  risk-reducing orders reach the broker; orders outside it are never refused for a state.
* KS-04: a drawdown limit → the halt is at exactly the first bar whose equity breaches it
  (computed here from the equity curve independently), and no order is accepted after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_risk_properties import T0, Script, Wire, named, path_bars, run

from tradeloom.model import OrderStatus
from tradeloom.risk import RiskControl, TradingState
from tradeloom.risk.monitors import MaxDrawdown
from tradeloom.strategy import Context

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class FlakyWire(Wire):
    """A broker whose cancels of the chosen orders fail when the runner (a kill) sends them."""

    def __init__(self, failing: set[str]) -> None:
        super().__init__()
        self.failing = failing

    def cancel(self, client_order_id: str, *args: Any) -> None:
        if args and client_order_id in self.failing:
            raise ConnectionError(f"venue timed out canceling {client_order_id}")
        super().cancel(client_order_id, *args)


@FAST
@given(
    working=st.integers(1, 25),
    fail_mask=st.lists(st.booleans(), min_size=25, max_size=25),
    kill_at=st.integers(2, 12),
)
def test_ks01_kill_with_failing_cancels(
    working: int, fail_mask: list[bool], kill_at: int, tmp_path_factory: Any
) -> None:
    state_file = Path(tmp_path_factory.mktemp("ks01")) / "risk_state.json"
    failing = {f"s-{i + 1}" for i in range(working) if fail_mask[i]}

    def plan(ctx: Context, step: int) -> None:
        if step == 0:  # far-from-market limit buys that stay working
            for _ in range(working):
                ctx.buy("X", 1, limit=1.0)
        else:  # and a flood every bar afterwards
            ctx.buy("X", 1)
            ctx.buy("X", 1, limit=2.0)

    frame = path_bars([100.0] * 16)
    kill_ts = int(frame.index[kill_at].value)
    control = RiskControl([], state_file=state_file)
    reports: list[Any] = []
    control.schedule(kill_ts, lambda c: reports.append(c.kill("KS-01")))
    broker = FlakyWire(failing)
    out, _ = run({"X": frame}, [("s", Script(plan))], control, broker)

    (report,) = reports
    assert set(report.canceled) | {coid for coid, _ in report.residual} >= {
        f"s-{i + 1}" for i in range(working)
    }
    assert {coid for coid, _ in report.residual} == failing
    # 0 orders accepted after the kill (the kill runs at the end of its bar: nothing later).
    sent_after = [m for m in broker.strategy_msgs("submit") if m.ts > kill_ts]
    assert sent_after == []
    orders = {o.client_order_id: o for o in out.orders}
    late = [o for o in orders.values() if o.created_ts > kill_ts]
    assert late and all(o.status is OrderStatus.REJECTED for o in late)
    # Every working order got its cancel; the broker took all but the failing ones.
    taken = {m.order.client_order_id for m in broker.msgs if m.kind == "runner-cancel"}
    assert taken == set(report.canceled) and not taken & failing
    # HALTED persisted: a control built again from the file (a restart) is halted.
    assert RiskControl([], state_file=state_file).state() is TradingState.HALTED


@FAST
@given(
    scope=st.sampled_from(["strategy:a", "instrument:X"]),
    sides=st.lists(st.tuples(st.sampled_from("ab"), st.sampled_from("XY"), st.integers(-3, 3)),
                   min_size=4, max_size=30),
)  # fmt: skip
def test_ks03_reducing_scope_only_lets_reducing_orders_through(
    scope: str, sides: list[tuple[str, str, int]]
) -> None:
    steps = len(sides)

    def plan_for(sid: str):  # type: ignore[no-untyped-def]
        def plan(ctx: Context, step: int) -> None:
            if step == 0:
                ctx.buy("X", 5)  # both start long X and Y (the state is set after)
                ctx.buy("Y", 5)
                return
            who, symbol, qty = sides[step - 1] if step - 1 < steps else ("", "", 0)
            if who == sid and qty:
                (ctx.buy if qty > 0 else ctx.sell)(symbol, abs(qty))

        return plan

    control = RiskControl([])
    frame = path_bars([100.0] * (steps + 3))
    control.schedule(int(frame.index[2].value), lambda c: c.set_state(scope, "reducing", "KS-03"))
    out, broker = run({"X": frame, "Y": frame}, [("a", Script(plan_for("a"))),
                                                 ("b", Script(plan_for("b")))], control)  # fmt: skip
    level, key = scope.split(":")
    start = int(frame.index[2].value)
    for msg in broker.strategy_msgs("submit"):
        order = msg.order
        in_scope = (order.strategy_id if level == "strategy" else order.symbol) == key
        if not in_scope or msg.ts <= start:
            continue
        held = msg.position * order.side.sign  # negative: against the position
        assert held < 0 and order.quantity + msg.same_side <= -held + 1e-9, msg
    for event in control.events:
        if event.kind == "reject":
            refused = next(o for o in out.orders if o.client_order_id == event.client_order_id)
            in_scope = (refused.strategy_id if level == "strategy" else refused.symbol) == key
            assert in_scope, f"{refused.client_order_id} outside {scope} refused for a state"


@FAST
@given(
    moves=st.lists(st.floats(-0.04, 0.04), min_size=10, max_size=60),
    limit=st.floats(1.0, 15.0),
)
def test_ks04_drawdown_halts_at_the_first_breaching_bar(moves: list[float], limit: float) -> None:
    closes = list(100.0 * np.cumprod(1.0 + np.array([0.0, *moves])))

    def plan(ctx: Context, step: int) -> None:
        if step == 0:
            ctx.buy("X", 500)  # most of the account in X
        else:
            ctx.buy("X", 1)  # and an order every bar, so a late halt would show

    control = RiskControl([named(MaxDrawdown(max_drawdown_pct=limit, cancel_working=True),
                                 "max-drawdown")])  # fmt: skip
    out, broker = run({"X": path_bars(closes)}, [("s", Script(plan))], control, cash=60_000)
    equity = out.equity
    peak = np.maximum.accumulate(equity)
    breach = np.flatnonzero((peak - equity) / peak * 100.0 > limit + 1e-9)
    halts = [e for e in control.events if e.kind == "state" and e.state == "halted"]
    if not breach.size:
        assert halts == []
        return
    first = int(out.ts[breach[0]])
    assert len(halts) == 1 and halts[0].ts == first  # within the bar that shows the breach
    assert halts[0].observed is not None and halts[0].observed > limit
    assert [m for m in broker.strategy_msgs("submit") if m.ts > first] == []
    assert T0.value <= first

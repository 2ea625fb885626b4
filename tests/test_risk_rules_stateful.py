"""The stateful pre-trade rules: message throttle (PT-04), duplicate-order guard (PT-06) and the
stale-data guard. Hand-computed backtests with exact reject messages, and a property test for
PT-04: no one-second (or one-minute) window ever has more messages reach the broker than the
limit.

Orders are buy limits at 50, far under every bar's low: they stay working and never fill.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import tradeloom
from tradeloom.data import MarketData
from tradeloom.engine.backtest import BacktestEngine
from tradeloom.execution import SimulatedBroker
from tradeloom.model import Bar, Order, OrderStatus, OrderType, Position, Side
from tradeloom.risk import RiskGate, RiskRule, RiskView
from tradeloom.risk.base import LazyMapping
from tradeloom.risk.rules import DuplicateOrderGuard, MessageThrottle, StaleDataGuard
from tradeloom.strategy import Context

from helpers import GAP_ROWS, IBM_DEPLOYMENT, Scripted, bars, run

NS = 1_000_000_000
ROW = (100.0, 101.0, 99.0, 100.0)


def named(rule: RiskRule, name: str) -> RiskRule:
    rule.name = name  # what the runner does with the registered name
    return rule


def throttle(**params: int) -> RiskRule:
    return named(MessageThrottle(**params), "message-throttle")


def guard(window: float) -> RiskRule:
    return named(DuplicateOrderGuard(window_seconds=window), "duplicate-order-guard")


def stale(age: float) -> RiskRule:
    return named(StaleDataGuard(max_age_seconds=age), "stale-data-guard")


def rejects(s: Scripted) -> list[str]:
    """Reasons of the orders refused, in order."""
    return [u.reason for u in s.updates if u.status is OrderStatus.REJECTED]


def refused_replaces(s: Scripted) -> list[str]:
    return [u.note for u in s.updates if u.note and u.note.startswith("replace rejected")]


def buys(n: int, qty: float = 1.0, limit: float = 50.0) -> Callable[[Context], list[Order]]:
    return lambda c: [c.order("X", qty, limit=limit) for _ in range(n)]


def status(s: Scripted) -> dict[str, str]:
    return {u.order.client_order_id: u.status.value for u in s.updates}


def view(ts: int = 0, last_bar_ts: Mapping[str, int] | None = None) -> RiskView:
    return RiskView(
        ts=ts, cash=1e4, equity=1e4, positions={"X": Position("X", 0.0, 0.0)}, open_orders=[],
        last_prices={"X": 100.0}, **({} if last_bar_ts is None else {"last_bar_ts": last_bar_ts}),
    )  # fmt: skip


# --- message-throttle -------------------------------------------------------------------------


def test_throttle_needs_a_limit() -> None:
    with pytest.raises(ValidationError, match="give max_per_second, max_per_minute or both"):
        MessageThrottle()
    with pytest.raises(ValidationError):
        MessageThrottle(max_per_second=0)


def test_throttle_per_second_counts_orders_and_replaces() -> None:
    # One-second bars. b0: 3 orders, the third refused. b1 (1 s later): b0's messages are out of
    # the window (t - 1 s, t]: 2 more pass. b2: an order and a replace of it fill the second; a
    # third message is refused, then a refused replace (the order stays as it was).
    def b2(c: Context) -> None:
        o = c.order("X", 1, limit=50.0)
        c.replace(o, limit=51.0)
        c.order("X", 1, limit=50.0)
        c.replace(o, limit=52.0)

    s = Scripted({0: buys(3), 1: buys(2), 2: b2})
    _, broker = run(bars([ROW] * 4, freq="s"), s, risk=[throttle(max_per_second=2)])
    msg = "risk rule message-throttle: messages from strategy s in the last second over the limit"
    assert rejects(s) == [f"{msg} (limit 2, observed 3)"] * 2
    assert refused_replaces(s) == [f"replace rejected: {msg} (limit 2, observed 3)"]
    refused = {k for k, v in status(s).items() if v == "rejected"}
    assert refused == {"s-3", "s-7"}
    assert broker.get_order("s-6").limit_price == 51.0  # the second replace did not go through


def test_throttle_per_minute_slides() -> None:
    # 20-second bars, at most 3 a minute. b0 (0 s): 2 pass. b1 (20 s): 1 passes, the next would
    # be the 4th. b2 (40 s): still 3 in (-20 s, 40 s]. b3 (60 s): b0's two fall out of
    # (0 s, 60 s]: 2 pass, the 3rd is refused.
    s = Scripted({0: buys(2), 1: buys(2), 2: buys(1), 3: buys(3)})
    run(bars([ROW] * 4, freq="20s"), s, risk=[throttle(max_per_minute=3)])
    msg = "risk rule message-throttle: messages from strategy s in the last minute over the limit"
    assert rejects(s) == [f"{msg} (limit 3, observed 4)"] * 3
    assert [k for k, v in status(s).items() if v == "rejected"] == ["s-4", "s-5", "s-8"]


def test_throttle_both_windows_and_per_strategy() -> None:
    # Two strategies, 2 a second and 3 a minute each, on 1-second bars: each sends 2 per bar;
    # b0 both pass, b1 the second is over the minute limit, b2 both are.
    a, b = Scripted({i: buys(2) for i in range(3)}), Scripted({i: buys(2) for i in range(3)})
    engine = BacktestEngine(
        MarketData({"X": bars([ROW] * 3, freq="s")}), [("a", a), ("b", b)], SimulatedBroker(),
        RiskGate([throttle(max_per_second=2, max_per_minute=3)]), initial_cash=1e4,
        currency="USD",
    )  # fmt: skip
    engine.run()
    for sid, strat in (("a", a), ("b", b)):
        msg = f"risk rule message-throttle: messages from strategy {sid} in the last minute"
        assert rejects(strat) == [f"{msg} over the limit (limit 3, observed 4)"] * 3


# --- duplicate-order-guard --------------------------------------------------------------------


def test_duplicate_guard_refuses_the_same_order_within_the_window() -> None:
    # Daily bars, a one-day window. b0: buy 5 @ 50 passes, the same again is refused, 6 @ 50
    # and 5 @ 51 differ. b1 (86400 s later: still in the window): refused
    # again. b2 (172800 s): passes.
    day = 86400
    same = lambda c: c.order("X", 5, limit=50.0)  # noqa: E731
    others = lambda c: [c.order("X", 6, limit=50.0), c.order("X", 5, limit=51.0)]  # noqa: E731
    s = Scripted({0: lambda c: [same(c), same(c), others(c)], 1: same, 2: same})
    run(bars(GAP_ROWS), s, risk=[guard(day)])
    head = "risk rule duplicate-order-guard: same limit buy of 5 X as order s-1, sent"
    assert rejects(s) == [
        f"{head} 0 s earlier (window 86400 s)",
        f"{head} 86400 s earlier (window 86400 s)",
    ]
    assert [k for k, v in status(s).items() if v == "rejected"] == ["s-2", "s-5"]


def test_duplicate_guard_replaces_are_not_duplicates_of_themselves() -> None:
    # b0: s-1 buy 5 @ 50 and s-2 buy 5 @ 49. s-1 re-priced at 50 (the same terms, same id):
    # passes. s-2 re-priced to 50 would repeat s-1: refused, s-2 stays at 49.
    def b0(c: Context) -> None:
        o1, o2 = c.order("X", 5, limit=50.0), c.order("X", 5, limit=49.0)
        c.replace(o1, limit=50.0)
        c.replace(o2, limit=50.0)

    s = Scripted({0: b0})
    _, broker = run(bars(GAP_ROWS), s, risk=[guard(60)])
    assert rejects(s) == []
    assert refused_replaces(s) == [
        "replace rejected: risk rule duplicate-order-guard: same limit buy of 5 X as order s-1, "
        "sent 0 s earlier (window 60 s)"
    ]
    assert broker.get_order("s-2").limit_price == 49.0


def test_duplicate_guard_is_per_strategy_and_the_broker_refuses_a_reused_id() -> None:
    a, b = Scripted({0: buys(1)}), Scripted({0: buys(1)})
    engine = BacktestEngine(
        MarketData({"X": bars(GAP_ROWS)}), [("a", a), ("b", b)], SimulatedBroker(),
        RiskGate([guard(60)]), initial_cash=1e4, currency="USD",
    )  # fmt: skip
    engine.run()
    assert rejects(a) == rejects(b) == []
    broker = SimulatedBroker()
    broker.start(initial_cash=1e4, currency="USD", symbols=["X"])
    order = Order("a-1", "X", Side.BUY, 1.0, OrderType.LIMIT, 50.0)
    broker.submit(order)
    broker.submit(order)
    reasons = [u.reason for u in broker.events if u.status is OrderStatus.REJECTED]
    assert reasons[-1] == "duplicate client order id 'a-1'"  # (the first: no price yet)


# --- stale-data-guard -------------------------------------------------------------------------


class FirstSymbol(Scripted):
    """Acts once per timestamp, on X's bar."""

    def on_bars(self, ctx: Context, bars: Mapping[str, Bar]) -> None:  # type: ignore[override]
        self.on_bar(ctx, bars["X"])


def test_stale_data_guard_in_a_merged_timeline() -> None:
    # X trades every day from 2024-01-01; Y on 01-02, 01-03, then not until 01-07. An order for
    # Y each day, at most one day old allowed.
    x = bars([ROW] * 8)
    y = bars([ROW] * 4).set_axis(
        pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-07", "2024-01-08"], tz="UTC",
                         name="ts")
    )  # fmt: skip
    s = FirstSymbol({i: (lambda c: c.order("Y", 1, limit=50.0)) for i in range(8)})
    run({"X": x, "Y": y}, s, risk=[stale(86400)])
    head = "risk rule stale-data-guard: latest bar of Y too old: seconds since it over the limit"
    assert rejects(s) == [
        "risk rule stale-data-guard: no bar time for Y: the age of its data cannot be checked",
        f"{head} (limit 86,400, observed 172,800)",  # 01-05: last bar 01-03
        f"{head} (limit 86,400, observed 259,200)",  # 01-06
    ]
    # 01-01 (no bar), 01-05, 01-06 refused; 01-04 is exactly a day old and passes.
    refused = [k for k, v in status(s).items() if v == "rejected"]
    assert refused == ["s-1", "s-5", "s-6"]


def test_stale_data_guard_on_a_hand_built_view() -> None:
    rule = stale(60)
    order = Order("o1", "X", Side.BUY, 1.0, OrderType.MARKET)
    assert rule.check(order, view(ts=60 * NS, last_bar_ts={"X": 0})) is None
    late = rule.check(order, view(ts=61 * NS, last_bar_ts={"X": 0}))
    assert late is not None and late.message() == (
        "risk rule stale-data-guard: latest bar of X too old: seconds since it over the limit "
        "(limit 60, observed 61)"
    )
    assert rule.check(order, view()) is not None  # no bar times at all: refused
    assert view().last_bar_ts == {}


def test_lazy_mapping() -> None:
    calls: list[str] = []

    def get(key: str) -> int | None:
        calls.append(key)
        return None if key == "B" else len(key)

    m = LazyMapping({"A": 0, "B": 0, "CC": 0}, get)
    assert calls == []
    assert m["CC"] == 2 and m.get("B") is None and m.get("Z") is None and "A" in m
    assert dict(m) == {"A": 1, "CC": 2} and len(m) == 2


# --- property test: PT-04 ---------------------------------------------------------------------


class Recording(SimulatedBroker):
    """Records the time of every order and replace that reaches the broker."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[int] = []

    def submit(self, order: Order) -> None:
        self.sent.append(self._now)
        super().submit(order)

    def replace(self, order: Order) -> None:
        self.sent.append(self._now)
        super().replace(order)


def burst(actions: list[bool]) -> Callable[[Context], None]:
    """New orders (False) and replaces of the latest working order (True), in one bar."""

    def act(c: Context) -> None:
        for i, amend in enumerate(actions):
            working = c.open_orders("X")
            if amend and working:
                c.replace(working[-1], limit=40.0 + i % 7)
            else:
                c.order("X", 1, limit=50.0)

    return act


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gaps=st.lists(st.integers(1, 20_000), min_size=1, max_size=40),
    bursts=st.lists(st.lists(st.booleans(), max_size=12), min_size=40, max_size=40),
    per_second=st.one_of(st.none(), st.integers(1, 4)),
    per_minute=st.one_of(st.none(), st.integers(2, 15)),
)
def test_pt04_no_window_over_the_limit(
    gaps: list[int], bursts: list[list[bool]], per_second: int | None, per_minute: int | None
) -> None:
    # Bars at random intraday times, `gaps` milliseconds apart; on each a random burst of
    # orders and replaces, ten times the limit and more.
    if per_second is None and per_minute is None:
        per_second = 2
    index = pd.Timestamp("2024-01-02 09:30", tz="UTC") + pd.to_timedelta(
        [0, *pd.Series(gaps).cumsum().tolist()], unit="ms"
    )
    frame = bars([ROW] * len(index)).set_axis(pd.DatetimeIndex(index, name="ts"))
    s = Scripted({i: burst(b) for i, b in enumerate(bursts)})
    broker = Recording()
    params = {"max_per_second": per_second, "max_per_minute": per_minute}
    run(frame, s, broker=broker, risk=[throttle(**{k: v for k, v in params.items() if v})])
    sent = broker.sent
    messages = [len(b) for b in bursts[: len(index)]]
    refused = rejects(s) + refused_replaces(s)
    assert len(sent) + len(refused) == sum(messages)
    for limit, span in ((per_second, NS), (per_minute, 60 * NS)):
        if limit is None:
            continue
        for t in sent:  # the fullest window ending at a message: (t - span, t]
            assert sum(1 for u in sent if t - span < u <= t) <= limit
    # and nothing is refused needlessly: at each refusal, one window is full
    refusal_ts = [u.ts for u in s.updates if u.status is OrderStatus.REJECTED] + [
        u.ts for u in s.updates if u.note and u.note.startswith("replace rejected")
    ]
    for t in refusal_ts:
        assert any(
            limit is not None and sum(1 for u in sent if t - span < u <= t) >= limit
            for limit, span in ((per_second, NS), (per_minute, 60 * NS))
        )


# --- registration and configuration -----------------------------------------------------------


def test_the_rules_are_registered_under_their_names() -> None:
    from tradeloom.components import Kind
    from tradeloom.plugins import PluginHost

    host = PluginHost()
    expected = {
        "message-throttle": MessageThrottle,
        "duplicate-order-guard": DuplicateOrderGuard,
        "stale-data-guard": StaleDataGuard,
    }
    for name, cls in expected.items():
        assert host.spec(Kind.RISK_RULE, name).cls is cls


def test_message_throttle_from_a_deployment(tmp_path: Path) -> None:
    # Daily bars: a minute never holds more than the one order a bar of the crossover strategy,
    # so nothing is refused; the rule is built from the table; without a limit it is an error.
    from tradeloom.config import load_deployment
    from tradeloom.plugins import PluginHost

    text = IBM_DEPLOYMENT + textwrap.dedent(
        """
        [[risk]]
        type = "message-throttle"
        params = { max_per_minute = 2 }
        """
    )
    path = tmp_path / "deploy.toml"
    path.write_text(text, encoding="utf-8")
    result = tradeloom.backtest(path)
    orders = result.orders
    assert len(orders) >= 1
    assert (orders["status"] != "rejected").all()
    rule = load_deployment([path], host=PluginHost()).risk[0].build()
    assert isinstance(rule, MessageThrottle) and rule.params.max_per_minute == 2
    path.write_text(text.replace("max_per_minute = 2", ""), encoding="utf-8")
    with pytest.raises(Exception, match="give max_per_second, max_per_minute or both"):
        tradeloom.backtest(path)

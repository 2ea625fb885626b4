"""Property tests for rows PT-01 … PT-07 of the reliability spec, end to end.

tests/test_risk_rules.py and tests/test_risk_rules_stateful.py test each rule on hand-built
views and PT-01/03/04 through a bare :class:`RiskGate`. These go further: every order, replace
and cancel passes the runner's :class:`RiskControl` inside the backtest engine (trading states,
monitors, halts), and a recording broker (:class:`Wire`) is the ground truth of what reached the
venue: "0 orders reach the broker" is asserted on what the broker was actually called with.

Defaults for an instrument with no limit configured (PT-02), which these tests pin down: the
built-in size rules have no per-symbol configuration, so a ``MaxOrderQuantity``,
``MaxOrderNotional`` or ``MaxPosition`` limit applies to *every* symbol, including one no
configuration names; ``MaxOrderNotional`` refuses an order for a symbol with no reference price
(no close yet: ``no reference price for Y``) unless the order carries a limit price, which it is
then measured at.

Hypothesis budgets are set so the whole file runs in well under 30 s on two cores; each test
states how many orders / sequences it covers.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tradeloom.components import Params
from tradeloom.data import MarketData
from tradeloom.engine.backtest import BacktestEngine, EngineOutput
from tradeloom.errors import TradeloomError
from tradeloom.execution import SimulatedBroker
from tradeloom.model import Bar, Fill, Order, OrderStatus, OrderType, OrderUpdate, Side
from tradeloom.risk import (
    RiskControl,
    RiskEvent,
    RiskGate,
    RiskMonitor,
    RiskRule,
    RiskView,
    TradingState,
)
from tradeloom.risk.monitors import RepeatedExecutionGuard
from tradeloom.risk.rules import (
    DuplicateOrderGuard,
    MaxGrossExposure,
    MaxLeverage,
    MaxNetExposure,
    MaxOrderNotional,
    MaxOrderQuantity,
    MaxPosition,
    MaxVar,
    MessageThrottle,
    PriceCollar,
    RestrictedInstruments,
    StaleDataGuard,
)
from tradeloom.strategy import Context, Strategy

from helpers import bars

NS = 1_000_000_000
MINUTE = 60 * NS
T0 = pd.Timestamp("2024-01-02 09:30", tz="UTC")
FLAT = (100.0, 101.0, 99.0, 100.0)
"""A bar that trades 99–101: buy limits at 50 and sell limits at 150 never fill."""

FAST = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


def named(rule: RiskRule, name: str) -> RiskRule:
    rule.name = name  # what the runner does with the registered name
    return rule


# --- the recording broker and a scripted strategy ---------------------------------------------


@dataclass(frozen=True)
class Msg:
    """One message that reached the broker."""

    kind: str
    """``submit``, ``replace``, ``cancel`` (a strategy's) or ``runner-cancel`` (a halt's)."""
    ts: int
    order: Order
    """The order as sent (for a cancel: as it was when canceled)."""
    ref: float | None
    """The reference price (latest close) of the order's symbol when it arrived."""
    position: float
    """The account's position in the symbol when it arrived."""
    same_side: float
    """Remaining units of the other working orders on the order's side when it arrived."""


_BY_STRATEGY = object()
"""``cancel()`` called without a reason: the engine forwarding a strategy's cancel."""


class Wire(SimulatedBroker):
    """A simulated broker that records every message it is sent and can run a check after
    every broker event (a message, or a bar matched against the working orders)."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.msgs: list[Msg] = []
        self.after: Callable[[Wire, str], None] | None = None

    def _msg(self, kind: str, order: Order) -> None:
        ref = self.ledger.last_price.get(order.symbol)
        same = sum(
            o.remaining
            for o in self.open_orders(order.symbol)
            if o.side is order.side and o.client_order_id != order.client_order_id
        )
        self.msgs.append(Msg(kind, self._now, order, ref, self.ledger.quantity(order.symbol), same))

    def _event(self, what: str) -> None:
        if self.after is not None:
            self.after(self, what)

    def submit(self, order: Order) -> None:
        self._msg("submit", order)
        super().submit(order)
        self._event("submit")

    def replace(self, order: Order) -> None:
        self._msg("replace", order)
        super().replace(order)
        self._event("replace")

    def cancel(self, client_order_id: str, reason: Any = _BY_STRATEGY) -> None:
        current = self.orders.get(client_order_id)
        if current is not None and (
            current.status.is_working or current.status is OrderStatus.HELD
        ):
            self._msg("cancel" if reason is _BY_STRATEGY else "runner-cancel", current)
        if reason is _BY_STRATEGY:
            super().cancel(client_order_id)
        else:
            super().cancel(client_order_id, reason)
        self._event("cancel")

    def on_bar(self, bar: Bar) -> None:
        super().on_bar(bar)
        self._event("bar")

    def on_close(self, bar: Bar) -> None:
        super().on_close(bar)
        self._event("close")

    def strategy_msgs(self, *kinds: str) -> list[Msg]:
        kinds = kinds or ("submit", "replace", "cancel")
        return [m for m in self.msgs if m.kind in kinds and m.order.strategy_id != "risk"]


class Script(Strategy):
    """Calls ``plan(ctx, step)`` once per timestamp (step 0, 1, …) and, if given,
    ``fill_plan(ctx, fill)`` on each of its fills; records its order updates and fills."""

    def __init__(
        self,
        plan: Callable[[Context, int], object],
        fill_plan: Callable[[Context, Fill], object] | None = None,
    ) -> None:
        super().__init__()
        self.plan = plan
        self.fill_plan = fill_plan
        self.step = 0
        self.updates: list[OrderUpdate] = []
        self.fills: list[Fill] = []

    def on_bars(self, ctx: Context, bars: Mapping[str, Bar]) -> None:  # type: ignore[override]
        self.plan(ctx, self.step)
        self.step += 1

    def on_order(self, ctx: Context, update: OrderUpdate) -> None:
        self.updates.append(update)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.fills.append(fill)
        if self.fill_plan is not None:
            self.fill_plan(ctx, fill)

    def notes(self, prefix: str) -> list[str]:
        return [u.note for u in self.updates if u.note.startswith(prefix)]


def run(
    frames: Mapping[str, pd.DataFrame],
    strategies: Iterable[tuple[str, Strategy]],
    control: RiskControl,
    broker: Wire | None = None,
    cash: float = 1e9,
) -> tuple[EngineOutput, Wire]:
    broker = broker if broker is not None else Wire()
    engine = BacktestEngine(
        MarketData(dict(frames)), list(strategies), broker, control,
        initial_cash=cash, currency="USD",
    )  # fmt: skip
    return engine.run(), broker


def path_bars(closes: list[float], start: pd.Timestamp = T0, freq: str = "min") -> pd.DataFrame:
    """Minute bars with the given closes; each opens at the previous close, 1 % wicks."""
    rows, prev = [], closes[0]
    for close in closes:
        rows.append((prev, max(prev, close) * 1.01, min(prev, close) * 0.99, close))
        prev = close
    return bars(rows, start=str(start), freq=freq)


def at_ms(offsets_ms: list[int], row: tuple[float, float, float, float] = FLAT) -> pd.DataFrame:
    """Flat bars at ``T0`` plus the given millisecond offsets (intraday, sub-second spacing)."""
    index = T0 + pd.to_timedelta(offsets_ms, unit="ms")
    return bars([row] * len(index)).set_axis(pd.DatetimeIndex(index, name="ts"))


def rejects(control: RiskControl, rule: str | None = None) -> list[RiskEvent]:
    return [e for e in control.events if e.kind == "reject" and (rule is None or e.rule == rule)]


def by_id(out: EngineOutput) -> dict[str, Order]:
    return {o.client_order_id: o for o in out.orders}


def prices_of(order: Order) -> list[float]:
    return [p for p in (order.limit_price, order.stop_price) if p is not None]


# --- PT-01: price collar ----------------------------------------------------------------------

PRICED = {
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
    "market": OrderType.MARKET,
}
EDGE = 1 + 1e-6
"""Deviations are drawn in collars (1 = exactly on the edge). Between 1 and ``EDGE`` the rule's
float tolerance (1e-9 percentage points) decides and the tests assert nothing; at or beyond
``EDGE`` (at least 1e-8 points out for a collar of 0.01 %) the order must be refused."""
COLLARS = st.one_of(
    st.floats(-3, 3),
    st.sampled_from([0.0, 1.0, -1.0, 0.999999, EDGE, -EDGE, 3.0, -3.0]),
)
SAFE_COLLARS = COLLARS.filter(lambda a: not 1.0 < abs(a) < EDGE)


def test_pt01_collar_gate_refuses_every_order_outside_and_passes_every_order_inside() -> None:
    # 100 examples × 100 orders = 10,000 orders through RiskControl.check (the runner's gate),
    # each with a random reference price (0.01 … 1e6), collar (0.01 … 30 %), type and side.
    seen: list[int] = []
    refused_total: list[int] = []

    @settings(max_examples=100, **FAST)
    @given(
        ref=st.floats(0.01, 1e6),
        pct=st.floats(0.01, 30),
        orders=st.lists(
            st.tuples(st.sampled_from(list(PRICED)), st.booleans(), COLLARS, COLLARS),
            min_size=100,
            max_size=100,
        ),
    )
    def prop(ref: float, pct: float, orders: list[tuple[str, bool, float, float]]) -> None:
        control = RiskControl([named(PriceCollar(max_deviation_pct=pct), "price-collar")])
        view = RiskView(
            ts=0, cash=1e9, equity=1e9, positions={}, open_orders=[], last_prices={"X": ref}
        )
        refused = 0
        for i, (kind, buy, a, b) in enumerate(orders):
            p1, p2 = ref * (1 + a * pct / 100), ref * (1 + b * pct / 100)
            limit = p1 if kind in ("limit", "stop_limit") else None
            stop = {"stop": p1, "stop_limit": p2}.get(kind)
            collars = {"limit": [a], "stop": [a], "stop_limit": [a, b], "market": []}[kind]
            side = Side.BUY if buy else Side.SELL
            order = Order(f"o{i}", "X", side, 1.0, PRICED[kind], limit, stop)
            verdict = control.check(order, view)
            worst = max((abs(c) for c in collars), default=0.0)
            if worst <= 1.0:
                assert verdict is None, (kind, a, b, ref, pct, verdict)
            elif worst >= EDGE:
                assert verdict is not None, (kind, a, b, ref, pct)
                assert verdict.rule == "price-collar" and verdict.limit == pct
                assert verdict.observed is not None and verdict.observed > pct
            refused += verdict is not None
        # every refusal is recorded once, as the collar's
        events = rejects(control)
        assert len(events) == refused
        assert all(e.rule == "price-collar" for e in events)
        # a priced order in a symbol with no reference price cannot be checked: refused
        blind = Order("blind", "Y", Side.BUY, 1.0, OrderType.LIMIT, ref)
        assert control.check(blind, view) is not None
        assert control.check(Order("mkt", "Y", Side.BUY, 1.0), view) is None
        seen.append(len(orders))
        refused_total.append(refused)

    prop()
    assert sum(seen) >= 10_000
    assert 0 < sum(refused_total) < sum(seen)  # both outcomes were exercised


@settings(max_examples=40, **FAST)
@given(
    closes=st.lists(st.floats(50, 150), min_size=4, max_size=10),
    pct=st.sampled_from([0.5, 1.0, 2.0, 5.0]),
    plan=st.lists(
        st.lists(
            st.tuples(st.sampled_from(["limit", "stop", "replace"]), st.booleans(), SAFE_COLLARS),
            max_size=8,
        ),
        min_size=10,
        max_size=10,
    ),
)
def test_pt01_collar_through_the_engine_no_out_of_band_order_or_replace_reaches_the_broker(
    closes: list[float], pct: float, plan: list[list[tuple[str, bool, float]]]
) -> None:
    # New limit and stop orders and re-pricing replaces of working ones, at random distances
    # from the bar's close; every one inside the collar must reach the broker, none outside.
    attempts = {"in": 0, "out": 0}

    def act(ctx: Context, step: int) -> None:
        ref = ctx.last_price("X")
        for kind, buy, a in plan[step] if step < len(plan) else ():
            price = ref * (1 + a * pct / 100)
            if kind == "replace":
                working = ctx.open_orders("X")
                if not working:
                    continue
                target = working[-1]
                if target.type is OrderType.LIMIT:
                    ctx.replace(target, limit=price)
                else:
                    ctx.replace(target, stop=price)
            else:
                ctx.order("X", 1 if buy else -1, **{kind: price})
            attempts["in" if abs(a) <= 1 else "out"] += 1

    s = Script(act)
    control = RiskControl([named(PriceCollar(max_deviation_pct=pct), "price-collar")])
    _, wire = run({"X": path_bars(closes)}, [("s", s)], control)
    reached = wire.strategy_msgs("submit", "replace")
    for m in reached:
        assert m.ref is not None
        for p in prices_of(m.order):
            assert abs(p - m.ref) / m.ref * 100 <= pct + 1e-9, (m, pct)
    assert len(reached) == attempts["in"]  # all in-band pass …
    assert len(rejects(control, "price-collar")) == attempts["out"]  # … and all outside are refused
    assert (
        len(s.notes("replace rejected: risk rule price-collar"))
        + sum(1 for u in s.updates if u.status is OrderStatus.REJECTED)
        == attempts["out"]
    )


# --- PT-02: size limits, replaces that raise the quantity, unconfigured instruments --------

PT02_ACTION = st.tuples(
    st.sampled_from(["market", "limit", "limit", "replace", "cancel"]),
    st.sampled_from(["X", "Y"]),
    st.integers(1, 8),  # units
    st.booleans(),  # buy?
    st.integers(0, 9).map(lambda k: k == 0),  # fat finger (1 in 10): × 1000
    st.floats(0.0, 0.05),  # limit distance from the reference, in its favourable direction
    st.sampled_from([2, 2, 10, 1000]),  # a replace multiplies the quantity by this
    st.integers(0, 7),  # which working order
)


@settings(max_examples=100, **FAST)
@given(
    max_q=st.sampled_from([5.0, 10.0]),
    max_notional=st.sampled_from([600.0, 1_000.0, 3_000.0]),
    max_pos=st.sampled_from([6.0, 10.0, 20.0]),
    closes=st.lists(st.floats(60, 140), min_size=8, max_size=8),
    plan=st.lists(st.lists(PT02_ACTION, max_size=6), min_size=8, max_size=8),
)
def test_pt02_no_over_limit_order_or_replace_reaches_the_broker(
    max_q: float,
    max_notional: float,
    max_pos: float,
    closes: list[float],
    plan: list[list[tuple[str, str, int, bool, bool, float, int, int]]],
) -> None:
    # X trades from the first minute; Y's first bar comes three minutes later (no reference
    # price before it). Limits apply to both (no per-symbol configuration exists). New buy
    # limits lie at or below the reference, sell limits at or above it (a sell limit under the
    # market is the subject of a test below); replaces multiply a working order's
    # quantity by 2, 10 or 1000.
    over_q_new: list[str] = []
    over_q_replaces = 0
    blind_markets = 0

    def act(ctx: Context, step: int) -> None:
        nonlocal over_q_replaces, blind_markets
        for kind, sym, units, buy, fat, off, factor, which in plan[step]:
            ref = ctx.last_price(sym)
            priced = ref == ref  # NaN before the symbol's first bar
            qty = units * (1000 if fat else 1)
            if kind in ("market", "limit"):
                base = ref if priced else 100.0
                limit = base * (1 - off) if buy else base * (1 + off)
                o = ctx.order(
                    sym, qty if buy else -qty, **({"limit": limit} if kind == "limit" else {})
                )
                if qty > max_q:
                    over_q_new.append(o.client_order_id)
                elif kind == "market" and not priced:
                    blind_markets += 1
                continue
            working = ctx.open_orders()
            if not working:
                continue
            target = working[which % len(working)]
            if kind == "cancel":
                ctx.cancel(target)
            else:
                new_qty = target.quantity * factor
                over_q_replaces += new_qty > max_q
                ctx.replace(target, quantity=new_qty)

    s = Script(lambda c, i: act(c, i) if i < len(plan) else None)
    control = RiskControl(
        [
            named(MaxOrderQuantity(max_quantity=max_q), "max-order-quantity"),
            named(MaxOrderNotional(max_notional=max_notional), "max-order-notional"),
            named(MaxPosition(max_quantity=max_pos), "max-position"),
        ]
    )
    frames = {"X": path_bars(closes), "Y": path_bars(closes[3:], start=T0 + pd.Timedelta("3min"))}
    out, wire = run(frames, [("s", s)], control)
    for m in wire.strategy_msgs("submit", "replace"):
        o = m.order
        assert o.quantity <= max_q, m  # quantity × 1000 never reaches
        if m.ref is None:  # no close yet: only an order with a limit price can be measured
            assert o.type is OrderType.LIMIT, m
        # the rule's measure: quantity × limit price, else × reference price (for a sell
        # limit under the market that under-states it: see the test below)
        assert o.quantity * (o.limit_price or m.ref) <= max_notional * (1 + 1e-12), m
        worst = m.position + o.side.sign * (m.same_side + o.quantity)
        assert abs(worst) <= max_pos + 1e-9, m
    final = by_id(out)
    for (
        coid
    ) in over_q_new:  # every order over the quantity limit (× 1000 included) is refused by it
        assert final[coid].status is OrderStatus.REJECTED
        assert final[coid].reason.startswith("risk rule max-order-quantity:"), final[coid]
    assert len(s.notes("replace rejected: risk rule max-order-quantity")) == over_q_replaces
    blind = [e for e in rejects(control, "max-order-notional") if "no reference price" in e.reason]
    assert len(blind) == blind_markets


def test_pt02_unconfigured_instrument_defaults_are_explicit() -> None:
    # The default, pinned: a size limit names no symbol and applies to every one, each on its
    # own; an order in a symbol with no close yet is refused by the notional rule when it has
    # no limit price, and measured at its limit price when it has one (the simulated broker
    # then refuses it: it cannot check the cash without a price).
    def act(ctx: Context, step: int) -> None:
        if step == 0:  # Y has no bar yet
            ctx.order("Y", 2)  # s-1 market: no reference price -> refused
            ctx.order("Y", 2, limit=100.0)  # s-2 200 at its limit price: passes the gate
            ctx.order("Y", 20, limit=100.0)  # s-3 2,000 at its limit price: refused
        if step == 2:  # Y's first bar
            ctx.order("X", 10)  # s-4 at X's limit
            ctx.order("Y", 10)  # s-5 at Y's limit: the same limit, counted per symbol
            ctx.order("Y", 1, limit=50.0)  # s-6 with s-5 working: 11 > 10
            ctx.order("X", 1, limit=50.0)  # s-7 with s-4 working: 11 > 10

    s = Script(act)
    control = RiskControl(
        [
            named(MaxOrderNotional(max_notional=1_500.0), "max-order-notional"),
            named(MaxPosition(max_quantity=10.0), "max-position"),
        ]
    )
    flat = bars([FLAT] * 4, start=str(T0), freq="min")
    later = bars([FLAT] * 2, start=str(T0 + pd.Timedelta("2min")), freq="min")
    out, wire = run({"X": flat, "Y": later}, [("s", s)], control)
    assert [
        (e.client_order_id, e.rule, e.reason, e.limit, e.observed) for e in rejects(control)
    ] == [
        ("s-1", "max-order-notional", "no reference price for Y", None, None),
        ("s-3", "max-order-notional", "order notional over the limit", 1_500.0, 2_000.0),
        ("s-6", "max-position", "position in Y would exceed the limit", 10.0, 11.0),
        ("s-7", "max-position", "position in X would exceed the limit", 10.0, 11.0),
    ]
    assert [m.order.client_order_id for m in wire.strategy_msgs("submit")] == ["s-2", "s-4", "s-5"]
    final = by_id(out)
    assert final["s-2"].reason == "no price yet for Y"
    assert (final["s-4"].filled_quantity, final["s-5"].filled_quantity) == (10.0, 10.0)


def test_pt02_a_marketable_sell_limit_is_measured_at_least_at_the_reference_price() -> None:
    # Fat-finger price: sell 50 X with a limit of 1 while X trades at 100. Measured at the limit
    # price the order is worth 50 (under the 1,000 limit); at the reference price it is 5,000
    # (the docstring's "notional at the reference price"), and it fills at the next open, 100.
    s = Script(lambda c, i: c.order("X", -50, limit=1.0) if i == 0 else None)
    control = RiskControl([named(MaxOrderNotional(max_notional=1_000.0), "max-order-notional")])
    out, wire = run({"X": bars([FLAT] * 3, start=str(T0), freq="min")}, [("s", s)], control)
    executed = sum(f.quantity * f.price for f in out.fills)
    assert executed <= 1_000.0, f"executed notional {executed:g} with a 1,000 limit"
    assert wire.strategy_msgs("submit") == []


# --- PT-03: working orders each under the position limit, together over it ------------------

PT03_KINDS = ["market", "limit", "limit", "replace", "cancel"]


def random_plan(rng: np.random.Generator, steps: int = 8) -> list[list[tuple]]:
    """Up to 4 actions a bar: (kind, symbol, units 1-30, buy?, limit offset ±3 %, which)."""
    return [
        [
            (
                PT03_KINDS[rng.integers(len(PT03_KINDS))],
                "XY"[rng.integers(2)],
                int(rng.integers(1, 31)),
                bool(rng.integers(2)),
                float(rng.uniform(-0.03, 0.03)),
                int(rng.integers(8)),
            )
            for _ in range(rng.integers(5))
        ]
        for _ in range(steps)
    ]


def reach_violations(limit: float) -> tuple[Callable[[Wire, str], None], dict[str, Any]]:
    """A broker check: for each symbol, position + working buys and position − working sells
    (the account's worst case if its working orders fill) stay within ``limit``."""
    state: dict[str, Any] = {"checks": 0, "worst": 0.0, "bad": []}

    def check(broker: Wire, what: str) -> None:
        state["checks"] += 1
        for sym in broker.symbols:
            pos = broker.ledger.quantity(sym)
            working = broker.open_orders(sym)
            buys = sum(o.remaining for o in working if o.side is Side.BUY)
            sells = sum(o.remaining for o in working if o.side is Side.SELL)
            worst = max(abs(pos + buys), abs(pos - sells))
            state["worst"] = max(state["worst"], worst)
            if worst > limit + 1e-9:
                state["bad"].append((what, sym, pos, buys, sells, broker._now))

    return check, state


def test_pt03_position_plus_working_orders_never_exceeds_the_limit() -> None:
    # 1,000 random sequences = 100 hypothesis examples (limit, price paths, seed) × 10 sequences
    # each from a numpy generator seeded by the example (reported with any failure). In each,
    # two strategies on two symbols send market and limit orders (each alone within the
    # limit), replaces (any new quantity within the limit) and cancels over 8 bars; after
    # every broker event (a message, or a bar matched against the working orders) the
    # account's worst-case position, position + working buys and position - working sells,
    # stays within MaxPosition's limit.
    runs: list[tuple[float, float, int]] = []

    def strategy(plan: list[list[tuple]], limit: float) -> Script:
        def act(ctx: Context, step: int) -> None:
            for kind, sym, units, buy, off, which in plan[step] if step < len(plan) else ():
                qty = float(min(units, limit))
                if kind in ("market", "limit"):
                    extra = {"limit": ctx.last_price(sym) * (1 + off)} if kind == "limit" else {}
                    ctx.order(sym, qty if buy else -qty, **extra)
                    continue
                working = ctx.open_orders()
                if working:
                    target = working[which % len(working)]
                    if kind == "cancel":
                        ctx.cancel(target)
                    else:
                        ctx.replace(target, quantity=qty)

        return Script(act)

    @settings(max_examples=100, **FAST)
    @given(
        limit=st.sampled_from([5.0, 10.0, 20.0]),
        x=st.lists(st.floats(80, 120), min_size=8, max_size=8),
        seed=st.integers(0, 2**32 - 1),
    )
    def prop(limit: float, x: list[float], seed: int) -> None:
        frames = {"X": path_bars(x), "Y": path_bars([c * 0.5 for c in reversed(x)])}
        rng = np.random.default_rng(seed)
        for sequence in range(10):
            plans = random_plan(rng), random_plan(rng)
            check, state = reach_violations(limit)
            wire = Wire()
            wire.after = check
            control = RiskControl([named(MaxPosition(max_quantity=limit), "max-position")])
            strategies = [("a", strategy(plans[0], limit)), ("b", strategy(plans[1], limit))]
            run(frames, strategies, control, wire)
            check(wire, "end")
            assert state["bad"] == [], (seed, sequence, plans, state["bad"][:3])
            assert state["checks"] >= len(wire.msgs) + 1  # after every message, and at the end
            runs.append((state["worst"], limit, len(rejects(control, "max-position"))))

    prop()
    assert len(runs) >= 1000
    # not vacuous: the limit was reached exactly and orders were refused to hold it
    assert any(worst == limit for worst, limit, _ in runs)
    assert sum(refused for *_, refused in runs) > 1000


# --- PT-04: message rate ----------------------------------------------------------------------


def message_burst(kinds: list[str], repeat: int, tally: dict[str, int]) -> Callable[..., None]:
    """``kinds`` × ``repeat`` messages in one bar: new buy limits at 50 (never fill), replaces
    and cancels of the latest working order (a new order when none is working)."""

    def act(ctx: Context) -> None:
        for i, kind in enumerate(kinds * repeat):
            working = ctx.open_orders("X")
            if kind != "new" and working:
                if kind == "replace":
                    ctx.replace(working[-1], limit=40.0 + i % 9)
                else:
                    ctx.cancel(working[-1])
            else:
                ctx.order("X", 1, limit=50.0 - i % 5)
            tally["sent"] += 1

    return act


def over_windows(times: list[int], limit: int, span: int) -> list[int]:
    """End times ``t`` of sliding windows ``(t − span, t]`` holding more than ``limit`` of
    ``times`` (the fullest window always ends at a message, so checking those suffices; it
    also covers calendar-aligned windows)."""
    return [t for t in times if sum(1 for u in times if t - span < u <= t) > limit]


@settings(max_examples=40, **FAST)
@given(
    gaps=st.lists(st.integers(200, 1_500), min_size=4, max_size=14),
    kinds=st.lists(
        st.lists(st.sampled_from(["new", "replace", "cancel"]), min_size=10, max_size=12),
        min_size=15,
        max_size=15,
    ),
    per_second=st.integers(1, 4),
    per_minute=st.one_of(st.none(), st.integers(5, 40)),
)
def test_pt04_ten_times_the_rate_no_window_over_the_limit(
    gaps: list[int], kinds: list[list[str]], per_second: int, per_minute: int | None
) -> None:
    # Bars 0.2–1.5 s apart; on each, 10–12 × the per-second limit of new orders, replaces and
    # cancels. Counted at the broker (cancels included): no one-second window over the limit.
    offsets = np.cumsum([0, *gaps]).tolist()
    tally = {"sent": 0}
    steps = [message_burst(k, per_second, tally) for k in kinds]
    s = Script(lambda c, i: steps[i](c) if i < len(steps) else None)
    throttle = MessageThrottle(max_per_second=per_second, max_per_minute=per_minute)
    control = RiskControl([named(throttle, "message-throttle")])
    _, wire = run({"X": at_ms(offsets)}, [("s", s)], control)
    times = [m.ts for m in wire.strategy_msgs()]
    assert over_windows(times, per_second, NS) == []
    if per_minute is not None:
        assert over_windows(times, per_minute, MINUTE) == []
    assert {m.kind for m in wire.strategy_msgs()} <= {"submit", "replace", "cancel"}
    # every message either reached the broker or was refused by the throttle, and at ten
    # times the rate most were refused
    refused = rejects(control, "message-throttle")
    assert len(times) + len(refused) == tally["sent"]
    assert len(refused) >= tally["sent"] // 2
    # nothing refused needlessly: at each refusal a window was already full
    for e in refused:
        full = [
            sum(1 for u in times if e.ts - span < u <= e.ts) >= limit
            for limit, span in ((per_second, NS), (per_minute, MINUTE))
            if limit is not None
        ]
        assert any(full), e
    assert control.states == {}  # no halt_after: it only refuses


@settings(max_examples=40, **FAST)
@given(
    gaps=st.lists(st.integers(500, 1_000), min_size=8, max_size=12),
    kinds=st.lists(
        st.lists(st.sampled_from(["new", "replace", "cancel"]), min_size=12, max_size=12),
        min_size=12,
        max_size=12,
    ),
    per_second=st.integers(1, 4),
    halt_after=st.integers(1, 30),
)
def test_pt04_sustained_excess_halts_the_strategy_and_alerts(
    gaps: list[int], kinds: list[list[str]], per_second: int, halt_after: int
) -> None:
    # The same flood, with halt_after: the halt_after-th refusal (within a minute) halts
    # strategy:s, cancels its working orders, raises an alert; nothing from it reaches the
    # broker afterwards.
    offsets = np.cumsum([0, *gaps]).tolist()
    tally = {"sent": 0}
    steps = [message_burst(k, per_second, tally) for k in kinds]
    s = Script(lambda c, i: steps[i % len(steps)](c))
    alerts: list[tuple[RiskEvent, int]] = []
    wire = Wire()
    throttle = MessageThrottle(max_per_second=per_second, halt_after=halt_after)
    control = RiskControl(
        [named(throttle, "message-throttle")],
        on_alert=lambda e: alerts.append((e, len(wire.msgs))),
    )
    out, _ = run({"X": at_ms(offsets)}, [("s", s)], control, wire)
    assert control.state("strategy:s") is TradingState.HALTED
    assert dict(control.states) == {"strategy:s": TradingState.HALTED}
    states = [e for e in control.events if e.kind == "state"]
    assert len(states) == 1
    halt = states[0]
    assert (halt.scope, halt.state, halt.rule, halt.by, halt.limit) == (
        "strategy:s", "halted", "message-throttle", "rule", float(halt_after)
    )  # fmt: skip
    assert [e for e, _ in alerts] == [halt]  # the monitoring hook was called, once
    assert len(rejects(control, "message-throttle")) == halt_after
    after = wire.msgs[alerts[0][1] :]
    assert all(m.kind == "runner-cancel" for m in after), after[:3]
    assert all(m.ts <= halt.ts for m in wire.strategy_msgs())
    assert not any(o.status.is_working for o in out.orders)  # the halt canceled them
    late = rejects(control, "trading-state")
    assert late and all("strategy:s is halted" in e.reason for e in late)


def test_pt04_an_unnamed_throttle_still_halts_on_sustained_excess() -> None:
    # Built through the Python API without the runner's names: the same flood must still halt.
    # With the throttle alone in the chain it does; behind another unnamed rule it does not.
    def flood(ctx: Context, step: int) -> None:
        for k in range(5):
            ctx.order("X", 1, limit=50.0 - k)

    alone = RiskControl([MessageThrottle(max_per_second=1, halt_after=2)])
    run({"X": at_ms([0, 1000, 2000])}, [("s", Script(flood))], alone)
    assert alone.state("strategy:s") is TradingState.HALTED
    chained = RiskControl(
        [MaxOrderQuantity(max_quantity=100), MessageThrottle(max_per_second=1, halt_after=2)]
    )
    run({"X": at_ms([0, 1000, 2000])}, [("s", Script(flood))], chained)
    assert chained.state("strategy:s") is TradingState.HALTED


# --- PT-05: runaway loop (Knight) -------------------------------------------------------------


class Knight(Script):
    """The Knight Capital loop: every fill instantly re-sends the same market order; with
    nothing working, the strategy arms itself on the next bar. Records the refusals."""

    def __init__(self) -> None:
        super().__init__(self.arm, lambda ctx, fill: ctx.order("X", 1))
        self.rejected: list[str] = []

    @staticmethod
    def arm(ctx: Context, step: int) -> None:
        if not ctx.open_orders():
            ctx.order("X", 1)

    def on_order(self, ctx: Context, update: OrderUpdate) -> None:
        super().on_order(ctx, update)
        if update.status is OrderStatus.REJECTED:
            self.rejected.append(update.reason)


def guard_control(max_fills: int, window_s: float) -> RiskControl:
    rule = RepeatedExecutionGuard(max_fills=max_fills, window_seconds=window_s)
    return RiskControl([named(rule, "repeated-execution-guard")])


@settings(max_examples=40, **FAST)
@given(max_fills=st.integers(1, 12), extra=st.integers(2, 15))
def test_pt05_runaway_loop_is_disabled_after_n_executions(max_fills: int, extra: int) -> None:
    # One fill a minute (each fill at the next bar's open); a one-hour window.
    s = Knight()
    control = guard_control(max_fills, 3600)
    n_bars = max_fills + extra
    out, wire = run({"X": bars([FLAT] * n_bars, str(T0), "min")}, [("s", s)], control)
    assert len(out.fills) == max_fills
    assert control.state("strategy:s") is TradingState.HALTED
    (halt,) = [e for e in control.events if e.kind == "state"]
    assert (halt.rule, halt.by, halt.observed, halt.ts) == (
        "repeated-execution-guard", "rule", float(max_fills), out.fills[-1].ts
    )  # fmt: skip
    # from then on, every order the loop sends is refused by the trading state, and none
    # reaches the broker
    assert s.rejected
    assert all(r.startswith("risk rule trading-state: strategy:s is halted") for r in s.rejected)
    assert all(m.ts <= halt.ts for m in wire.strategy_msgs("submit"))
    assert len(wire.strategy_msgs("submit")) == max_fills  # the order the halt canceled: none


@settings(max_examples=25, **FAST)
@given(max_fills=st.integers(2, 12), n_bars=st.integers(5, 30))
def test_pt05_fills_spread_wider_than_the_window_never_halt(max_fills: int, n_bars: int) -> None:
    # The negative control: one fill a minute, a 30-second window: never N fills in a window.
    s = Knight()
    control = guard_control(max_fills, 30)
    out, _ = run({"X": bars([FLAT] * n_bars, str(T0), "min")}, [("s", s)], control)
    assert len(out.fills) == n_bars - 1
    assert control.states == {} and s.rejected == []


@settings(max_examples=20, **FAST)
@given(max_fills=st.integers(1, 6), pause=st.integers(1, 6))
def test_pt05_only_an_operator_reenables_the_strategy(max_fills: int, pause: int) -> None:
    # Disabled at minute N (the N-th fill); the halt holds, whatever the loop sends, until the
    # operator re-enables it after minute N + pause (an operator action replayed in the
    # backtest); the loop re-arms at the next minute, and is disabled again after N more fills.
    n, resume = max_fills, max_fills + pause
    s = Knight()
    control = guard_control(n, 3600)
    control.schedule(
        int((T0 + pd.Timedelta(minutes=resume)).value), lambda c: c.resume("strategy:s")
    )
    out, _ = run({"X": bars([FLAT] * (resume + n + 4), str(T0), "min")}, [("s", s)], control)
    minutes = [(f.ts - T0.value) // MINUTE for f in out.fills]
    assert minutes == [*range(1, n + 1), *range(resume + 2, resume + 2 + n)]
    changes = [(e.state, e.by) for e in control.events if e.kind == "state"]
    assert changes == [("halted", "rule"), ("active", "operator"), ("halted", "rule")]
    assert control.state("strategy:s") is TradingState.HALTED
    # refused while halted: the re-send on the halting fill and one arming order a minute
    # (minutes N … N + pause, then the last 3 minutes after the second halt)
    assert len(s.rejected) == (1 + pause + 1) + (1 + 3)


class LiftsHalts(RiskMonitor):
    """A misbehaving monitor: on every bar it tries to lift any halted strategy."""

    def on_bar(self, bar: Bar, control: RiskControl) -> None:
        for scope, state in list(control.states.items()):
            if state is TradingState.HALTED:
                control.set_state(scope, TradingState.ACTIVE, "lifted by a rule", by="rule")


def test_pt05_a_rule_lifting_the_halt_during_a_run_is_an_error() -> None:
    # (tests/test_risk_control.py checks set_state(by="rule") on a bare control; here a monitor
    # tries it in the middle of a run: the run stops with the error, the halt stands.)
    rule = named(RepeatedExecutionGuard(max_fills=2, window_seconds=3600), "guard")
    control = RiskControl([rule, named(LiftsHalts(), "lifter")])
    with pytest.raises(TradeloomError, match="only an operator can lift"):
        run({"X": bars([FLAT] * 8, str(T0), "min")}, [("s", Knight())], control)
    assert control.state("strategy:s") is TradingState.HALTED


# --- PT-06: duplicate orders ------------------------------------------------------------------


def fuzz_messages(rng: np.random.Generator, n: int) -> list[tuple]:
    """``n`` messages: (ms since the last, strategy, symbol, buy?, quantity, limit price or
    None for a market order, replace? (3 in 10: an earlier order of the strategy, its client
    order id reused), which earlier order). Gaps are often 0, 250 or 500 ms, so messages land
    exactly on the window's edge."""
    msgs = []
    for _ in range(n):
        gap = int(rng.choice([0, 250, 500])) if rng.random() < 0.4 else int(rng.integers(1_501))
        msgs.append(
            (
                gap,
                "ab"[rng.integers(2)],
                "XY"[rng.integers(2)],
                bool(rng.integers(2)),
                float(rng.choice([1.0, 2.0])),
                [None, 50.0, 51.0][rng.integers(3)],
                rng.random() < 0.3,
                int(rng.integers(100)),
            )
        )
    return msgs


def test_pt06_duplicate_guard_fuzz_no_duplicate_passes_and_none_is_refused_needlessly() -> None:
    # 100 hypothesis examples (window, seed) × 100 messages from a numpy generator seeded by
    # the example = 10,000 fuzzed messages through RiskControl.check. A duplicate is the same
    # strategy, symbol, side, quantity, type and prices as a message with another client order
    # id let through at most window_seconds before (the edge included).
    seen: list[int] = []
    refused_total: list[int] = []

    @settings(max_examples=100, **FAST)
    @given(window=st.sampled_from([0.5, 1.0, 2.0, 5.0]), seed=st.integers(0, 2**32 - 1))
    def prop(window: float, seed: int) -> None:
        msgs = fuzz_messages(np.random.default_rng(seed), 100)
        span = round(window * NS)
        control = RiskControl([named(DuplicateOrderGuard(window_seconds=window), "dup")])
        passed: list[tuple[int, tuple, str]] = []
        sent: dict[str, list[Order]] = {"a": [], "b": []}
        ts, refused = 0, 0
        for i, (gap, sid, sym, buy, qty, limit, amend, which) in enumerate(msgs):
            ts += gap * 1_000_000
            mine = sent[sid]
            if amend and mine:  # amend an earlier order: same id, new quantity / price
                old = mine[which % len(mine)]
                changes: dict[str, Any] = {"quantity": qty}
                if old.limit_price is not None:
                    changes["limit_price"] = limit or 52.0
                order = old.evolve(**changes)
            else:
                kind = OrderType.MARKET if limit is None else OrderType.LIMIT
                side = Side.BUY if buy else Side.SELL
                order = Order(f"{sid}-{i}", sym, side, qty, kind, limit, strategy_id=sid)
            key = (sid, order.symbol, order.side, order.quantity, order.type, order.limit_price)
            view = RiskView(
                ts=ts, cash=1e9, equity=1e9, positions={}, open_orders=[], last_prices={}
            )
            verdict = control.check(order, view)
            coid = order.client_order_id
            earlier = [c for t, k, c in passed if k == key and c != coid and ts - t <= span]
            if verdict is None:
                assert earlier == [], (seed, i, order, earlier)  # no duplicate gets through
                passed.append((ts, key, coid))
                mine.append(order)
            else:  # and none is refused needlessly
                assert verdict.rule == "dup" and earlier, (seed, i, order, verdict)
                refused += 1
        seen.append(len(msgs))
        refused_total.append(refused)

    prop()
    assert sum(seen) >= 10_000
    assert sum(refused_total) > 100  # duplicates were refused (typically 400-1,000)


INTENTS = [
    {"quantity": 5, "limit": 50.0},  # a buy limit under the market: works, never fills
    {"quantity": 5},  # a market buy: fills at the next open
    {"quantity": -3, "limit": 150.0},  # a sell limit over the market: never fills
    {"quantity": 4, "limit": 50.0},
]


@settings(max_examples=50, **FAST)
@given(
    window=st.sampled_from([30.0, 60.0, 120.0, 600.0]),
    plan=st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["send", "send", "replace", "cancel"]),
                st.integers(0, len(INTENTS) - 1),
                st.integers(0, 7),
            ),
            max_size=5,
        ),
        min_size=10,
        max_size=10,
    ),
)
def test_pt06_engine_the_same_intent_twice_never_reaches_the_broker_twice(
    window: float, plan: list[list[tuple[str, int, int]]]
) -> None:
    # Two strategies run the same plan of repeated intents, replaces and cancels on minute bars.
    def act(ctx: Context, step: int) -> None:
        for kind, intent, which in plan[step] if step < len(plan) else ():
            terms = INTENTS[intent]
            working = [o for o in ctx.open_orders() if o.type is OrderType.LIMIT]
            if kind == "send" or not working:
                ctx.order(
                    "X",
                    terms["quantity"],
                    **({"limit": terms["limit"]} if "limit" in terms else {}),
                )
            elif kind == "cancel":
                ctx.cancel(working[which % len(working)])
            elif "limit" in terms and (terms["quantity"] > 0) == (
                working[which % len(working)].side is Side.BUY
            ):
                ctx.replace(
                    working[which % len(working)],
                    quantity=abs(terms["quantity"]),
                    limit=terms["limit"],
                )

    a, b = Script(act), Script(act)
    control = RiskControl([named(DuplicateOrderGuard(window_seconds=window), "dup")])
    _, wire = run({"X": bars([FLAT] * 10, str(T0), "min")}, [("a", a), ("b", b)], control)
    submits = wire.strategy_msgs("submit")
    coids = [m.order.client_order_id for m in submits]
    assert len(coids) == len(set(coids))  # the engine stamps ids: no reused id reaches it
    span = round(window * NS)
    reached = wire.strategy_msgs("submit", "replace")

    def key(o: Order) -> tuple:
        return (o.strategy_id, o.symbol, o.side, o.quantity, o.type, o.limit_price, o.stop_price)

    for i, m in enumerate(reached):
        for n in reached[:i]:
            dup = (
                key(m.order) == key(n.order) and m.order.client_order_id != n.order.client_order_id
            )
            assert not (dup and m.ts - n.ts <= span), (n, m)
    # per strategy: the other strategy's identical orders are not its duplicates
    per = {sid: sum(1 for m in reached if m.order.strategy_id == sid) for sid in "ab"}
    assert per["a"] == per["b"]
    refused = rejects(control, "dup")
    assert {e.scope for e in refused} <= {"strategy:a", "strategy:b"}
    assert len([e for e in refused if e.scope == "strategy:a"]) == len(
        [e for e in refused if e.scope == "strategy:b"]
    )


@settings(max_examples=10, **FAST)
@given(
    qty=st.sampled_from([1.0, 3.0]),
    dup=st.tuples(st.booleans(), st.sampled_from([1.0, 7.0]), st.sampled_from([None, 95.0])),
)
def test_pt06_a_reused_client_order_id_is_refused_and_the_original_survives(
    qty: float, dup: tuple[bool, float, float | None]
) -> None:
    # A venue adapter or plugin that reuses a client order id (the engine never does): the
    # duplicate must be denied, and the working order the id belongs to must be untouched.
    broker = SimulatedBroker()
    broker.start(initial_cash=1e6, currency="USD", symbols=["X"])
    broker.on_bar(Bar("X", 1, *FLAT, 1000.0))
    original = Order("a-1", "X", Side.BUY, qty, OrderType.LIMIT, 95.0, strategy_id="a")
    broker.submit(original)
    buy, dup_qty, dup_limit = dup
    kind = OrderType.MARKET if dup_limit is None else OrderType.LIMIT
    side = Side.BUY if buy else Side.SELL
    broker.submit(Order("a-1", "X", side, dup_qty, kind, dup_limit, strategy_id="a"))
    refused = [u for u in broker.drain() if u.status is OrderStatus.REJECTED]
    assert [u.reason for u in refused] == ["duplicate client order id 'a-1'"]
    kept = broker.get_order("a-1")
    assert kept is not None and kept.status is OrderStatus.ACCEPTED
    assert (kept.side, kept.quantity, kept.limit_price) == (Side.BUY, qty, 95.0)
    broker.on_bar(Bar("X", 2, 94.0, 95.0, 90.0, 92.0, 1000.0))  # trades through 95
    assert broker.ledger.quantity("X") == qty


# --- PT-07: a plugin cannot change or disable its own limits ----------------------------------
# In process, a strategy could still reach the runner through private attributes
# (ctx._engine.risk): true isolation, a strategy in another process with only the Context's
# messages crossing, is the sandbox of issue 7. What holds here: the public Context offers no
# path to the control, the rules or their params; params are frozen; an operator's change is
# recorded and logged.

FORBIDDEN = (RiskControl, RiskGate, RiskRule, BacktestEngine, SimulatedBroker, Params)
PROBES = ("risk", "rules", "control", "gate", "limits", "params", "engine", "broker", "states")


def leaks(obj: object, depth: int = 0, seen: set[int] | None = None) -> list[str]:
    """The risk objects reachable from ``obj`` through containers and attributes (4 levels)."""
    if isinstance(obj, FORBIDDEN):
        return [type(obj).__name__]
    scalar = (str, bytes, int, float, complex, bool, enum.Enum, np.ndarray, np.generic)
    if obj is None or depth > 4 or isinstance(obj, (*scalar, pd.Timestamp, type)):
        return []
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    children: list[object] = []
    if isinstance(obj, Mapping):
        children = [*obj.keys(), *obj.values()]
    elif isinstance(obj, list | tuple | set | frozenset):
        children = list(obj)
    else:
        names: list[str] = []
        for cls in type(obj).__mro__:
            slots = cls.__dict__.get("__slots__", ())
            names += [slots] if isinstance(slots, str) else list(slots)
        if dataclasses.is_dataclass(obj):
            names += [f.name for f in dataclasses.fields(obj)]
        children = [getattr(obj, n) for n in names if hasattr(obj, n)]
        children += list(getattr(obj, "__dict__", {}).values())
    return [leak for child in children for leak in leaks(child, depth + 1, seen)]


def api_calls(ctx: Context) -> dict[str, Callable[[], object]]:
    """One call of every public Context member (a new one must be added here after checking
    that it hands out no risk object)."""
    sym = "X"
    parked = ctx.order(sym, 1, limit=50.0)
    return {
        "ts": lambda: ctx.ts,
        "now": lambda: ctx.now,
        "symbols": lambda: ctx.symbols,
        "strategy_id": lambda: ctx.strategy_id,
        "log": lambda: ctx.log,
        "bar_count": lambda: ctx.bar_count(sym),
        "history": lambda: ctx.history(sym, 5),
        "last_price": lambda: ctx.last_price(sym),
        "fx_rate": lambda: ctx.fx_rate(sym),
        "size_fixed_fractional": lambda: ctx.size_fixed_fractional(sym, 0.01, 90.0),
        "size_atr": lambda: ctx.size_atr(sym, 0.01, window=3),
        "size_volatility_target": lambda: ctx.size_volatility_target(sym, 0.1, window=5),
        "max_order_size": lambda: ctx.max_order_size(sym, "buy"),  # a number, not the limits
        "position": lambda: ctx.position(sym),
        "quantity": lambda: ctx.quantity(sym),
        "positions": lambda: ctx.positions(),
        "cash": lambda: ctx.cash,
        "buying_power": lambda: ctx.buying_power,
        "equity": lambda: ctx.equity,
        "account": lambda: ctx.account(),
        "open_orders": lambda: ctx.open_orders(),
        "get_order": lambda: ctx.get_order(parked.client_order_id),
        "order": lambda: ctx.order(sym, 1, limit=49.0),
        "buy": lambda: ctx.buy(sym, 1, limit=48.0),
        "sell": lambda: ctx.sell(sym, 1, limit=150.0),
        "order_target": lambda: ctx.order_target(sym, 9, limit=47.0),
        "order_target_percent": lambda: ctx.order_target_percent(sym, 0.000001, limit=46.0),
        "oco": lambda: ctx.oco(sym, -1, limit=150.0, stop=60.0),
        "bracket": lambda: ctx.bracket(sym, 1, take_profit=150.0, stop_loss=60.0, limit=70.0),
        "replace": lambda: ctx.replace(parked, limit=45.0),
        "cancel": lambda: ctx.cancel(parked),
    }


def test_pt07_the_context_offers_no_path_to_the_limits() -> None:
    found: dict[str, Any] = {}

    def act(ctx: Context, step: int) -> None:
        if step != 10:
            return
        public = {n for n in dir(ctx) if not n.startswith("_")}
        calls = api_calls(ctx)
        found["public"] = public
        found["unreviewed"] = public - set(calls)
        found["leaks"] = {n: leaks(call()) for n, call in calls.items() if n in public}
        found["probes"] = {}
        for name in PROBES:  # reading a risk handle, or planting one
            try:
                getattr(ctx, name)
                found["probes"][name] = "read"
            except AttributeError:
                try:
                    setattr(ctx, name, None)
                    found["probes"][name] = "set"
                except AttributeError:
                    found["probes"][name] = "AttributeError"
        order = ctx.open_orders()[0]
        try:  # shrinking a working order the rules count would hide exposure
            order.quantity = 0.0  # type: ignore[misc]
            found["order"] = "mutable"
        except AttributeError:
            found["order"] = "frozen"

    rules = [
        named(MaxOrderQuantity(max_quantity=100), "max-order-quantity"),
        named(MaxPosition(max_quantity=1_000), "max-position"),
    ]
    control = RiskControl(rules)
    closes = [100.0 + (i % 3) for i in range(12)]
    run({"X": path_bars(closes)}, [("s", Script(act))], control)
    assert found["unreviewed"] == set(), f"new Context API: review and add to api_calls: {found}"
    assert not any(w in n for n in found["public"] for w in PROBES), found["public"]
    assert {n: v for n, v in found["leaks"].items() if v} == {}
    assert found["probes"] == dict.fromkeys(PROBES, "AttributeError")
    assert found["order"] == "frozen"
    assert [r.params.max_quantity for r in rules] == [100, 1_000]  # type: ignore[attr-defined]


BUILTIN_RULES: list[RiskRule] = [
    MaxOrderQuantity(max_quantity=10),
    MaxOrderNotional(max_notional=1_000),
    MaxPosition(max_quantity=10),
    PriceCollar(max_deviation_pct=5),
    MaxGrossExposure(max_gross=1_000),
    MaxNetExposure(max_net=1_000),
    MaxLeverage(max_leverage=2),
    RestrictedInstruments(symbols=["X"]),
    MessageThrottle(max_per_second=5, halt_after=3),
    DuplicateOrderGuard(window_seconds=2),
    StaleDataGuard(max_age_seconds=60),
    MaxVar(max_var=1_000),
    RepeatedExecutionGuard(max_fills=3, window_seconds=60),
]


@pytest.mark.parametrize("rule", BUILTIN_RULES, ids=lambda r: type(r).__name__)
def test_pt07_rule_params_are_frozen(rule: RiskRule) -> None:
    before = rule.params.model_dump()
    for field, value in before.items():
        with pytest.raises(ValidationError, match="frozen"):
            setattr(rule.params, field, value)
        with pytest.raises(ValidationError):
            rule.params.disabled = True  # nor can a new switch be planted
    assert rule.params.model_dump() == before


def test_pt07_operator_changes_take_effect_and_are_recorded_and_logged() -> None:
    from loguru import logger

    rule = named(MaxOrderQuantity(max_quantity=10), "max-order-quantity")
    control = RiskControl([rule])
    change_at = int((T0 + pd.Timedelta("3min")).value)
    control.schedule(
        change_at, lambda c: c.update_rule("max-order-quantity", "desk", max_quantity=5)
    )
    s = Script(lambda c, i: c.order("X", 8, limit=50.0 - i))
    logger.enable("tradeloom")
    sink: list[Any] = []
    hid = logger.add(sink.append, level="WARNING")
    try:
        out, wire = run({"X": bars([FLAT] * 6, str(T0), "min")}, [("s", s)], control)
        # a switch the rule does not have cannot be planted through the operator path either
        # (bad values and unknown rule names: tests/test_risk_control.py)
        with pytest.raises(ValidationError, match="disabled"):
            control.update_rule("max-order-quantity", "off", disabled=True)
    finally:
        logger.remove(hid)
        logger.disable("tradeloom")
    # orders at minutes 0-3 pass (the change runs after the strategies at minute 3), 4-5 refused
    assert [m.ts for m in wire.strategy_msgs("submit")] == [
        int((T0 + pd.Timedelta(minutes=k)).value) for k in range(4)
    ]
    assert [(e.client_order_id, e.limit, e.observed) for e in rejects(control)] == [
        ("s-5", 5.0, 8.0),
        ("s-6", 5.0, 8.0),
    ]
    assert rule.params.max_quantity == 5  # type: ignore[attr-defined]
    ops = [e for e in control.events if e.kind == "operator"]
    assert len(ops) == 1
    assert (ops[0].ts, ops[0].scope, ops[0].rule, ops[0].by) == (
        change_at, "global", "max-order-quantity", "operator"
    )  # fmt: skip
    assert ops[0].reason == "max-order-quantity limits changed: {'max_quantity': 5} (desk)"
    logged = [m.record["message"] for m in sink]
    assert logged == [
        "risk rule max-order-quantity changed by operator: {'max_quantity': 5} (desk)"
    ]
    assert all(m.record["level"].name == "WARNING" for m in sink)
    assert len(out.orders) == 6

"""The risk gate's cost: per order with 12 rules, and on the event engine's throughput.

    uv run python bench/risk_gate.py               # 100,000 orders; 1M bars; best of 3
    uv run python bench/risk_gate.py --quick       # 20,000 orders, 100k bars, 1 run: a smoke test
    uv run python bench/risk_gate.py --parts gate  # only the per-order measurements
    uv run python bench/risk_gate.py --sizes 100000 1000000 --repeat 5 --orders 200000

Part 1, the gate (``RiskControl.check(order, view)``) with 12 rules: max-order-quantity,
max-order-notional, max-position, price-collar, max-gross-exposure, max-net-exposure,
max-leverage, restricted-instruments, message-throttle, duplicate-order-guard, stale-data-guard
and repeated-execution-guard (a monitor: it costs nothing per order; its cost is on fills,
``RiskControl.on_fill``, measured on its own). The orders are realistic: two strategies, four
traded symbols (a fifth restricted one), market, limit and stop orders, three positions and
about five working orders in every view, timestamps that move on by an exponential gap (mean
``--gap-ms``) so the throttle's and the duplicate guard's windows slide. Each call is timed
alone with ``time.perf_counter_ns`` after a warm-up; mean, p50, p99 and p99.9 in µs, best of
``--repeat`` repeats (the repeat with the lowest mean). Two runs: limits that let every order
through (the common case) and the same orders with about 10 % of them made to be refused (by
five different rules along the chain). A third pass times each rule's ``check`` alone (the
per-rule columns; best of ``--repeat`` by the sum of the means). Then the engine's side:
``BacktestEngine._risk_view`` (what the engine builds per order) and ``RiskControl.check``
timed inside a 4-symbol backtest that keeps positions and about five working orders.

Part 2, the engine: tradeloom's event engine on the speed workload (bench/data/bars_<n>.parquet,
``SmaCrossover(fast=10, slow=30, quantity=10)`` exactly as ``bench/engines/tradeloom_event.py``)
with no rules, with a typical rule set whose limits never refuse on this workload (the fills
must be identical, checked), and with the same set without its equity monitor (max-drawdown),
which shows what the per-bar part costs. ``result.timings["loop"]``, best of ``--repeat``,
round-robin so the machine's drift spreads over all three.

Targets (from the issue): p99 < 50 µs for the 12-rule check; the typical rule set within 15 %
of no rules (bars/s). Results are printed; ``--json FILE`` also saves the raw figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from run import KNOWN_ANSWERS  # bench/run.py, beside this script: round trips and PnL by size

from tradeloom.api import run_backtest
from tradeloom.data import MarketData, ParquetSource
from tradeloom.engine.backtest import BacktestEngine
from tradeloom.execution import SimulatedBroker
from tradeloom.model import Bar, Fill, Order, OrderStatus, OrderType, Position, Side, TimeInForce
from tradeloom.risk import RiskControl, RiskRule, RiskView
from tradeloom.risk.monitors import MaxDrawdown, RepeatedExecutionGuard
from tradeloom.risk.rules import (
    DuplicateOrderGuard,
    MaxGrossExposure,
    MaxLeverage,
    MaxNetExposure,
    MaxOrderNotional,
    MaxOrderQuantity,
    MaxPosition,
    MessageThrottle,
    PriceCollar,
    RestrictedInstruments,
    StaleDataGuard,
)
from tradeloom.strategy import Context, Strategy

BENCH = Path(__file__).resolve().parent
DATA_DIR = BENCH / "data"
ns = time.perf_counter_ns
cpu_ns = time.thread_time_ns

P99_TARGET_US = 50.0
"""The issue's target: p99 of the 12-rule check under 50 µs."""
ENGINE_TARGET = 0.85
"""The issue's target: the typical rule set's bars/s at least 85 % of no rules' (within 15 %)."""
FAST, SLOW, QUANTITY = 10, 30, 10
"""The speed workload's strategy (bench/engines/_common.py)."""

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
"""Traded in the gate's workload."""
RESTRICTED = "EEE"
"""Priced, never held; only the refused orders of the second run trade it."""
STRATEGIES = ("alpha", "beta")
MINUTE = 60_000_000_000
SECOND = 1_000_000_000


# ---------------------------------------------------------------------------------------------
# the rules


def _named(rule: RiskRule, name: str) -> RiskRule:
    rule.name = name  # what the runner does with the registered name
    return rule


def gate_rules() -> list[RiskRule]:
    """The 12 rules of part 1, in chain order, with limits the common orders pass."""
    return [
        _named(MaxOrderQuantity(max_quantity=1_000), "max-order-quantity"),
        _named(MaxOrderNotional(max_notional=500_000), "max-order-notional"),
        _named(MaxPosition(max_quantity=10_000), "max-position"),
        _named(PriceCollar(max_deviation_pct=5), "price-collar"),
        _named(MaxGrossExposure(max_gross=10_000_000), "max-gross-exposure"),
        _named(MaxNetExposure(max_net=10_000_000), "max-net-exposure"),
        _named(MaxLeverage(max_leverage=10), "max-leverage"),
        _named(RestrictedInstruments(symbols=[RESTRICTED]), "restricted-instruments"),
        _named(MessageThrottle(max_per_second=50, max_per_minute=1_000), "message-throttle"),
        _named(DuplicateOrderGuard(window_seconds=5), "duplicate-order-guard"),
        _named(StaleDataGuard(max_age_seconds=120), "stale-data-guard"),
        _named(
            RepeatedExecutionGuard(max_fills=100_000, window_seconds=60),
            "repeated-execution-guard",
        ),
    ]


def typical_rules(*, drawdown: bool = True) -> list[RiskRule]:
    """Part 2's typical rule set, with limits the speed workload never reaches: 10 units of a
    59–118 price on 100,000 of cash; orders with the same terms are at least two bars (120 s)
    apart; an order is placed at its own bar's time (its data is 0 s old)."""
    rules = [
        _named(MaxOrderQuantity(max_quantity=100), "max-order-quantity"),
        _named(MaxOrderNotional(max_notional=10_000), "max-order-notional"),
        _named(MaxPosition(max_quantity=100), "max-position"),
        _named(PriceCollar(max_deviation_pct=5), "price-collar"),
        _named(MaxGrossExposure(max_gross=50_000), "max-gross-exposure"),
        _named(MaxLeverage(max_leverage=1.0), "max-leverage"),
        _named(MessageThrottle(max_per_second=5, max_per_minute=100), "message-throttle"),
        _named(DuplicateOrderGuard(window_seconds=60), "duplicate-order-guard"),
        _named(StaleDataGuard(max_age_seconds=120), "stale-data-guard"),
    ]
    if drawdown:
        rules.append(_named(MaxDrawdown(max_drawdown_pct=50), "max-drawdown"))
    return rules


# ---------------------------------------------------------------------------------------------
# part 1: the gate's workload


@dataclass
class Account:
    """One state of the account a view shows: positions and working orders."""

    positions: dict[str, Position]
    working: list[Order]


@dataclass
class Workload:
    """Orders and the views they are checked against (built lazily, outside the timing)."""

    orders: list[Order]
    ts: list[int]
    prices: list[dict[str, float]]
    accounts: list[Account]
    account_of: list[int]
    stale: set[int] = field(default_factory=set)
    """Orders whose symbol's latest bar is made 10 minutes old (refused by the stale guard)."""
    kinds: dict[int, str] = field(default_factory=dict)
    """Order index → how it was made to be refused."""

    def view(self, i: int) -> RiskView:
        ts = self.ts[i]
        account = self.accounts[self.account_of[i]]
        prices = self.prices[i]
        bar_ts = ts - ts % MINUTE  # the latest 1-minute bar
        last_bar = dict.fromkeys(prices, bar_ts)
        if i in self.stale:
            last_bar[self.orders[i].symbol] = bar_ts - 10 * MINUTE
        value = sum(p.quantity * prices[s] for s, p in account.positions.items())
        cash = 1_000_000.0 - value
        return RiskView(
            ts=ts,
            cash=cash,
            equity=cash + value,
            positions=account.positions,
            open_orders=account.working,
            last_prices=prices,
            last_bar_ts=last_bar,
        )


def _accounts(rng: random.Random, n: int) -> list[Account]:
    """``n`` account states: three of the four symbols held (long or short), four to six
    working limit orders, 1–3 % away from 100."""
    accounts = []
    for k in range(n):
        held = rng.sample(SYMBOLS, 3)
        positions = {
            s: Position(s, rng.choice((-1.0, 1.0)) * rng.randint(50, 500), 100 + rng.uniform(-2, 2))
            for s in held
        }
        working = []
        for j in range(rng.randint(4, 6)):
            side = rng.choice((Side.BUY, Side.SELL))
            away = rng.uniform(0.01, 0.03) * (-1 if side is Side.BUY else 1)
            working.append(
                Order(
                    f"w{k}-{j}",
                    rng.choice(SYMBOLS),
                    side,
                    float(rng.randint(1, 200)),
                    OrderType.LIMIT,
                    round(100.0 * (1 + away), 2),
                    None,
                    TimeInForce.GTC,
                    rng.choice(STRATEGIES),
                    OrderStatus.ACCEPTED,
                )
            )
        accounts.append(Account(positions, working))
    return accounts


def make_workload(n: int, gap_ms: float, seed: int, refuse: float) -> Workload:
    """``n`` orders; with ``refuse`` > 0, about that fraction made to be refused, spread over
    five rules along the chain (quantity, collar, restricted symbol, duplicate, stale data)."""
    rng = random.Random(seed)
    pick = random.Random(seed + 1)  # which orders to spoil: the others are the same either way
    accounts = _accounts(rng, 64)
    price = dict.fromkeys((*SYMBOLS, RESTRICTED), 100.0)
    orders: list[Order] = []
    stamps: list[int] = []
    prices: list[dict[str, float]] = []
    account_of: list[int] = []
    last_terms: dict[tuple[Any, ...], int] = {}  # terms → ts, to keep the common orders unique
    window = 5 * SECOND + SECOND  # the duplicate guard's window, and a margin
    ts = 1_700_000_000 * SECOND
    account = 0
    stale: set[int] = set()
    kinds: dict[int, str] = {}
    refusals = ("quantity", "collar", "restricted", "duplicate", "stale")
    previous: Order | None = None
    for i in range(n):
        ts += max(1, int(rng.expovariate(1.0 / (gap_ms * 1e6))))
        for s in price:
            price[s] *= 1.0 + rng.gauss(0.0, 0.0005)
        if i % 200 == 0:
            account = rng.randrange(len(accounts))
        strategy = rng.choice(STRATEGIES)
        symbol = rng.choice(SYMBOLS)
        side = rng.choice((Side.BUY, Side.SELL))
        quantity = float(rng.randint(1, 200))
        ref = price[symbol]
        u = rng.random()
        limit = stop = None
        if u < 0.6:
            kind = OrderType.MARKET
        elif u < 0.9:
            kind = OrderType.LIMIT
            limit = round(ref * (1 + rng.uniform(-0.02, 0.02)), 2)
        else:
            kind = OrderType.STOP
            stop = round(ref * (1 + rng.uniform(0.001, 0.02) * side.sign), 2)
        # the common orders never repeat one another within the duplicate guard's window
        while True:
            terms = (strategy, symbol, side, quantity, kind, limit, stop)
            seen = last_terms.get(terms)
            if seen is None or ts - seen > window:
                break
            quantity += 1.0
        coid = f"{strategy}-{i}"
        bad = refusals[pick.randrange(len(refusals))] if pick.random() < refuse else None
        if bad == "duplicate" and previous is None:
            bad = None
        if bad == "quantity":
            quantity = 5_000.0
        elif bad == "collar":
            kind, limit, stop = OrderType.LIMIT, round(ref * 1.10, 2), None
        elif bad == "restricted":
            symbol = RESTRICTED
        elif bad == "stale":
            stale.add(i)
        if bad == "duplicate":
            assert previous is not None
            order = Order(
                coid, previous.symbol, previous.side, previous.quantity, previous.type,
                previous.limit_price, previous.stop_price, TimeInForce.GTC, previous.strategy_id,
                OrderStatus.PENDING, 0.0, 0.0, ts, ts,
            )  # fmt: skip
        else:
            order = Order(
                coid, symbol, side, quantity, kind, limit, stop, TimeInForce.GTC, strategy,
                OrderStatus.PENDING, 0.0, 0.0, ts, ts,
            )  # fmt: skip
        if bad is not None:
            kinds[i] = bad
        else:
            last_terms[(strategy, symbol, side, quantity, kind, limit, stop)] = ts
            previous = order
        orders.append(order)
        stamps.append(ts)
        prices.append(dict(price))
        account_of.append(account)
    return Workload(orders, stamps, prices, accounts, account_of, stale, kinds)


# ---------------------------------------------------------------------------------------------
# part 1: timing


def stats_us(samples: np.ndarray) -> dict[str, float]:
    us = samples / 1_000.0
    return {
        "n": len(us),
        "mean": float(us.mean()),
        "p50": float(np.percentile(us, 50)),
        "p99": float(np.percentile(us, 99)),
        "p999": float(np.percentile(us, 99.9)),
        "max": float(us.max()),
    }


def timer_overhead_ns(clock: Callable[[], int] = ns) -> float:
    """What an empty ``t0 = clock(); clock() - t0`` pair costs (the median)."""
    out = np.empty(100_000, np.int64)
    for i in range(len(out)):
        t0 = clock()
        out[i] = clock() - t0
    return float(np.median(out))


@contextmanager
def quiet_gc() -> Iterator[None]:
    """The collector settings of the engine's loop (``tradeloom.engine.backtest._quiet_gc``):
    objects alive before are frozen out of it and the young-generation threshold is raised, so
    a per-call figure is not a full collection over the workload's objects."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 100_000), max(thresholds[1], 50), max(thresholds[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@dataclass
class GateRun:
    samples: np.ndarray
    refused: Counter[str]
    intended: int
    """Orders made to be refused (those past the warm-up)."""


def time_gate(work: Workload, warmup: int, clock: Callable[[], int] = ns) -> GateRun:
    """``RiskControl.check`` per order, fresh rules; the first ``warmup`` orders untimed.
    ``clock``: wall time (``perf_counter_ns``) or the thread's CPU time (``thread_time_ns``)."""
    control = RiskControl(gate_rules())
    check = control.check
    view = work.view
    out = np.empty(len(work.orders) - warmup, np.int64)
    refused: Counter[str] = Counter()
    with quiet_gc():
        for i, order in enumerate(work.orders):
            v = view(i)
            t0 = clock()
            verdict = check(order, v)
            dt = clock() - t0
            if i >= warmup:
                out[i - warmup] = dt
                if verdict is not None:
                    refused[verdict.rule] += 1
    intended = sum(1 for i in work.kinds if i >= warmup)
    return GateRun(out, refused, intended)


def time_rules(work: Workload, warmup: int) -> list[tuple[str, np.ndarray]]:
    """Each rule's ``check`` timed alone, in chain order, stopping at the first refusal as the
    gate does (fresh rules; the monitor, which checks nothing, is not in the chain)."""
    control = RiskControl(gate_rules())
    chain = control.gate.rules
    samples: list[list[int]] = [[] for _ in chain]
    view = work.view
    with quiet_gc():
        for i, order in enumerate(work.orders):
            v = view(i)
            for j, rule in enumerate(chain):
                t0 = ns()
                verdict = rule.check(order, v)
                dt = ns() - t0
                if i >= warmup:
                    samples[j].append(dt)
                if verdict is not None:
                    break
    return [(r.name, np.array(s, np.int64)) for r, s in zip(chain, samples, strict=True)]


def time_on_fill(n: int, warmup: int, gap_ms: float, seed: int) -> np.ndarray:
    """``RiskControl.on_fill`` with the 12 rules (the repeated-execution guard watches fills)."""
    rng = random.Random(seed)
    control = RiskControl(gate_rules())
    fills = []
    ts = 1_700_000_000 * SECOND
    for i in range(n + warmup):
        ts += max(1, int(rng.expovariate(1.0 / (gap_ms * 1e6))))
        fills.append(
            Fill(
                f"f{i}",
                f"o{i}",
                rng.choice(SYMBOLS),
                rng.choice((Side.BUY, Side.SELL)),
                float(rng.randint(1, 200)),
                100.0,
                0.0,
                ts,
                rng.choice(STRATEGIES),
            )
        )
    on_fill = control.on_fill
    out = np.empty(n, np.int64)
    with quiet_gc():
        for i, fill in enumerate(fills):
            t0 = ns()
            on_fill(fill)
            dt = ns() - t0
            if i >= warmup:
                out[i - warmup] = dt
    assert not control.events, "the repeated-execution guard fired: raise its limit"
    return out


# ---------------------------------------------------------------------------------------------
# part 1: the engine's side (RiskView built per order, the check inside a run)


class Churn(Strategy):
    """Per timestamp: one market order that moves one symbol (in turn) toward a random position
    in ±500 units, and five working limit orders kept 2–3 % from the close in random symbols,
    the oldest canceled once it is 30 timestamps old (cancels pass the throttle too)."""

    def on_start(self, ctx: Context) -> None:
        self.rng = random.Random(7)
        self.k = 0
        self.born: dict[str, int] = {}

    def on_bars(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        rng, self.k = self.rng, self.k + 1
        symbols = list(bars)
        symbol = symbols[self.k % len(symbols)]
        quantity = rng.randint(-500, 500) - ctx.quantity(symbol)
        if quantity:
            ctx.order(symbol, quantity)
        working = ctx.open_orders()
        for order in working:
            if order.type is OrderType.LIMIT and self.k - self.born[order.client_order_id] > 30:
                ctx.cancel(order)
                working.remove(order)
                break
        for _ in range(5 - sum(1 for o in working if o.type is OrderType.LIMIT)):
            symbol = rng.choice(symbols)
            buy = rng.random() < 0.5
            away = rng.uniform(0.02, 0.03)
            close = bars[symbol].close
            limit = round(close * (1 - away if buy else 1 + away), 2)
            order = ctx.order(symbol, rng.randint(1, 200) * (1 if buy else -1), limit=limit)
            self.born[order.client_order_id] = self.k


def churn_market(steps: int, seed: int) -> MarketData:
    """Four symbols of 1-minute bars, a random walk around 100."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-02", periods=steps, freq="min", tz="UTC", name="ts")
    frames = {}
    for symbol in SYMBOLS:
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0005, steps)))
        open_ = np.concatenate(([100.0], close[:-1]))
        frames[symbol] = pd.DataFrame(
            {
                "open": open_,
                "high": np.maximum(open_, close) * 1.0002,
                "low": np.minimum(open_, close) * 0.9998,
                "close": close,
                "volume": 1_000.0,
            },
            index=index,
        )
    return MarketData(frames)


@dataclass
class EngineSide:
    view: np.ndarray
    check: np.ndarray
    both: np.ndarray
    orders: int
    rejects: int
    positions: float
    working: float
    pieces: dict[str, float]
    """Mean µs of each part the view reads (with ``pieces=True``)."""


def view_pieces(engine: BacktestEngine) -> tuple[tuple[str, Callable[[], Any]], ...]:
    """What ``BacktestEngine._risk_view`` reads, each to be timed on its own."""
    broker = engine.broker
    return (
        ("  ledger.equity()", lambda: broker.ledger.equity()),
        ("  ledger.positions()", lambda: broker.ledger.positions()),
        ("  broker.open_orders()", lambda: broker.open_orders()),
        ("  dict(engine.prices)", lambda: dict(engine.prices)),
    )


def time_engine_side(
    steps: int, warmup: int, seed: int, *, pieces: bool = False, clock: Callable[[], int] = ns
) -> EngineSide:
    """``BacktestEngine._risk_view`` and ``RiskControl.check`` timed per call inside a 4-symbol
    run of :class:`Churn` with the 12 rules (the engine's own instances, wrapped). With
    ``pieces``, also what the view reads, each timed again right after the build. ``clock``:
    as for :func:`time_gate`."""
    control = RiskControl(gate_rules())
    engine = BacktestEngine(
        churn_market(steps, seed), [("alpha", Churn())], SimulatedBroker(), control,
        initial_cash=1_000_000.0, currency="USD",
    )  # fmt: skip
    views: list[int] = []  # every build: orders, replaces and cancels
    checks: list[int] = []
    paired: list[int] = []  # the view built for each checked order, and its check
    held: list[int] = []
    working: list[int] = []
    build, check = engine._risk_view, control.check
    parts = view_pieces(engine) if pieces else ()
    part_times: dict[str, list[int]] = {name: [] for name, _ in parts}

    def timed_view(exclude: str = "") -> RiskView:
        t0 = clock()
        view = build(exclude)
        views.append(clock() - t0)
        held.append(len(view.positions))
        working.append(len(view.open_orders))
        for name, part in parts:
            t0 = clock()
            part()
            part_times[name].append(clock() - t0)
        return view

    def timed_check(order: Order, view: RiskView, **kw: Any) -> Any:
        t0 = clock()
        verdict = check(order, view, **kw)
        dt = clock() - t0
        checks.append(dt)
        paired.append(views[-1] + dt)
        return verdict

    engine._risk_view = timed_view  # type: ignore[method-assign]
    control.check = timed_check  # type: ignore[method-assign]
    engine.run()
    rejects = sum(1 for e in control.events if e.kind == "reject")
    return EngineSide(
        np.array(views[warmup:], np.int64),
        np.array(checks[warmup:], np.int64),
        np.array(paired[warmup:], np.int64),
        len(checks),
        rejects,
        float(np.mean(held[warmup:])),
        float(np.mean(working[warmup:])),
        {name: float(np.mean(t[warmup:])) / 1e3 for name, t in part_times.items()},
    )


# ---------------------------------------------------------------------------------------------
# part 2: the event engine on the speed workload


CONFIGS: tuple[tuple[str, Callable[[], list[RiskRule]]], ...] = (
    ("no rules", list),
    ("typical rule set", typical_rules),
    ("typical, without max-drawdown", lambda: typical_rules(drawdown=False)),
)


def ensure_data(console: Console, n: int) -> Path:
    path = DATA_DIR / f"bars_{n}.parquet"
    if not path.exists():
        console.print(f"Generating {path.relative_to(BENCH.parent)} ({n:,} bars, seed 42)…")
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(BENCH / "gen_data.py"), "--out", str(DATA_DIR), "--sizes"]
        subprocess.run([*cmd, str(n)], check=True)
    return path


def run_engine(market: MarketData, rules: list[RiskRule]) -> dict[str, Any]:
    from tradeloom_strategies import SmaCrossover

    strategy = SmaCrossover(fast=FAST, slow=SLOW, quantity=QUANTITY)
    result = run_backtest(market, strategy, risk=rules, stream="never")
    out = {
        "loop_s": result.timings["loop"],
        "orders": len(result.orders),
        "fills": len(result.fills),
        "round_trips": len(result.trades),
        "risk_events": len(result.risk_events),
        "pnl": round(float(result.trades["pnl"].sum()), 4) if "pnl" in result.trades else None,
    }
    del result
    gc.collect()
    return out


def instrument(engine: BacktestEngine, *, per_rule: bool) -> dict[str, list[int]]:
    """Wrap the engine's risk work in per-call timers (ns): ``_risk_view`` and the parts it is
    made of (each read again right after the build, outside its timing), ``RiskControl.check``,
    each rule's ``check`` (``per_rule``) and the per-bar ``_watch`` (monitors of bars and
    equity). The timers add about one perf_counter_ns pair to each call they wrap."""
    control = engine.risk
    broker = engine.broker  # its ledger exists once the run starts
    build, check, watch = engine._risk_view, control.check, engine._watch_bars
    pieces = view_pieces(engine)
    names = ["_risk_view", *(name for name, _ in pieces), "RiskControl.check"]
    names += [f"  {rule.name}" for rule in control.gate.rules] if per_rule else []
    names += ["_watch (per bar)", "  ledger.equity() (per bar)", "  RiskControl.on_equity"]
    timers: dict[str, list[int]] = {name: [] for name in names}

    def timed_view(exclude: str = "") -> RiskView:
        t0 = ns()
        view = build(exclude)
        timers["_risk_view"].append(ns() - t0)
        for name, piece in pieces:
            t0 = ns()
            piece()
            timers[name].append(ns() - t0)
        return view

    def timed_check(order: Order, view: RiskView, **kw: Any) -> Any:
        t0 = ns()
        verdict = check(order, view, **kw)
        timers["RiskControl.check"].append(ns() - t0)
        return verdict

    on_equity = control.on_equity
    watches, equities, marks = (
        timers[k]
        for k in ("_watch (per bar)", "  ledger.equity() (per bar)", "  RiskControl.on_equity")
    )

    def timed_watch(bars: Any) -> None:
        t0 = ns()
        watch(bars)
        t1 = ns()
        equity = (
            broker.ledger.equity()
        )  # its parts again (marking the same equity twice is a no-op)
        t2 = ns()
        on_equity(engine.now, equity)
        t3 = ns()
        watches.append(t1 - t0)
        equities.append(t2 - t1)
        marks.append(t3 - t2)

    def timed_rule(rule: RiskRule) -> Callable[[Order, RiskView], Any]:
        inner, times = rule.check, timers[f"  {rule.name}"]

        def timed(order: Order, view: RiskView) -> Any:
            t0 = ns()
            verdict = inner(order, view)
            times.append(ns() - t0)
            return verdict

        return timed

    engine._risk_view = timed_view  # type: ignore[method-assign]
    control.check = timed_check  # type: ignore[method-assign]
    if control.watches_bars or control.watches_equity:
        engine._watch_bars = timed_watch  # type: ignore[method-assign]
    if per_rule:
        for rule in control.gate.rules:
            rule.check = timed_rule(rule)  # type: ignore[method-assign]
    return timers


def engine_breakdown(market: MarketData, rules: list[RiskRule]) -> tuple[float, dict[str, Any]]:
    """One instrumented run of the speed workload (as ``run_backtest`` builds it): the loop's
    time and, per timer of :func:`instrument`, calls, mean µs and seconds in all."""
    from tradeloom_strategies import SmaCrossover

    strategy = SmaCrossover(fast=FAST, slow=SLOW, quantity=QUANTITY)
    engine = BacktestEngine(
        market, [("smacrossover", strategy)], SimulatedBroker(), RiskControl(rules),
        initial_cash=100_000.0, currency="USD",
    )  # fmt: skip
    timers = instrument(engine, per_rule=True)
    t0 = time.perf_counter()
    engine.run()
    loop = time.perf_counter() - t0
    out = {
        name: {
            "calls": len(t),
            "mean_us": float(np.mean(t)) / 1e3,
            "total_s": float(np.sum(t)) / 1e9,
        }
        for name, t in timers.items()
    }
    del engine, timers
    gc.collect()
    return loop, out


# ---------------------------------------------------------------------------------------------
# output


def _us(x: float) -> str:
    return f"{x:,.2f}"


def _machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cpu or platform.processor()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average {load}"
    )


def best_of(repeats: list[np.ndarray]) -> dict[str, float]:
    """Each statistic the lowest over the repeats: other work on the machine only ever adds
    time (a preempted call), so the lowest is the closest to the gate's own cost."""
    every = [stats_us(samples) for samples in repeats]
    return {key: min(s[key] for s in every) for key in every[0]}


def part_gate(console: Console, args: argparse.Namespace, record: dict[str, Any]) -> bool:
    n, warmup, repeat = args.orders, args.warmup, args.repeat
    console.rule(f"Part 1 — the gate: {n:,} orders after {warmup:,} warm-up, best of {repeat}")
    overhead = timer_overhead_ns()
    common = make_workload(n + warmup, args.gap_ms, args.seed, refuse=0.0)
    refusing = make_workload(n + warmup, args.gap_ms, args.seed, refuse=0.10)
    runs: dict[str, list[GateRun]] = {"pass": [], "refuse": []}
    for rep in range(repeat):
        for key, work in (("pass", common), ("refuse", refusing)):
            console.print(f"  gate · {key} · repeat {rep + 1}/{repeat}")
            runs[key].append(time_gate(work, warmup))
    for run in runs["pass"]:
        assert not run.refused, f"the common orders were refused: {run.refused}"
    console.print(f"  each rule timed alone, {repeat} × 2 passes")
    per_rule = [time_rules(common, warmup) for _ in range(repeat)]
    per_rule_refuse = [time_rules(refusing, warmup) for _ in range(repeat)]
    console.print("  on_fill")
    fills = [time_on_fill(n, warmup, args.gap_ms, args.seed) for _ in range(repeat)]
    console.print("  engine side (4-symbol run of Churn with the 12 rules)")
    steps = max(2_000, n // 2)
    sides = [time_engine_side(steps, warmup, args.seed) for _ in range(repeat)]
    assert not any(e.rejects for e in sides), "the engine run's orders were refused"
    parts = time_engine_side(steps, warmup, args.seed, pieces=True).pieces
    console.print("  the same, timed in the thread's CPU time (time.thread_time_ns)")
    cpu_overhead = timer_overhead_ns(cpu_ns)

    def cpu(samples: np.ndarray) -> np.ndarray:
        return np.maximum(samples - round(cpu_overhead), 0)

    cpu_pass = [cpu(time_gate(common, warmup, cpu_ns).samples) for _ in range(repeat)]
    cpu_refuse = [cpu(time_gate(refusing, warmup, cpu_ns).samples) for _ in range(repeat)]
    cpu_engine = [cpu(time_engine_side(steps, warmup, args.seed, clock=cpu_ns).check)]

    table = Table(
        title=f"RiskControl.check with 12 rules — {n:,} orders timed one by one after "
        f"{warmup:,} warm-up; each statistic the best of {repeat} repeats (µs)",
        caption=f"wall time (perf_counter_ns; an empty pair ≈ {overhead:.0f} ns, included), "
        "except the CPU time rows: the thread's CPU time (thread_time_ns, its empty pair's "
        f"{cpu_overhead:.0f} ns taken off), which leaves out the time the thread waits while other "
        "processes run; p99 target < 50 µs",
        title_justify="left",
        caption_justify="left",
    )
    for name in ("measure", "calls", "refused", "mean", "p50", "p99", "p99.9", "max", "target"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    record["gate"] = {"timer_overhead_ns": overhead, "cpu_timer_overhead_ns": cpu_overhead}

    def row(
        label: str, repeats: list[np.ndarray], refused: str = "—", target: bool = False
    ) -> None:
        s = best_of(repeats)
        record["gate"][label] = {
            **s, "refused": refused, "p99_each": [stats_us(x)["p99"] for x in repeats],
        }  # fmt: skip
        mark = "—"
        if target:
            ok = s["p99"] < P99_TARGET_US
            mark = "[green]✓ met[/]" if ok else "[bold red]✗ missed[/]"
        table.add_row(
            label, f"{s['n']:,}", refused, _us(s["mean"]), _us(s["p50"]), _us(s["p99"]),
            _us(s["p999"]), _us(s["max"]), mark,
        )  # fmt: skip

    refused = runs["refuse"][0].refused
    share = sum(refused.values()) / n
    row("check, every order passes", [x.samples for x in runs["pass"]], "0", target=True)
    row("check, ~10 % refused", [x.samples for x in runs["refuse"]],
        f"{sum(refused.values()):,} ({share:.1%})", target=True)  # fmt: skip
    row("on_fill (repeated-execution-guard)", fills)
    row("engine: _risk_view (build the view)", [e.view for e in sides])
    row("engine: check (in a 4-symbol run)", [e.check for e in sides], "0", target=True)
    row("engine: view + check per order", [e.both for e in sides])
    row("CPU time: check, every order passes", cpu_pass, "0", target=True)
    row("CPU time: check, ~10 % refused", cpu_refuse, f"{sum(refused.values()):,}", True)
    row("CPU time: engine check", cpu_engine, "0", target=True)
    console.print(table)
    console.print(
        f"  refusals by rule (~10 % run; {runs['refuse'][0].intended:,} orders spoiled): "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(refused.items(), key=lambda kv: -kv[1]))
    )
    p99s = {k: ", ".join(_us(stats_us(x.samples)["p99"]) for x in v) for k, v in runs.items()}
    console.print(f"  p99 of every repeat, passing: {p99s['pass']}; refusing: {p99s['refuse']}")
    engine_p99 = ", ".join(_us(stats_us(e.check)["p99"]) for e in sides)
    console.print(f"  p99 of every repeat, engine check: {engine_p99}")
    side = sides[0]
    console.print(
        f"  engine run: {side.orders:,} checks, {side.positions:.1f} positions and "
        f"{side.working:.1f} working orders per view on average; what _risk_view reads, each "
        "timed alone (µs): " + ", ".join(f"{k.strip()} {v:.2f}" for k, v in parts.items())
    )
    record["gate"]["engine view pieces"] = parts

    rules = Table(
        title="Each rule's check timed alone, in chain order (µs; a rule after a refusal is "
        f"not called; each statistic the best of {repeat})",
        title_justify="left",
    )
    for name in ("rule", "calls", "mean", "p50", "p99", "share", "mean, ~10 % refused"):
        rules.add_column(name, justify="left" if name == "rule" else "right")
    names = [name for name, _ in per_rule[0]]
    stats = {k: best_of([dict(rep)[k] for rep in per_rule]) for k in names}
    refusing_stats = {k: best_of([dict(rep)[k] for rep in per_rule_refuse]) for k in names}
    total = sum(st["mean"] for st in stats.values())
    record["rules"] = {k: {**stats[k], "refuse_mean": refusing_stats[k]["mean"]} for k in names}
    for name in names:
        st = stats[name]
        rules.add_row(
            name, f"{st['n']:,}", _us(st["mean"]), _us(st["p50"]), _us(st["p99"]),
            f"{st['mean'] / total:.0%}", _us(refusing_stats[name]["mean"]),
        )  # fmt: skip
    gate_mean = best_of([x.samples for x in runs["pass"]])["mean"]
    rules.add_row(
        "Σ of the rules", "", _us(total), "", "", "", f"check itself: {_us(gate_mean)}",
        style="bold",
    )  # fmt: skip
    console.print(rules)
    console.print()
    gate = record["gate"]
    return all(gate[k]["p99"] < P99_TARGET_US for k in ("check, every order passes",
                                                        "check, ~10 % refused"))  # fmt: skip


def part_engine(console: Console, args: argparse.Namespace, record: dict[str, Any]) -> bool:
    met = True
    record["engine"] = {}
    for n in args.sizes:
        path = ensure_data(console, n)
        market = ParquetSource(path=str(path), symbol="BENCH").load()
        console.rule(f"Part 2 — the event engine on {n:,} bars, best of {args.repeat}")
        loops: dict[str, list[float]] = {label: [] for label, _ in CONFIGS}
        seen: dict[str, dict[str, Any]] = {}
        for rep in range(args.repeat):
            for label, rules in CONFIGS:
                console.print(f"  {label} · repeat {rep + 1}/{args.repeat}")
                out = run_engine(market, rules())
                loops[label].append(out["loop_s"])
                if label in seen and {k: v for k, v in out.items() if k != "loop_s"} != {
                    k: v for k, v in seen[label].items() if k != "loop_s"
                }:
                    raise SystemExit(f"{label}: the repeats disagree: {out} vs {seen[label]}")
                seen[label] = out
        base = seen["no rules"]
        known = KNOWN_ANSWERS.get(n)
        if known is not None and (base["round_trips"], base["pnl"]) != known:
            raise SystemExit(f"no rules: {base} differs from the known answer {known}")
        for label, _ in CONFIGS:
            if seen[label]["fills"] != base["fills"] or seen[label]["risk_events"]:
                raise SystemExit(
                    f"{label}: {seen[label]['fills']:,} fills and {seen[label]['risk_events']} "
                    f"risk events, against {base['fills']:,} fills without rules: a limit fired"
                )
        table = Table(
            title=f"SmaCrossover({FAST}/{SLOW}, {QUANTITY} units) on {n:,} bars — "
            f"result.timings['loop'], best of {args.repeat}",
            caption="ratio = this row's bars/s over no rules' (best loops); target ≥ 0.85 for "
            "the typical rule set",
            title_justify="left",
            caption_justify="left",
        )
        for name in ("rules", "count", "loop s best", "loop s median", "bars/s", "ratio",
                     "fills", "round trips", "target"):  # fmt: skip
            table.add_column(name, justify="left" if name == "rules" else "right")
        best_none = min(loops["no rules"])
        record["engine"][str(n)] = {}
        for label, rules in CONFIGS:
            best = min(loops[label])
            ratio = best_none / best
            target = "—"
            if label == "typical rule set":
                ok = ratio >= ENGINE_TARGET
                met = met and ok
                target = "[green]✓ met[/]" if ok else "[bold red]✗ missed[/]"
            record["engine"][str(n)][label] = {
                **seen[label],
                "loops_s": loops[label],
                "ratio": ratio,
            }
            table.add_row(
                label, str(len(rules())), f"{best:.3f}", f"{statistics.median(loops[label]):.3f}",
                f"{n / best:,.0f}", f"{ratio:.3f}", f"{seen[label]['fills']:,}",
                f"{seen[label]['round_trips']:,}", target,
            )  # fmt: skip
        console.print(table)
        extra = min(loops["typical rule set"]) - best_none
        per_order = min(loops["typical, without max-drawdown"]) - best_none
        watch = extra - per_order
        orders = base["orders"]
        console.print(
            f"  the typical rule set costs {extra:.3f} s of loop over {n:,} bars and {orders:,} "
            f"orders: the 9 order rules {per_order:.3f} s ({per_order / orders * 1e6:.1f} µs per "
            f"order), max-drawdown (an equity monitor, marked every bar) {watch:.3f} s "
            f"({watch / n * 1e6:.2f} µs per bar); the whole budget for 15 % is "
            f"{best_none * (1 / ENGINE_TARGET - 1):.3f} s"
        )
        console.print("  breakdown: one instrumented run of the typical rule set")
        loop, parts = engine_breakdown(market, typical_rules())
        record["engine"][str(n)]["breakdown"] = {"loop_s": loop, "timers": parts}
        detail = Table(
            title=f"Where the typical rule set's time goes on {n:,} bars (one run, every call "
            f"timed: loop {loop:.3f} s with the timers)",
            caption="indented rows are parts of the row above them; the ledger and price reads "
            "are timed again right after each view is built",
            title_justify="left",
            caption_justify="left",
        )
        for name in ("what", "calls", "mean µs", "s in all", "per bar µs"):
            detail.add_column(name, justify="left" if name == "what" else "right")
        for name, t in parts.items():
            detail.add_row(
                name, f"{t['calls']:,}", _us(t["mean_us"]), f"{t['total_s']:.3f}",
                f"{t['total_s'] / n * 1e6:.3f}",
                style=None if name.startswith(" ") else "bold",
            )  # fmt: skip
        paid = sum(t["total_s"] for k, t in parts.items() if not k.startswith(" "))
        detail.add_row(
            "view + check + watch", "", "", f"{paid:.3f}", f"{paid / n * 1e6:.3f}", style="bold"
        )
        console.print(detail)
        console.print()
        del market
        gc.collect()
    return met


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=170)
    console.print(f"[bold]bench/risk_gate.py[/] on {_machine()}")
    record: dict[str, Any] = {"command": ["bench/risk_gate.py", *sys.argv[1:]], "args": vars(args)}
    verdicts = []
    t0 = time.perf_counter()
    if "gate" in args.parts:
        verdicts.append(("check p99 < 50 µs (wall time)", part_gate(console, args, record)))
    if "engine" in args.parts and args.sizes:
        verdicts.append(
            ("typical rule set within 15 % of no rules", part_engine(console, args, record))
        )
    for label, ok in verdicts:
        console.print(f"  target {label}: " + ("[green]met[/]" if ok else "[bold red]MISSED[/]"))
    console.print(f"  {time.perf_counter() - t0:.0f} s in all")
    record["machine"] = _machine()
    record["verdicts"] = dict(verdicts)
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1, default=str) + "\n")
        console.print(f"  raw figures: {args.json}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/risk_gate.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[1_000_000],
        help="bar counts of the engine part (default 1000000; bench/data/bars_<n>.parquet)",
    )  # fmt: skip
    parser.add_argument(
        "--repeat", type=int, default=3, help="repeats of every measurement; best of (default 3)"
    )
    parser.add_argument(
        "--orders", type=int, default=100_000, help="orders timed in part 1 (default 100000)"
    )
    parser.add_argument(
        "--warmup", type=int, default=10_000, help="orders checked before the timing (10000)"
    )
    parser.add_argument(
        "--gap-ms", type=float, default=500.0,
        help="mean time between two orders of part 1, exponential (default 500 ms)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=42, help="the workload's random seed")
    parser.add_argument(
        "--parts", nargs="+", choices=["gate", "engine"], default=["gate", "engine"],
        help="what to measure (default both)",
    )  # fmt: skip
    parser.add_argument("--json", help="also write the raw figures to this file")
    parser.add_argument(
        "--quick", action="store_true", help="20000 orders, 100000 bars, one repeat: a smoke test"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.orders, args.warmup, args.sizes, args.repeat = 20_000, 2_000, [100_000], 1
    if args.repeat < 1 or args.orders < 1 or args.warmup < 0:
        parser.error("--repeat and --orders must be at least 1, --warmup at least 0")
    return args


if __name__ == "__main__":
    sys.exit(main())

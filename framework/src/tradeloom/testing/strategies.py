"""The strategy contract: what every strategy must satisfy, as pytest tests to subclass.

Every check runs the strategy through the real event engine on a short window of a bundled
dataset (IBM 2010-2011 by default), with fresh instances built from ``params`` each time.
See ``docs/testing.md`` for what each check proves and how to read a failure.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from tradeloom.data import MarketData
from tradeloom.model import Fill, Order
from tradeloom.strategy import Strategy
from tradeloom.testing import ComponentContract

__all__ = ["StrategyContract", "perturb_after", "wall_clock_reads"]

STRATEGY_ID = "contract"
"""The strategy id the contract's runs use (client order ids are ``contract-1``, ...)."""

_WALL_CLOCK_FUNCTIONS = (time.time, time.time_ns)  # noqa: TID251 — compared, never called
_WALL_CLOCK_METHODS = frozenset({"now", "utcnow", "today"})
_LOG_MODULES = ("logging", "loguru")
"""Modules whose wall-clock reads are log-record timestamps, not decisions: allowed."""


@dataclass
class Run:
    """What one event-engine run of the contract left behind."""

    order_log: list[Order]
    """Every state of every order, in the order they happened (each order as created first)."""
    fills: list[Fill]
    ts: np.ndarray
    """Timestamps (ns) of the equity curve."""
    equity: np.ndarray


class StrategyContract(ComponentContract):
    """Subclass it (``class TestMyStrategy(StrategyContract)``) and set ``strategy_type`` (the
    registered name) or ``strategy_cls`` (the class); optionally ``params``, ``dataset``,
    ``symbols``, ``start``, ``end``. Override :meth:`market` to run on other data."""

    kind = "strategy"
    strategy_type: ClassVar[str | None] = None
    """The registered name, looked up in a fresh :class:`~tradeloom.plugins.PluginHost`."""
    strategy_cls: ClassVar[type[Strategy] | None] = None
    """The strategy class itself (instead of ``strategy_type``)."""
    dataset: ClassVar[str] = "us-stocks-daily"
    """The bundled dataset the runs use (``tradeloom.data.list_datasets()``)."""
    symbols: ClassVar[list[str]] = ["IBM"]
    start: ClassVar[str] = "2010-01-01"
    end: ClassVar[str] = "2011-12-31"
    initial_cash: ClassVar[float] = 100_000.0
    min_orders: ClassVar[int] = 1
    """Orders the strategy must place on the window (the probes prove nothing about a strategy
    that never trades); set 0 for a strategy that legitimately may not trade."""
    lookahead_cuts: ClassVar[tuple[float, ...]] = (0.35, 0.65)
    """Where the look-ahead probe cuts the timeline, as fractions of its bars (each cut is
    one more backtest)."""
    signal_cuts: ClassVar[int] = 24
    """How many evenly spaced cuts the probe of ``signals()`` makes (no backtest: cheap)."""

    # --- hooks ----------------------------------------------------------------------------------
    def market(self) -> MarketData:
        """The bars every run uses: ``symbols`` of ``dataset`` from ``start`` to ``end``."""
        from tradeloom.data import DatasetSource

        source = DatasetSource(name=self.dataset, symbols=list(self.symbols))
        return source.load(_utc(self.start), _utc(self.end))

    def run(self, market: MarketData | None = None) -> Run:
        """One event-engine run of a fresh strategy on ``market`` (default :meth:`market`)
        with the default simulated broker and no risk rules."""
        from tradeloom.engine.backtest import BacktestEngine
        from tradeloom.execution import SimulatedBroker
        from tradeloom.risk.control import RiskControl

        market = self.market() if market is None else market
        engine = BacktestEngine(
            market,
            [(STRATEGY_ID, self.build())],
            SimulatedBroker(),
            RiskControl([]),
            initial_cash=self.initial_cash,
            currency="USD",
        )
        engine.order_log = []
        out = engine.run()
        return Run(engine.order_log, list(out.fills), np.asarray(out.ts), np.asarray(out.equity))

    # --- the checks -----------------------------------------------------------------------------
    def test_is_a_strategy(self) -> None:
        """The class subclasses :class:`tradeloom.Strategy` and builds from its params."""
        cls = self.component_class()
        assert isinstance(cls, type) and issubclass(cls, Strategy), (
            f"{cls!r} must subclass tradeloom.strategy.Strategy"
        )
        strategy = self.build()
        assert isinstance(strategy.params, cls.Params), (
            f"{cls.__name__}(params) must keep its validated params as .params"
        )

    def test_short_backtest_runs_and_returns_metrics(self) -> None:
        """A backtest on the window completes, places at least ``min_orders`` orders, and its
        metrics are consistent with its equity curve."""
        from tradeloom.api import run_backtest

        market = self.market()
        result = run_backtest(market, [(STRATEGY_ID, self.build())], initial_cash=self.initial_cash)
        metrics = result.metrics
        assert len(result.equity) > 0, "the backtest produced no equity curve"
        final = float(result.equity["equity"].iloc[-1])
        assert np.isfinite(final), f"final equity is {final!r}"
        assert metrics.final_equity == pytest.approx(final), (
            f"metrics.final_equity {metrics.final_equity!r} is not the last equity {final!r}"
        )
        assert metrics.initial_equity == pytest.approx(self.initial_cash)
        assert metrics.num_fills == len(result.fills)
        assert len(result.orders) >= self.min_orders, (
            f"{self.component_name()} placed {len(result.orders)} order(s) from {self.start} to "
            f"{self.end} on {', '.join(self.symbols)} (min_orders = {self.min_orders}): the "
            "other checks prove nothing about a strategy that does not trade; choose params, "
            "symbols or a window on which it trades (or set min_orders = 0)"
        )

    def test_deterministic(self) -> None:
        """Two runs on the same data give identical orders (every state), fills and equity."""
        market = self.market()
        first, second = self.run(market), self.run(market)
        _assert_same(first, second, None, "two identical runs", "first run", "second run")

    def test_no_lookahead(self) -> None:
        """No look-ahead: the bars after a cut point are replaced (prices mirrored and
        amplified around the cut's close, volumes changed); everything up to the cut — every
        order as decided and as updated, every fill, the equity — must stay identical."""
        market = self.market()
        timeline = _timeline(market)
        if len(timeline) < 3:
            raise AssertionError("the contract's window holds fewer than 3 bars")
        base = self.run(market)
        for fraction in self.lookahead_cuts:
            cut = int(timeline[min(len(timeline) - 2, max(0, int(len(timeline) * fraction)))])
            probe = self.run(perturb_after(market, cut))
            _assert_same(
                base,
                probe,
                cut,
                f"the look-ahead probe (bars after {_iso(cut)} replaced)",
                "original data",
                "future replaced",
            )
        decided = sum(1 for o in base.order_log if o.created_ts <= _first_cut(timeline, self))
        if self.min_orders and not decided:
            raise AssertionError(
                f"{self.component_name()} decided no order before the first cut "
                f"({_iso(_first_cut(timeline, self))}), so the look-ahead probe proves nothing; "
                "choose params or a window on which it trades earlier"
            )

    def test_no_wall_clock_reads(self) -> None:
        """Time comes from the engine's clock: building and running the strategy never calls
        ``time.time``, ``time.time_ns``, ``datetime.now/utcnow/today`` or ``date.today``
        (found by a profile hook, so any import style is caught)."""
        market = self.market()
        with wall_clock_reads() as reads:
            self.run(market)
        assert not reads, (
            f"{self.component_name()} read the wall clock during a backtest: "
            + "; ".join(reads[:5])
            + ". Use ctx.now / ctx.ts (the engine's clock) so backtests are reproducible and "
            "paper sessions replay the same decisions"
        )

    def test_event_vector_parity(self) -> None:
        """When the strategy implements ``signals``: the vector engine gives the same trades,
        fills and final equity as the event engine (``tradeloom.parity``)."""
        from tradeloom.api import run_backtest
        from tradeloom.errors import TradeloomError
        from tradeloom.parity import compare_results
        from tradeloom.vector import run_signals

        if not callable(getattr(self.component_class(), "signals", None)):
            pytest.skip(
                f"{self.component_name()} has no signals() method: there is no vector engine "
                "run to compare with (parity applies to strategies that implement signals)"
            )
        market = self.market()
        event = run_backtest(market, [(STRATEGY_ID, self.build())], initial_cash=self.initial_cash)
        try:
            vector = run_signals(
                market,
                self.build(),
                initial_cash=self.initial_cash,
                strategy_id=STRATEGY_ID,
                fallback=False,
            )
        except TradeloomError as exc:
            if "declin" in str(exc):
                pytest.skip(f"signals() declines these params: {exc}")
            raise
        report = compare_results(event, vector, labels=("event", "vector"))
        assert report.ok, report.summary()

    def test_signals_no_lookahead(self) -> None:
        """When the strategy implements ``signals``: the signal arrays up to a cut point do not
        change when the bars after it are replaced."""
        from tradeloom.vector.signals import signal_data

        if not callable(getattr(self.component_class(), "signals", None)):
            pytest.skip(f"{self.component_name()} has no signals() method")
        market = self.market()
        timeline = _timeline(market)
        base = self.build().signals(signal_data(market))
        if base is None:
            pytest.skip("signals() declines these params")
        n = len(timeline)
        cuts = sorted({min(n - 2, max(0, (n * (i + 1)) // (self.signal_cuts + 1))) for i in
                       range(self.signal_cuts)})  # fmt: skip
        for k in cuts:
            probe = self.build().signals(signal_data(perturb_after(market, int(timeline[k]))))
            for name in ("long_entry", "long_exit", "short_entry", "short_exit"):
                a, b = getattr(base, name)[: k + 1], getattr(probe, name)[: k + 1]
                if not np.array_equal(a, b):
                    row = int(np.flatnonzero((a != b).any(axis=tuple(range(1, a.ndim))))[0])
                    raise AssertionError(
                        f"signals() looks ahead: {name} at {_iso(int(timeline[row]))} changed "
                        f"when the bars after {_iso(int(timeline[k]))} were replaced"
                    )


# --- the probes ---------------------------------------------------------------------------------


def perturb_after(market: MarketData, cut: int, *, power: float = 1.5) -> MarketData:
    """A copy of ``market`` whose bars after ``cut`` (ns) are replaced: each price ``p``
    becomes ``ref * (p / ref) ** -power`` where ``ref`` is the symbol's last close at or before
    the cut (every later move is reversed and amplified; high and low swap roles, so bars stay
    valid), and volumes are reversed in time and doubled. Bars at or before ``cut`` are the
    same objects' values, untouched."""
    frames = {}
    for symbol, frame in market.frames.items():
        stamps = frame.index.as_unit("ns").asi8
        after = stamps > cut
        if not after.any():
            frames[symbol] = frame
            continue
        before = frame["close"].to_numpy()[~after]
        ref = float(before[-1]) if len(before) else float(frame["close"].to_numpy()[after][0])
        new = frame.copy()
        values = {c: frame[c].to_numpy()[after] for c in ("open", "high", "low", "close")}
        swapped = (("open", "open"), ("high", "low"), ("low", "high"), ("close", "close"))
        for column, source in swapped:
            new.loc[after, column] = ref * (values[source] / ref) ** -power
        new.loc[after, "volume"] = frame["volume"].to_numpy()[after][::-1] * 2.0 + 1.0
        frames[symbol] = new
    return MarketData(frames, market.quality, market.description + " (perturbed)", market.actions)


@contextmanager
def wall_clock_reads() -> Iterator[list[str]]:
    """Record every wall-clock read made in this thread while the block runs.

    A ``sys.setprofile`` hook sees each call of a C function with the function object, so it
    finds ``time.time()`` whether the caller wrote ``import time``, ``from time import time``
    or an alias, and ``datetime.now()`` on ``datetime`` or any subclass, without patching any
    module (patching misses names bound before the patch). Each read is listed as
    ``"time.time() at path:line"``. Reads made by ``logging`` / ``loguru`` (record timestamps)
    are allowed. Not seen: reads in other threads and in C code (e.g. ``pd.Timestamp.now()``).
    A profile function already set (a profiler) keeps being called.
    """
    reads: list[str] = []
    previous = sys.getprofile()

    def hook(frame: Any, event: str, arg: Any) -> None:
        if previous is not None:
            previous(frame, event, arg)
        if event != "c_call" or not _is_wall_clock(arg):
            return
        module = frame.f_globals.get("__name__", "") if frame is not None else ""
        if module.split(".")[0] in _LOG_MODULES:
            return
        owner = getattr(arg, "__self__", None)
        name = arg.__name__
        if isinstance(owner, type):
            name = f"{owner.__module__}.{owner.__qualname__}.{name}"
        else:
            name = f"time.{name}"
        where = f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "?"
        reads.append(f"{name}() at {where}")

    sys.setprofile(hook)
    try:
        yield reads
    finally:
        sys.setprofile(previous)


def _is_wall_clock(fn: Any) -> bool:
    if any(fn is f for f in _WALL_CLOCK_FUNCTIONS):
        return True
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, type) and getattr(fn, "__name__", "") in _WALL_CLOCK_METHODS:
        import datetime

        return issubclass(owner, datetime.date)
    return False


# --- helpers ------------------------------------------------------------------------------------


def _utc(value: str | None) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _timeline(market: MarketData) -> np.ndarray:
    stamps = [frame.index.as_unit("ns").asi8 for frame in market.frames.values()]
    return np.unique(np.concatenate(stamps)) if stamps else np.empty(0, np.int64)


def _first_cut(timeline: np.ndarray, contract: StrategyContract) -> int:
    fraction = min(contract.lookahead_cuts)
    return int(timeline[min(len(timeline) - 2, max(0, int(len(timeline) * fraction)))])


def _iso(ts: int) -> str:
    return pd.Timestamp(ts, tz="UTC").isoformat()


def _describe(order: Order) -> str:
    price = ""
    if order.limit_price is not None:
        price += f" limit {order.limit_price:g}"
    if order.stop_price is not None:
        price += f" stop {order.stop_price:g}"
    return (
        f"{order.client_order_id} {order.status.value} {order.side.value} {order.quantity:g} "
        f"{order.symbol} {order.type.value}{price} (created {_iso(order.created_ts)}, "
        f"updated {_iso(order.updated_ts)})"
    )


def _first_difference(
    a: list[Any], b: list[Any], describe: Callable[[Any], str]
) -> tuple[int, str, str] | None:
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else None
        y = b[i] if i < len(b) else None
        if x != y:
            return i, "(none)" if x is None else describe(x), "(none)" if y is None else describe(y)
    return None


def _assert_same(a: Run, b: Run, cut: int | None, what: str, label_a: str, label_b: str) -> None:
    """Orders (every state), fills and equity of two runs are identical (up to ``cut``)."""

    def upto(items: list[Any], stamp: Callable[[Any], int]) -> list[Any]:
        return items if cut is None else [x for x in items if stamp(x) <= cut]

    checks: list[tuple[str, list[Any], list[Any], Callable[[Any], str]]] = [
        (
            "order",
            upto(a.order_log, lambda o: o.updated_ts),
            upto(b.order_log, lambda o: o.updated_ts),
            _describe,
        ),
        (
            "fill",
            upto(a.fills, lambda f: f.ts),
            upto(b.fills, lambda f: f.ts),
            lambda f: (
                f"{f.fill_id} {f.side.value} {f.quantity:g} {f.symbol} @ {f.price:g} "
                f"at {_iso(f.ts)}"
            ),
        ),
    ]
    for name, xs, ys, describe in checks:
        diff = _first_difference(xs, ys, describe)
        if diff is not None:
            i, x, y = diff
            scope = "" if cut is None else f" up to {_iso(cut)}"
            raise AssertionError(
                f"{what}: {name} state #{i}{scope} differs — {label_a}: {x}; {label_b}: {y}"
            )
    keep_a = slice(None) if cut is None else a.ts <= cut
    keep_b = slice(None) if cut is None else b.ts <= cut
    ea, eb = a.equity[keep_a], b.equity[keep_b]
    if len(ea) != len(eb) or not np.array_equal(ea, eb):
        n = min(len(ea), len(eb))
        bad = np.flatnonzero(ea[:n] != eb[:n])
        at = int(bad[0]) if len(bad) else n
        raise AssertionError(
            f"{what}: equity differs at bar {at}"
            + ("" if cut is None else f" (before the cut {_iso(cut)})")
        )

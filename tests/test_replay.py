"""The live data interface: ``DataSource.stream``, the clocks, the replay source (pacing, late
batches, looping, fault injection) and feed staleness (DF-01: a stalled feed's instruments go
reducing-only in the risk control; adding orders are refused, cancels pass).

Wall-clock tests keep their windows short (0.3-0.4 s) and check lower bounds tightly (a paced
replay never delivers a bar before its time) and upper bounds loosely (a busy machine may be
slow); exact counts come from :class:`ManualClock` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest

import tradeloom
from tradeloom.components import Kind, Mode
from tradeloom.config import json_schema, load_deployment, resolve
from tradeloom.data import CsvSource, DatasetSource, MarketData
from tradeloom.errors import ConfigError, DataError
from tradeloom.live.clock import Clock, ManualClock, ReplayClock, WallClock
from tradeloom.live.replay import FeedChanges, FeedMonitor, ReplaySource
from tradeloom.model import Bar, Order, OrderStatus, OrderType, Position, Side
from tradeloom.plugins import PluginHost
from tradeloom.risk import RiskView
from tradeloom.risk.base import Reject
from tradeloom.risk.control import RiskControl, RiskEvent, TradingState

from helpers import IBM_DEPLOYMENT

T = TypeVar("T")
MIN = 60 * 1_000_000_000
T0 = int(pd.Timestamp("2024-01-02 09:30", tz="UTC").value)


# --- helpers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost()


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def collect(stream: AsyncIterator[list[Bar]], limit: int | None = None) -> list[list[Bar]]:
    out = []
    async for batch in stream:
        out.append(batch)
        if limit is not None and len(out) == limit:
            break
    return out


async def cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def minute_csv(path: Path, n: int, symbols: Sequence[str] = ("AAA",)) -> Path:
    """``n`` one-minute bars from T0 per symbol; symbol k's bar i: open 100 + 10k + i, high +2,
    low -2, close +1, volume 1000 + i."""
    lines = ["ts,symbol,open,high,low,close,volume"]
    for i in range(n):
        stamp = pd.Timestamp(T0 + i * MIN, tz="UTC").isoformat()
        for k, symbol in enumerate(symbols):
            price = 100 + 10 * k + i
            lines.append(f"{stamp},{symbol},{price},{price + 2},{price - 2},{price + 1},{1000 + i}")
    path.write_text("\n".join(lines) + "\n")
    return path


def replay(path: Path, **params: Any) -> ReplaySource:
    return ReplaySource(source={"type": "csv", "params": {"path": str(path)}}, **params)


def expected_batches(data: MarketData) -> list[list[Bar]]:
    """The bars of ``data`` per timestamp, symbols sorted: built row by row from the frames."""
    stamps = sorted({t for frame in data.frames.values() for t in frame.index})
    out = []
    for stamp in stamps:
        batch = []
        for symbol in sorted(data.frames):
            frame = data.frames[symbol]
            if stamp in frame.index:
                row = frame.loc[stamp]
                batch.append(
                    Bar(
                        symbol,
                        stamp.value,
                        *(float(row[c]) for c in ("open", "high", "low", "close", "volume")),
                    )
                )
        out.append(batch)
    return out


def order(side: Side, qty: float, symbol: str, coid: str = "o-1", **kw: Any) -> Order:
    return Order(coid, symbol, side, qty, strategy_id="s", **kw)


def view(positions: Mapping[str, float]) -> RiskView:
    return RiskView(
        ts=0, cash=1e4, equity=1e4,
        positions={s: Position(s, q, 100.0) for s, q in positions.items()},
        open_orders=[], last_prices=dict.fromkeys(positions, 100.0),
    )  # fmt: skip


# --- stream: what it yields ----------------------------------------------------------------------
def test_stream_yields_the_loaded_bars_batched_per_timestamp_in_order() -> None:
    # AAPL trades every NYSE session (43: Memorial Day is closed); FB lists on 2012-05-18:
    # 13 one-symbol batches, then 30 of two.
    dataset = DatasetSource(name="us-stocks-daily", symbols=["AAPL", "FB"])
    start, end = "2012-05-01", "2012-06-29"
    data = dataset.load(pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"))
    expected = expected_batches(data)
    assert len(expected) == 43
    assert [len(b) for b in expected] == [1] * 13 + [2] * 30

    by_default = run(collect(dataset.stream(start=start, end=end)))  # DataSource.stream
    wrapped = ReplaySource(
        source={"type": "dataset", "params": {"name": "us-stocks-daily", "symbols": ["AAPL", "FB"]}},
        speed=0, start=start, end=end,
    )  # fmt: skip
    replayed = run(collect(wrapped.stream()))
    assert by_default == expected
    assert replayed == expected
    assert sum(len(b) for b in replayed) == data.total_bars == 73
    assert replayed[13] == [
        Bar(
            "AAPL",
            int(pd.Timestamp("2012-05-18", tz="UTC").value),
            533.96,
            543.41,
            522.18,
            530.38,
            26153300.0,
        ),
        Bar(
            "FB",
            int(pd.Timestamp("2012-05-18", tz="UTC").value),
            42.05,
            45.0,
            38.0,
            38.2318,
            573576400.0,
        ),
    ]
    stamps = [b[0].ts for b in replayed]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(len({bar.ts for bar in b}) == 1 for b in replayed)
    assert wrapped.stats.delivered_batches == 43 and wrapped.late_batches == 0


def test_stream_selects_symbols_and_refuses_unknown_ones(tmp_path: Path) -> None:
    source = CsvSource(path=minute_csv(tmp_path / "m.csv", 3, ("AAA", "BBB", "CCC")))
    batches = run(collect(source.stream(["CCC", "AAA"])))
    assert [[bar.symbol for bar in b] for b in batches] == [["AAA", "CCC"]] * 3
    assert [b[1].open for b in batches] == [120.0, 121.0, 122.0]
    with pytest.raises(
        DataError, match=r"symbol\(s\) ZZZ not in the data, which holds AAA, BBB, CCC"
    ):
        run(collect(source.stream(["AAA", "ZZZ"])))


def test_replay_load_is_the_wrapped_sources_data_within_its_bounds() -> None:
    params = {"name": "us-stocks-daily", "symbols": ["IBM", "MSFT"]}
    wrapped = DatasetSource(**params)
    source = ReplaySource(source={"type": "dataset", "params": params}, start="2010-01-01")
    assert isinstance(source.source, DatasetSource)
    assert (
        source.load().fingerprint()
        == wrapped.load(pd.Timestamp("2010-01-01", tz="UTC")).fingerprint()
    )
    # The run's own bounds and the replay's intersect.
    part = source.load(pd.Timestamp("2009-06-01", tz="UTC"), pd.Timestamp("2010-01-31", tz="UTC"))
    assert part.frames["IBM"].index[0] == pd.Timestamp("2010-01-04", tz="UTC")
    assert part.frames["IBM"].index[-1] == pd.Timestamp("2010-01-29", tz="UTC")
    assert len(part.frames["IBM"]) == 19


# --- pacing --------------------------------------------------------------------------------------
def test_paced_replay_takes_span_over_speed_and_never_delivers_early(tmp_path: Path) -> None:
    # 30 one-minute bars span 29 minutes = 1740 s; at speed 6000 that is 0.29 s.
    source = replay(minute_csv(tmp_path / "m.csv", 30), speed=6000)

    async def timed() -> list[tuple[float, int]]:
        arrivals = []
        async for batch in source.stream():
            arrivals.append((time.monotonic(), batch[0].ts))
        return arrivals

    arrivals = run(timed())
    assert len(arrivals) == 30
    t0, ts0 = arrivals[0]
    for t, ts in arrivals:
        assert t - t0 >= (ts - ts0) / 1e9 / 6000 - 0.002  # never before its time
    elapsed = arrivals[-1][0] - t0
    assert 0.288 <= elapsed < 0.29 + 1.0


def test_speed_zero_plays_thirteen_years_at_once() -> None:
    source = ReplaySource(
        source={"type": "dataset", "params": {"name": "us-stocks-daily"}}, speed=0
    )
    clock = ReplayClock(speed=0)

    async def timed() -> tuple[float, int, int]:
        count = bars = 0
        t0 = None
        async for batch in source.stream(clock=clock):
            t0 = t0 if t0 is not None else time.monotonic()
            count += 1
            bars += len(batch)
        return time.monotonic() - (t0 or 0.0), count, bars

    elapsed, count, bars = run(timed())
    assert bars == 12_154
    assert count == 3_270  # the NYSE sessions from 2000-03-01 to 2013-03-01
    assert elapsed < 3.0  # 13 years of daily bars; paced at speed 1 it would take 13 years
    assert clock.now() == int(pd.Timestamp("2013-03-01", tz="UTC").value)  # the last bar's time
    assert source.late_batches == 0


def test_a_slow_consumer_gets_late_batches_at_once_counted_none_lost_manual_clock(
    tmp_path: Path,
) -> None:
    source = replay(minute_csv(tmp_path / "m.csv", 10), speed=1)
    clock = ManualClock(T0)

    async def consume() -> list[int]:
        stamps = []
        stream = source.stream(clock=clock)
        first = await anext(stream)
        stamps.append(first[0].ts)
        clock.advance(5 * 60)  # the consumer took five minutes over the first batch
        for _ in range(4):  # bars 1-4 are overdue: delivered at once
            stamps.append((await anext(stream))[0].ts)
        for _ in range(5):  # bar 5 is due exactly now; bars 6-9 when the clock gets there
            if clock.now() < T0 + len(stamps) * MIN:
                clock.advance(60)
            stamps.append((await anext(stream))[0].ts)
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        return stamps

    stamps = run(consume())
    assert stamps == [T0 + i * MIN for i in range(10)]  # none lost, none reordered
    assert source.late_batches == 4
    assert source.stats.delivered_batches == 10


def test_a_slow_consumer_with_a_paced_clock(tmp_path: Path) -> None:
    # 40 one-minute bars at speed 6000: one every 10 ms. The consumer stalls 0.3 s (30 bars of
    # market time) after bar 4; bars later than the grace (0.05 s = 5 bars) are late.
    source = replay(minute_csv(tmp_path / "m.csv", 40), speed=6000)

    async def consume() -> list[int]:
        stamps = []
        async for batch in source.stream():
            stamps.append(batch[0].ts)
            if len(stamps) == 5:
                await asyncio.sleep(0.3)
        return stamps

    stamps = run(consume())
    assert stamps == [T0 + i * MIN for i in range(40)]
    assert 10 <= source.late_batches <= 35  # about 24 (bars 5-28); only bars 5-39 can be late


def test_late_batches_counted_only_past_the_grace() -> None:
    # A paced ReplayClock allows 0.05 s of wake-up jitter: 0.05 × speed in market time.
    assert ReplayClock(speed=60).late_grace_ns == 3 * 1_000_000_000
    assert ReplayClock(speed=0).late_grace_ns == 0
    assert ReplayClock(speed=math.inf).late_grace_ns == 0
    assert ManualClock().late_grace_ns == 0
    assert WallClock().late_grace_ns == 50_000_000


# --- loop and fault injection --------------------------------------------------------------------
def test_loop_plays_again_with_time_moving_forward(tmp_path: Path) -> None:
    source = replay(minute_csv(tmp_path / "m.csv", 3), speed=0, loop=True)
    batches = run(collect(source.stream(), limit=8))
    # Span 2 minutes + the smallest interval (1 minute): each round starts 3 minutes later.
    assert [b[0].ts for b in batches] == [T0 + i * MIN for i in range(8)]
    assert [b[0].open for b in batches] == [100.0, 101.0, 102.0] * 2 + [100.0, 101.0]
    assert source.stats.rounds == 2


def test_gap_every_drops_every_nth_bar(tmp_path: Path) -> None:
    # Bars in stream order: t0 AAA(1) BBB(2), t1 AAA(3) BBB(4), ...; every third is dropped.
    source = replay(minute_csv(tmp_path / "m.csv", 5, ("AAA", "BBB")), speed=0, gap_every=3)
    batches = run(collect(source.stream()))
    got = [[(b.symbol, int(b.open) - 100) for b in batch] for batch in batches]
    assert got == [
        [("AAA", 0), ("BBB", 10)],
        [("BBB", 11)],  # AAA t1 (bar 3) dropped
        [("AAA", 2)],  # BBB t2 (bar 6) dropped
        [("AAA", 3), ("BBB", 13)],
        [("BBB", 14)],  # AAA t4 (bar 9) dropped
    ]
    assert source.stats.dropped_bars == 3
    # A timestamp whose bars are all dropped is not delivered at all.
    single = replay(minute_csv(tmp_path / "s.csv", 6), speed=0, gap_every=2)
    assert [b[0].ts for b in run(collect(single.stream()))] == [T0, T0 + 2 * MIN, T0 + 4 * MIN]
    assert single.stats.delivered_batches == 3


def test_stall_after_keeps_the_stream_open_and_silent(tmp_path: Path) -> None:
    source = replay(minute_csv(tmp_path / "m.csv", 10), speed=6000, stall_after=3)

    async def consume() -> tuple[list[int], bool]:
        stream = source.stream()
        stamps = [(await anext(stream))[0].ts for _ in range(3)]
        pending = asyncio.ensure_future(anext(stream))
        with pytest.raises(TimeoutError):  # 0.2 s = 20 minutes of market time: bars were due
            await asyncio.wait_for(asyncio.shield(pending), timeout=0.2)
        still_open = not pending.done()
        await cancel(pending)
        await stream.aclose()
        return stamps, still_open

    stamps, still_open = run(consume())
    assert stamps == [T0, T0 + MIN, T0 + 2 * MIN]
    assert still_open
    assert source.stats.stalled and source.stats.delivered_batches == 3


def test_stall_after_zero_delivers_nothing(tmp_path: Path) -> None:
    source = replay(minute_csv(tmp_path / "m.csv", 3), speed=0, stall_after=0)

    async def first() -> None:
        await asyncio.wait_for(anext(source.stream()), timeout=0.1)

    with pytest.raises(TimeoutError):
        run(first())
    assert source.stats.stalled and source.stats.delivered_batches == 0


# --- staleness (DF-01) ---------------------------------------------------------------------------
def test_a_stalled_feed_goes_stale_and_reducing_only_adding_refused_cancels_pass(
    tmp_path: Path,
) -> None:
    # DF-01 end to end: the replay stalls after 3 bars with its connection open; 2 minutes of
    # market time later both instruments are stale and the risk control holds them REDUCING.
    source = replay(minute_csv(tmp_path / "m.csv", 10, ("AAA", "BBB")), stall_after=3)
    clock = ManualClock(T0)
    monitor = FeedMonitor(max_age_seconds=120)
    monitor.expect(["AAA", "BBB"], since=clock.now())
    control = RiskControl()

    async def session() -> tuple[set[str], set[str], FeedChanges, bool]:
        stream = source.stream(clock=clock)
        for i in range(3):
            if i:
                clock.advance(60)
            monitor.observe(await anext(stream))
        fresh = monitor.stale(clock.now())
        pending = asyncio.ensure_future(anext(stream))
        for _ in range(3):  # three more minutes pass: bars 3, 4 and 5 were due, none came
            clock.advance(60)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pending), timeout=0.05)
        stale = monitor.stale(clock.now())
        changes = monitor.apply(control, clock.now())
        open_ = not pending.done()
        await cancel(pending)
        await stream.aclose()
        return fresh, stale, changes, open_

    fresh, stale, changes, still_open = run(session())
    assert fresh == set()
    assert still_open and source.stats.stalled
    assert stale == {"AAA", "BBB"}  # latest bar at T0+2min, now T0+5min: 180 s > 120 s
    assert changes == FeedChanges(marked=frozenset({"AAA", "BBB"}))
    assert control.states == {
        "instrument:AAA": TradingState.REDUCING,
        "instrument:BBB": TradingState.REDUCING,
    }
    assert control.events[0] == RiskEvent(
        0, "state", "instrument:AAA", "stale feed: no bar for 180 s", "feed-monitor",
        120.0, 180.0, state="reducing", by="runner",
    )  # fmt: skip
    long10 = view({"AAA": 10.0, "BBB": 0.0})
    refusal = Reject("trading-state", "instrument:AAA is reducing-only and the order adds risk")
    assert control.check(order(Side.BUY, 1, "AAA"), long10) == refusal
    assert control.check(order(Side.SELL, 4, "AAA"), long10) is None  # reduces: passes
    working = order(
        Side.BUY, 5, "BBB", "w-1", limit_price=50.0, type=OrderType.LIMIT,
        status=OrderStatus.ACCEPTED,
    )  # fmt: skip
    assert control.check_cancel(working, long10) is None  # cancels always pass
    assert control.check(order(Side.BUY, 1, "BBB", "o-2"), long10) == Reject(
        "trading-state", "instrument:BBB is reducing-only and the order adds risk"
    )


def test_feed_monitor_per_symbol_ages() -> None:
    monitor = FeedMonitor(max_age_seconds=90)
    monitor.expect(["AAA", "BBB", "CCC"], since=T0)
    monitor.observe([Bar("AAA", T0 + 2 * MIN, 1, 1, 1, 1, 0), Bar("BBB", T0 + MIN, 1, 1, 1, 1, 0)])
    monitor.observe([Bar("BBB", T0, 1, 1, 1, 1, 0)])  # an older bar does not make it fresher
    now = T0 + 150 * 1_000_000_000
    assert monitor.last == {"AAA": T0 + 2 * MIN, "BBB": T0 + MIN, "CCC": T0}
    assert monitor.age("BBB", now) == 90.0
    # BBB is exactly 90 s old: not over the limit. CCC never sent a bar: 150 s since the start.
    assert monitor.stale(now) == {"CCC"}
    assert monitor.stale(now + 1) == {"BBB", "CCC"}
    for bad in (0, -1, math.inf, math.nan, True):
        with pytest.raises(ValueError, match="max_age_seconds must be a positive number"):
            FeedMonitor(max_age_seconds=bad)


def test_feed_monitor_lifts_what_it_marked_when_bars_resume() -> None:
    control = RiskControl()
    monitor = FeedMonitor(max_age_seconds=60)
    monitor.expect(["AAA", "BBB"], since=T0)
    now = T0 + 2 * MIN
    assert monitor.apply(control, now) == FeedChanges(marked=frozenset({"AAA", "BBB"}))
    assert monitor.apply(control, now + MIN) == FeedChanges()  # marking again is a no-op
    monitor.observe([Bar("AAA", now + MIN, 1, 1, 1, 1, 0)])
    assert monitor.apply(control, now + MIN) == FeedChanges(lifted=frozenset({"AAA"}))
    assert control.states == {"instrument:BBB": TradingState.REDUCING}
    assert monitor.marked == {"BBB"}
    assert [(e.scope, e.state, e.by, e.reason) for e in control.events] == [
        ("instrument:AAA", "reducing", "runner", "stale feed: no bar for 120 s"),
        ("instrument:BBB", "reducing", "runner", "stale feed: no bar for 120 s"),
        ("instrument:AAA", "active", "runner", "feed resumed: latest bar 0 s old"),
    ]


def test_feed_monitor_leaves_other_owners_states_alone() -> None:
    control = RiskControl()
    control.set_state("instrument:AAA", "reducing", "desk review")  # an operator's
    control.halt("instrument:BBB", "suspended", by="operator")
    monitor = FeedMonitor(max_age_seconds=60)
    monitor.expect(["AAA", "BBB", "CCC"], since=T0)
    assert monitor.apply(control, T0 + 2 * MIN).marked == {"CCC"}
    for symbol in ("AAA", "BBB", "CCC"):
        monitor.observe([Bar(symbol, T0 + 2 * MIN, 1, 1, 1, 1, 0)])
    assert monitor.apply(control, T0 + 2 * MIN) == FeedChanges(lifted=frozenset({"CCC"}))
    assert control.states == {
        "instrument:AAA": TradingState.REDUCING,
        "instrument:BBB": TradingState.HALTED,
    }
    # CCC goes stale again and is marked; a halt on top of it makes it someone else's: when
    # bars resume the halt stays until an operator lifts it.
    assert monitor.apply(control, T0 + 4 * MIN).marked == {"AAA", "BBB", "CCC"} - {"AAA", "BBB"}
    control.halt("instrument:CCC", "venue halt")
    monitor.observe([Bar("CCC", T0 + 4 * MIN, 1, 1, 1, 1, 0)])
    assert monitor.apply(control, T0 + 4 * MIN) == FeedChanges()
    assert control.state("instrument:CCC") is TradingState.HALTED
    assert monitor.marked == set()


def test_an_operator_lift_while_still_stale_is_marked_again() -> None:
    control = RiskControl()
    monitor = FeedMonitor(max_age_seconds=60)
    monitor.expect(["AAA"], since=T0)
    monitor.apply(control, T0 + 2 * MIN)
    control.resume("instrument:AAA", "operator thinks it is fine")
    assert monitor.apply(control, T0 + 3 * MIN) == FeedChanges(marked=frozenset({"AAA"}))
    assert control.state("instrument:AAA") is TradingState.REDUCING


# --- clocks --------------------------------------------------------------------------------------
def test_clocks_satisfy_the_protocol() -> None:
    for clock in (WallClock(), ReplayClock(speed=1), ManualClock()):
        assert isinstance(clock, Clock)


def test_replay_clock_runs_speed_times_real_time() -> None:
    clock = ReplayClock(start_ts=T0, speed=6000)

    async def wait() -> float:
        t0 = time.monotonic()
        await clock.sleep_until(T0 + 20 * MIN)  # 1200 s / 6000 = 0.2 s
        return time.monotonic() - t0

    elapsed = run(wait())
    assert 0.195 <= elapsed < 1.2
    assert clock.now() >= T0 + 20 * MIN
    with pytest.raises(ValueError, match="speed must be >= 0"):
        ReplayClock(speed=-1)
    with pytest.raises(ValueError, match="speed must be >= 0"):
        ReplayClock(speed=math.nan)


def test_replay_clock_starts_at_the_first_bar_without_a_start() -> None:
    clock = ReplayClock(speed=math.inf)
    assert clock.now() == 0 and not clock.started

    async def go() -> None:
        await clock.sleep_until(T0)
        await clock.sleep_until(T0 + 5 * MIN)

    run(go())
    assert clock.start_ts == T0
    assert clock.now() == T0 + 5 * MIN  # as fast as possible: now is the latest bar's time


def test_wall_clock_is_utc_now() -> None:
    clock = WallClock()
    assert abs(clock.now() - time.time_ns()) < 100_000_000

    async def wait() -> float:
        t0 = time.monotonic()
        await clock.sleep_until(clock.now() + 30_000_000)
        await clock.sleep_until(clock.now() - 10 * MIN)  # in the past: at once
        return time.monotonic() - t0

    assert 0.028 <= run(wait()) < 1.0


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(T0)

    async def go() -> list[str]:
        seen = []

        async def sleeper() -> None:
            await clock.sleep_until(T0 + MIN)
            seen.append("woke")

        task = asyncio.ensure_future(sleeper())
        await asyncio.sleep(0.01)
        seen.append(f"slept at {clock.now() - T0}")
        clock.advance(30)
        await asyncio.sleep(0)
        seen.append(f"still at {clock.now() - T0}")
        clock.advance(30)
        await task
        return seen

    assert run(go()) == ["slept at 0", f"still at {30 * 10**9}", "woke"]
    with pytest.raises(ValueError, match="does not go backwards"):
        clock.set(T0 - 1)


# --- the component: registration, params, backtest parity ----------------------------------------
def test_replay_is_registered_and_supports_backtest_and_paper(host: PluginHost) -> None:
    spec = host.spec(Kind.DATA_SOURCE, "replay")
    assert spec.cls is ReplaySource and spec.distribution == "tradeloom"
    assert spec.capabilities.modes == {Mode.BACKTEST, Mode.PAPER}
    built = spec.build(
        {"source": {"type": "dataset", "params": {"name": "sp500-daily"}}, "speed": 60}
    )
    assert isinstance(built, ReplaySource) and isinstance(built.source, DatasetSource)
    assert built.params.speed == 60.0 and built.params.loop is False


def _problems(host: PluginHost, params: dict[str, Any]) -> str:
    raw = {"data": {"type": "replay", "params": params}, "strategy": {"type": "sma-crossover"}}
    with pytest.raises(ConfigError) as info:
        resolve(raw, host)
    return str(info.value)


SOURCE = {"type": "dataset", "params": {"name": "us-stocks-daily"}}


@pytest.mark.parametrize(
    ("params", "expect"),
    [
        ({}, "data.params.source: missing required key"),
        (
            {"source": {"type": "excel"}},
            "data.params.source.type: unknown data source type 'excel'; installed: csv, dataset, "
            "parquet, replay",
        ),
        (
            {"source": {"type": "replay", "params": {"source": SOURCE}}},
            "data.params.source.type: a replay source cannot replay another replay source",
        ),
        (
            {"source": {"type": "dataset", "params": {"name": "nasdaq", "colour": 1}}},
            "data.params.source.params: dataset source: name: Input should be 'us-stocks-daily'",
        ),
        (
            {"source": {"type": "dataset", "params": {"name": "sp500-daily", "colour": 1}}},
            "data.params.source.params: dataset source: colour: unknown key; valid keys: name, "
            "symbols, adjusted, on_bad_rows, corporate_actions",
        ),
        ({"source": {"type": "dataset"}}, "dataset source: name: missing required key"),
        ({"source": {"type": "dataset", "params": 3}}, "expected a table of the wrapped source's"),
        (
            {"source": SOURCE, "speed": -1},
            "data.params.speed: Input should be greater than or equal to 0",
        ),
        ({"source": SOURCE, "speed": True}, "data.params.speed: expected a number"),
        (
            {"source": SOURCE, "gap_every": 1},
            "data.params.gap_every: Input should be greater than or equal to 2",
        ),
        (
            {"source": SOURCE, "stall_after": -1},
            "data.params.stall_after: Input should be greater than or equal to 0",
        ),
        (
            {"source": SOURCE, "frobnicate": 1},
            "data.params.frobnicate: unknown key; valid keys: source, speed",
        ),
        (
            {"source": SOURCE, "start": "2012-01-01", "end": "2011-01-01"},
            "end (2011-01-01T00:00:00+00:00) is before start (2012-01-01T00:00:00+00:00)",
        ),
    ],
)
def test_replay_params_are_validated_with_clear_errors(
    host: PluginHost, params: dict[str, Any], expect: str
) -> None:
    assert expect in _problems(host, params)


def test_replay_config_round_trips_and_matches_the_schema(host: PluginHost) -> None:
    raw = {
        "data": {
            "type": "replay",
            "params": {
                "source": {
                    "type": "dataset",
                    "params": {"name": "us-stocks-daily", "symbols": ["IBM"]},
                },
                "speed": 60,
                "start": "2010-01-01",
            },
        },
        "strategy": {"type": "sma-crossover"},
    }
    resolved = resolve(raw, host)
    data = resolved.to_dict()["data"]
    assert data == {
        "type": "replay",
        "params": {
            "source": {
                "type": "dataset",
                "params": {
                    "name": "us-stocks-daily", "symbols": ["IBM"], "adjusted": False,
                    "on_bad_rows": "error", "corporate_actions": "none",
                },
            },
            "speed": 60.0,
            "start": "2010-01-01T00:00:00+00:00",
            "loop": False,
        },
    }  # fmt: skip
    again = resolve(resolved.to_dict(), host)
    assert again.config_hash() == resolved.config_hash()
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema(host)
    jsonschema.validate(json.loads(json.dumps(resolved.to_dict())), schema)


def test_a_replay_deployment_backtests_like_the_source_it_wraps(tmp_path: Path) -> None:
    plain = tmp_path / "plain.toml"
    plain.write_text(IBM_DEPLOYMENT)
    replayed = tmp_path / "replay.toml"
    replayed.write_text(
        IBM_DEPLOYMENT.replace(
            'type = "dataset"\nparams = { name = "us-stocks-daily", symbols = ["IBM"] }',
            'type = "replay"\nparams = { speed = 60, source = { type = "dataset", params = '
            '{ name = "us-stocks-daily", symbols = ["IBM"] } } }',
        )
    )
    host = PluginHost()
    assert load_deployment([replayed], host=host).data.spec.name == "replay"
    a = tradeloom.backtest(plain, host=host)
    b = tradeloom.backtest(replayed, host=host)
    assert len(a.trades) >= 2
    pd.testing.assert_frame_equal(a.trades, b.trades)
    pd.testing.assert_series_equal(a.equity["equity"], b.equity["equity"])

"""The replay source: any historical data source played as a live feed, and feed staleness.

:class:`ReplaySource` (registered as ``"replay"``) wraps another data source, given like a
``[data]`` table::

    [data]
    type = "replay"
    params = { speed = 60, source = { type = "dataset", params = { name = "btcusd-1h" } } }

Its :meth:`~ReplaySource.load` returns the wrapped source's bars, so the same deployment also
backtests; its :meth:`~ReplaySource.stream` plays them in time order, one batch per timestamp,
``speed`` times faster than real time (``speed = 60`` plays one-minute bars once a second; 0 as
fast as possible), so paper sessions and demos run with no network. ``stall_after`` and
``gap_every`` inject feed faults for tests and demos.

:class:`FeedMonitor` finds the instruments whose feed went quiet (DF-01) and moves them to
REDUCING in the runner's :class:`~tradeloom.risk.control.RiskControl` (new orders that add risk
are refused there, cancels always pass), and back to ACTIVE when their bars resume.

Why the wrapped source is built here and not by the caller's plugin host: components are built
from their validated ``Params`` alone (``cls(params)``), and no host reaches a component or its
``Params`` validation. So the nested spec is validated, and the wrapped source built, with a
:class:`~tradeloom.plugins.PluginHost` of the installed plugins; a caller holding its own host
passes it as ``ReplaySource(params, host=host)`` (or as the validation context
``{"host": host}``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from tradeloom.components import Capabilities, Kind, Mode, Params
from tradeloom.config import UtcTimestamp
from tradeloom.data.base import BAR_COLUMNS, CHUNK_ROWS, ChunkedMarket, DataSource, MarketData
from tradeloom.data.files import to_utc
from tradeloom.data.memory import available_memory
from tradeloom.errors import DataError, TradeloomError
from tradeloom.live.clock import Clock, ReplayClock
from tradeloom.model.bar import Bar
from tradeloom.plugins import PluginHost, UnknownComponent

if TYPE_CHECKING:
    from tradeloom.risk.control import RiskControl

__all__ = [
    "FeedChanges",
    "FeedMonitor",
    "ReplaySource",
    "ReplayStats",
    "WrappedSource",
    "replay_history",
]

_NS = 1_000_000_000
_LOOP_STEP_NS = _NS
"""Gap between two rounds of a looped replay when the data has one timestamp only."""


# --- reading history as per-timestamp batches ------------------------------------------------


def _open_history(
    source: DataSource, lo: pd.Timestamp | None, hi: pd.Timestamp | None
) -> tuple[list[str], Iterator[MarketData]]:
    """The symbols and the chunks of ``source`` between ``lo`` and ``hi``: read in chunks when
    loading whole would take more than its share of the memory (as ``run.stream = "auto"``),
    loaded whole otherwise."""
    # Imported here: the engine package is heavy and only a running stream needs the rule.
    from tradeloom.engine.inputs import AUTO_STREAM_SHARE, LOAD_BYTES_PER_ROW

    rows, free = source.size_hint(), available_memory()
    if (
        rows is not None
        and free is not None
        and rows * LOAD_BYTES_PER_ROW > free * AUTO_STREAM_SHARE
    ):
        chunked = source.chunked(lo, hi, rows=CHUNK_ROWS)
        if chunked is not None:
            return list(chunked.symbols), chunked.chunks()
    market = source.load(lo, hi)
    return market.symbols, market.chunks()


def _chunk_batches(chunk: MarketData, wanted: set[str] | None) -> Iterator[list[Bar]]:
    """The bars of a chunk, one list per timestamp in time order, symbols sorted within it."""
    names = [s for s in sorted(chunk.frames) if wanted is None or s in wanted]
    names = [s for s in names if len(chunk.frames[s])]
    if not names:
        return
    stamps = np.concatenate([chunk.frames[s].index.as_unit("ns").asi8 for s in names])
    which = np.concatenate(
        [np.full(len(chunk.frames[s]), i, dtype=np.int64) for i, s in enumerate(names)]
    )
    values = np.concatenate(
        [chunk.frames[s][list(BAR_COLUMNS)].to_numpy(np.float64) for s in names]
    )
    order = np.lexsort((which, stamps))
    stamps, which, values = stamps[order], which[order], values[order]
    ts_list, sym_list, rows = stamps.tolist(), which.tolist(), values.tolist()
    bounds = [*(np.flatnonzero(np.diff(stamps)) + 1).tolist(), len(ts_list)]
    begin = 0
    for end in bounds:
        yield [Bar(names[sym_list[k]], ts_list[k], *rows[k]) for k in range(begin, end)]
        begin = end


async def _history(
    source: DataSource,
    symbols: Sequence[str] | None,
    lo: pd.Timestamp | None,
    hi: pd.Timestamp | None,
) -> AsyncIterator[list[Bar]]:
    """The batches of ``source``; loading and chunk reads run in a worker thread, so the event
    loop (the session's other tasks) keeps running while a file is read."""
    available, chunks = await asyncio.to_thread(_open_history, source, lo, hi)
    wanted = None
    if symbols is not None:
        wanted = set(symbols)
        missing = sorted(wanted - set(available))
        if missing:
            raise DataError(
                f"{type(source).__name__}: symbol(s) {', '.join(missing)} not in the data, "
                f"which holds {', '.join(available) or 'no symbols'}; stream only symbols of "
                "the data",
                field="params.symbols",
            )
    while True:
        chunk = await asyncio.to_thread(next, chunks, None)
        if chunk is None:
            return
        for batch in _chunk_batches(chunk, wanted):
            yield batch


# --- pacing ------------------------------------------------------------------------------------


@dataclass
class ReplayStats:
    """What a replay stream has done so far."""

    delivered_batches: int = 0
    """Timestamps delivered (batches yielded)."""
    late_batches: int = 0
    """Batches whose time the clock had already passed (beyond its ``late_grace_ns``) when the
    consumer asked for them: delivered at once, never skipped or reordered."""
    dropped_bars: int = 0
    """Bars dropped by ``gap_every`` (fault injection)."""
    stalled: bool = False
    """The stream stopped delivering because of ``stall_after`` (fault injection)."""
    rounds: int = 0
    """Completed passes over the data (``loop``)."""


async def _play(
    source: DataSource,
    symbols: Sequence[str] | None,
    lo: pd.Timestamp | None,
    hi: pd.Timestamp | None,
    clock: Clock,
    stats: ReplayStats,
    *,
    loop: bool = False,
    stall_after: int | None = None,
    gap_every: int | None = None,
) -> AsyncIterator[list[Bar]]:
    """Play the batches of ``source`` by ``clock``: late ones at once (counted), with the
    replay's loop and faults; ``stats`` follows along."""
    grace = int(getattr(clock, "late_grace_ns", 0) or 0)
    if stall_after == 0:
        await _stall(stats)
    shift = 0
    first: int | None = None
    last: int | None = None
    step: int | None = None
    seen = 0  # bars read, for gap_every
    while True:
        async for batch in _history(source, symbols, lo, hi):
            ts = batch[0].ts
            if stats.rounds == 0:
                if last is not None and (step is None or ts - last < step):
                    step = ts - last
                first = ts if first is None else first
                last = ts
            if shift:
                batch = [bar._replace(ts=bar.ts + shift) for bar in batch]
                ts += shift
            if gap_every is not None:
                kept = []
                for bar in batch:
                    seen += 1
                    if seen % gap_every:
                        kept.append(bar)
                    else:
                        stats.dropped_bars += 1
                batch = kept
                if not batch:
                    continue
            if clock.now() - ts > grace:
                stats.late_batches += 1
            await clock.sleep_until(ts)
            stats.delivered_batches += 1
            yield batch
            if stall_after is not None and stats.delivered_batches >= stall_after:
                await _stall(stats)
        stats.rounds += 1
        if not loop or first is None or last is None:
            return
        # Time keeps moving forward: each round is shifted past the previous one.
        shift += last - first + (step if step is not None else _LOOP_STEP_NS)


async def _stall(stats: ReplayStats) -> None:
    """Stop delivering while the stream stays open (a feed silent on a live connection)."""
    stats.stalled = True
    await asyncio.get_running_loop().create_future()  # never completes; cancellable


async def replay_history(
    source: DataSource,
    symbols: Sequence[str] | None = None,
    *,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
    clock: Clock | None = None,
    stats: ReplayStats | None = None,
) -> AsyncIterator[list[Bar]]:
    """The bars of a historical source with ``start <= ts <= end``, one list per timestamp in
    time order, each delivered when ``clock`` reaches its time (default: a
    :class:`ReplayClock` that does not wait). What :meth:`DataSource.stream` does by default."""
    clock = clock if clock is not None else ReplayClock(speed=math.inf)
    async for batch in _play(
        source, symbols, to_utc(start), to_utc(end), clock, stats or ReplayStats()
    ):
        yield batch


# --- the replay component ------------------------------------------------------------------------


def _host(info: ValidationInfo) -> PluginHost:
    context = info.context
    if isinstance(context, Mapping) and isinstance(context.get("host"), PluginHost):
        return context["host"]
    return PluginHost()


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    return value


def _inner_problems(exc: ValidationError, model: type[BaseModel]) -> str:
    """One line for the wrapped source's param errors: ``key: problem; key: problem``."""
    keys = ", ".join(f.alias or n for n, f in model.model_fields.items())
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "params"
        if err["type"] == "extra_forbidden":
            message = f"unknown key; valid keys: {keys}"
        elif err["type"] == "missing":
            message = "missing required key"
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


class WrappedSource(BaseModel):
    """The data source a replay plays, written like a ``[data]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    type: str
    """Registered name of the historical data source (``dataset``, ``csv``, ``parquet``, ...;
    `tradeloom plugins list` shows what is installed)."""
    params: Annotated[
        SerializeAsAny[BaseModel],
        WithJsonSchema({"type": "object", "description": "Parameters of the wrapped data source."}),
    ] = Field(default_factory=dict, validate_default=True)
    """Parameters of the wrapped source, validated by its own ``Params`` model."""

    @field_validator("type")
    @classmethod
    def _registered(cls, value: str, info: ValidationInfo) -> str:
        if value == "replay":
            raise ValueError(
                "a replay source cannot replay another replay source; give the historical "
                'source itself, e.g. source = { type = "dataset", params = { name = ... } }'
            )
        try:
            _host(info).registry.get(Kind.DATA_SOURCE, value)
        except UnknownComponent as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("params", mode="before")
    @classmethod
    def _own_params(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("type")
        if kind is None or isinstance(value, BaseModel):
            return value  # the type is wrong (reported there), or already validated
        if not isinstance(value, Mapping):
            raise ValueError("expected a table of the wrapped source's parameters")
        model = _host(info).registry.get(Kind.DATA_SOURCE, kind).params_model
        try:
            return model.model_validate(dict(value))
        except ValidationError as exc:
            raise ValueError(f"{kind} source: {_inner_problems(exc, model)}") from None


class ReplaySource(DataSource):
    """Replays a historical data source as a live feed, in real time or accelerated."""

    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST, Mode.PAPER}), multi_symbol=True)

    class Params(Params):
        """The source to replay, how fast, which part of it, and feed faults to inject."""

        source: WrappedSource
        """The historical data source to replay, like a ``[data]`` table:
        ``{ type = "dataset", params = { name = "us-stocks-daily" } }``."""
        speed: Annotated[float, Field(ge=0), BeforeValidator(_not_bool)] = 1.0
        """Market seconds played per real second: 1 is real time, 60 plays one-minute bars
        once a second; 0 (or inf) plays as fast as possible."""
        start: UtcTimestamp | None = None
        """First bar to replay (inclusive); also bounds ``load`` (default: the source's
        first). Naive values are UTC."""
        end: UtcTimestamp | None = None
        """Last bar to replay (inclusive); also bounds ``load`` (default: the source's last)."""
        loop: bool = False
        """Start again at the first bar after the last, every round shifted forward in time
        (by the data's span plus its smallest bar interval) so time never goes backwards."""
        stall_after: int | None = Field(default=None, ge=0)
        """Fault injection: after this many timestamps the stream stops delivering but stays
        open, like a feed gone silent on a live connection (DF-01). Default: never."""
        gap_every: int | None = Field(default=None, ge=2)
        """Fault injection: drop every Nth bar (counted over all symbols in time order), like
        a feed losing messages. Default: none dropped."""

        @model_validator(mode="after")
        def _check_range(self) -> ReplaySource.Params:
            if self.start is not None and self.end is not None and self.end < self.start:
                raise ValueError(
                    f"end ({self.end.isoformat()}) is before start ({self.start.isoformat()})"
                )
            return self

    params: ReplaySource.Params

    def __init__(
        self,
        params: ReplaySource.Params | None = None,
        *,
        host: PluginHost | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(params, **kwargs)
        host = host if host is not None else PluginHost()
        wrapped = self.params.source
        spec = host.spec(Kind.DATA_SOURCE, wrapped.type)
        self.source: DataSource = spec.cls(wrapped.params)  # type: ignore[arg-type,assignment]
        """The wrapped historical source."""
        self.stats = ReplayStats()
        """What the latest :meth:`stream` has done (reset when a stream starts)."""

    @property
    def late_batches(self) -> int:
        """Batches of the latest stream delivered late (the consumer was slower than the
        clock): delivered at once, in order, none skipped."""
        return self.stats.late_batches

    def _bounds(
        self, start: pd.Timestamp | str | None, end: pd.Timestamp | str | None
    ) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """The requested period within ``params.start`` / ``params.end``."""
        lo = [t for t in (to_utc(start), self.params.start) if t is not None]
        hi = [t for t in (to_utc(end), self.params.end) if t is not None]
        return (max(lo) if lo else None), (min(hi) if hi else None)

    def load(
        self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
    ) -> MarketData:
        """The wrapped source's bars (within ``params.start`` / ``params.end``)."""
        return self.source.load(*self._bounds(start, end))

    def chunked(
        self,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        *,
        rows: int = CHUNK_ROWS,
        keep_close: tuple[str, ...] = (),
    ) -> ChunkedMarket | None:
        lo, hi = self._bounds(start, end)
        return self.source.chunked(lo, hi, rows=rows, keep_close=keep_close)

    def size_hint(self) -> int | None:
        return self.source.size_hint()

    async def stream(
        self,
        symbols: Sequence[str] | None = None,
        *,
        start: pd.Timestamp | str | None = None,
        end: pd.Timestamp | str | None = None,
        clock: Clock | None = None,
    ) -> AsyncIterator[list[Bar]]:
        """The wrapped source's bars, one list per timestamp in time order, each delivered when
        the clock reaches its time: by default a :class:`ReplayClock` at ``params.speed``
        starting at the first bar (a clock given decides the pacing itself). A batch whose
        time has passed is delivered at once and counted in :attr:`late_batches`."""
        params = self.params
        clock = clock if clock is not None else ReplayClock(speed=params.speed)
        self.stats = stats = ReplayStats()
        lo, hi = self._bounds(start, end)
        async for batch in _play(
            self.source, symbols, lo, hi, clock, stats,
            loop=params.loop, stall_after=params.stall_after, gap_every=params.gap_every,
        ):  # fmt: skip
            yield batch


# --- staleness (DF-01) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedChanges:
    """What one :meth:`FeedMonitor.apply` did."""

    marked: frozenset[str] = frozenset()
    """Instruments moved to REDUCING now because their feed is stale."""
    lifted: frozenset[str] = frozenset()
    """Instruments the monitor had marked whose bars came back: moved back to ACTIVE now."""


@dataclass
class FeedMonitor:
    """Which instruments' feeds have gone quiet: no bar for more than ``max_age_seconds`` of
    market time (the session clock's, so a replay at ``speed = 60`` counts replayed seconds).

    Feed it every batch (:meth:`observe`); ask :meth:`stale` with the clock's ``now()``, or let
    :meth:`apply` mark the stale instruments in the risk control and lift them when bars
    resume.
    """

    max_age_seconds: float
    last: dict[str, int] = field(default_factory=dict)
    """The latest bar time (ns) of each symbol watched."""

    def __post_init__(self) -> None:
        if isinstance(self.max_age_seconds, bool) or not (
            self.max_age_seconds > 0 and math.isfinite(self.max_age_seconds)
        ):
            raise ValueError(
                f"max_age_seconds must be a positive number of seconds, got "
                f"{self.max_age_seconds!r}"
            )
        self._max_age_ns = round(self.max_age_seconds * _NS)
        self._marked: set[str] = set()

    def expect(self, symbols: Iterable[str], since: int) -> None:
        """Watch ``symbols`` from market time ``since`` (the session's start): one that never
        delivers a bar goes stale ``max_age_seconds`` after it."""
        for symbol in symbols:
            self.last.setdefault(symbol, int(since))

    def observe(self, bars: Iterable[Bar]) -> None:
        """Record the bars just received."""
        last = self.last
        for bar in bars:
            if bar.ts > last.get(bar.symbol, bar.ts - 1):
                last[bar.symbol] = bar.ts

    def age(self, symbol: str, now: int) -> float:
        """Seconds since the latest bar of ``symbol`` at market time ``now``."""
        return (now - self.last[symbol]) / _NS

    def stale(self, now: int) -> set[str]:
        """The symbols with no bar for more than ``max_age_seconds`` at market time ``now``."""
        limit = now - self._max_age_ns
        return {symbol for symbol, ts in self.last.items() if ts < limit}

    @property
    def marked(self) -> frozenset[str]:
        """The instruments this monitor holds REDUCING now."""
        return frozenset(self._marked)

    def apply(self, control: RiskControl, now: int) -> FeedChanges:
        """Bring the risk control's instrument states in line with the feed at ``now``.

        * A stale instrument that is ACTIVE moves to REDUCING (``by="runner"``, reason
          ``"stale feed: no bar for N s"``): orders adding risk in it are refused, risk-reducing
          orders and cancels pass. One already REDUCING or HALTED is left as it is (not ours).
        * An instrument this monitor marked whose bars came back moves back to ACTIVE
          (``by="runner"``) — unless someone else has changed its state since (a halt, or an
          operator's own reducing-only state): then it is theirs and stays as it is.
        * An operator who lifts a marked instrument while its feed is still stale sees it
          marked again: the data is no fresher for the resume.
        """
        from tradeloom.risk.control import TradingState

        stale = self.stale(now)
        lifted = set()
        for symbol in sorted(self._marked):
            scope = f"instrument:{symbol}"
            state = control.state(scope)
            if state is not TradingState.REDUCING:  # lifted or escalated by someone else
                self._marked.discard(symbol)
                continue
            if symbol in stale:
                continue
            self._marked.discard(symbol)
            age = self.age(symbol, now)
            try:
                control.set_state(
                    scope, TradingState.ACTIVE, f"feed resumed: latest bar {_seconds(age)} s old",
                    by="runner", rule="feed-monitor", limit=self.max_age_seconds, observed=age,
                )  # fmt: skip
            except TradeloomError:  # a reducing-only state someone else set since: theirs
                continue
            lifted.add(symbol)
        marked = set()
        for symbol in sorted(stale - self._marked):
            scope = f"instrument:{symbol}"
            if control.state(scope) is not TradingState.ACTIVE:
                continue
            age = self.age(symbol, now)
            control.set_state(
                scope, TradingState.REDUCING, f"stale feed: no bar for {_seconds(age)} s",
                by="runner", rule="feed-monitor", limit=self.max_age_seconds, observed=age,
            )  # fmt: skip
            self._marked.add(symbol)
            marked.add(symbol)
        return FeedChanges(frozenset(marked), frozenset(lifted))


def _seconds(value: float) -> str:
    return f"{round(value, 1):g}"

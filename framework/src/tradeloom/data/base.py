"""The data-source contract and the validated bars it produces."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tradeloom.components import Capabilities, Component, Mode
from tradeloom.errors import DataError

if TYPE_CHECKING:
    from tradeloom.live.clock import Clock
    from tradeloom.model.bar import Bar

BAR_COLUMNS = ("open", "high", "low", "close", "volume")
CHUNK_ROWS = 65_536
"""Rows per chunk when a source streams its data (``run.chunk_rows``)."""
HISTORY_BARS = 10_000
"""Past bars per symbol ``ctx.history`` reaches in a streamed run (``run.history_bars``)."""


@dataclass
class QualityReport:
    """What the quality checks found while loading."""

    dropped_rows: int = 0
    """Rows removed because ``on_bad_rows = "drop"``."""
    problems: list[str] = field(default_factory=list)
    """One human-readable line per problem kind, e.g.
    ``"AAPL: 3 rows with high < low (2001-01-02, ...)"``."""


@dataclass
class MarketData:
    """Validated bars by symbol.

    Every frame is indexed by a timezone-aware (UTC) :class:`pandas.DatetimeIndex` named ``ts``,
    sorted and unique, with float64 columns ``open, high, low, close, volume`` and no NaN / inf /
    non-positive prices. Symbols are kept in sorted order.
    """

    frames: dict[str, pd.DataFrame]
    quality: QualityReport = field(default_factory=QualityReport)
    description: str = ""
    actions: list[Any] = field(default_factory=list)
    """Splits and dividends to apply while the bars are played
    (:class:`tradeloom.data.actions.CorporateAction`, in time order); empty for adjusted or
    action-free data."""
    warmup: bool = False
    """History a restarted session replays to its strategies (orders ignored, no fills): the
    engine plays such a chunk without the broker. Set by the paper runner, never by sources."""

    @property
    def symbols(self) -> list[str]:
        return sorted(self.frames)

    def fingerprint(self) -> str:
        """SHA-256 over symbols, timestamps and values: identical data, identical fingerprint
        (the same whether the bars were loaded at once or streamed in chunks)."""
        fp = Fingerprint()
        fp.update(self)
        return fp.hexdigest()

    def chunks(self) -> Iterator[MarketData]:
        """The bars as one chunk: what the event engine iterates (see :class:`ChunkedMarket`)."""
        yield self

    def close(self, symbol: str) -> pd.Series:
        """The close prices of ``symbol``, indexed by time."""
        return self.frames[symbol]["close"]

    @property
    def total_bars(self) -> int:
        return sum(len(frame) for frame in self.frames.values())

    def slice(self, start: pd.Timestamp | None, end: pd.Timestamp | None) -> MarketData:
        """Bars with ``start <= ts <= end`` (either bound may be None); empty symbols dropped."""
        frames = {}
        for symbol, frame in self.frames.items():
            part = frame.loc[start:end] if (start is not None or end is not None) else frame
            if len(part):
                frames[symbol] = part
        return MarketData(frames, self.quality, self.description, self.actions)


class Fingerprint:
    """The data fingerprint, fed chunk by chunk: per symbol, one SHA-256 of its timestamps and
    one of each bar column; the fingerprint is a SHA-256 over the symbols (sorted) and their
    digests. Chunk boundaries do not change it."""

    def __init__(self) -> None:
        self._parts: dict[str, list[hashlib._Hash]] = {}

    def update(self, data: MarketData) -> None:
        for symbol, frame in data.frames.items():
            parts = self._parts.get(symbol)
            if parts is None:
                parts = self._parts[symbol] = [hashlib.sha256() for _ in range(6)]
            parts[0].update(np.ascontiguousarray(frame.index.as_unit("ns").asi8).tobytes())
            for h, col in zip(parts[1:], BAR_COLUMNS, strict=True):
                h.update(np.ascontiguousarray(frame[col].to_numpy(np.float64)).tobytes())

    def hexdigest(self) -> str:
        outer = hashlib.sha256()
        for symbol in sorted(self._parts):
            outer.update(symbol.encode() + b"\0")
            for h in self._parts[symbol]:
                outer.update(h.digest())
        return outer.hexdigest()


class ChunkedMarket:
    """Bars read one slice of time at a time, for data larger than memory.

    Iterating :meth:`chunks` (once) yields :class:`MarketData` chunks in time order: every bar
    of a chunk is later than every bar of the chunks before it. The symbols are known before
    the first chunk; the quality report, description and fingerprint are complete once the
    chunks have all been read. The close prices of the symbols named in ``keep_close`` are
    kept (for a benchmark); nothing else of a chunk outlives it.
    """

    def __init__(
        self,
        symbols: list[str],
        origin: str,
        read: Callable[[], Iterator[MarketData]],
        *,
        total_rows: int = 0,
        keep_close: tuple[str, ...] = (),
        actions: list[Any] | None = None,
    ) -> None:
        self.symbols = sorted(symbols)
        self.actions = actions or []
        """Splits and dividends to apply while the chunks are played (as in MarketData)."""
        self.origin = origin
        self.quality = QualityReport()
        self.total_bars = total_rows
        """Rows in the files: the progress total until the bars are counted."""
        self.keep_close = keep_close
        self._read = read
        self._fingerprint = Fingerprint()
        self._closes: dict[str, list[pd.Series]] = {s: [] for s in keep_close}
        self._bars: dict[str, int] = {}
        self._first: pd.Timestamp | None = None
        self._last: pd.Timestamp | None = None
        self._done = False
        self._started = False

    def chunks(self) -> Iterator[MarketData]:
        if self._started:
            raise RuntimeError("the chunks of a ChunkedMarket can be read once")
        self._started = True
        for chunk in self._read():
            if not chunk.frames:
                continue
            first = min(frame.index[0] for frame in chunk.frames.values())
            if self._last is not None and first <= self._last:
                raise DataError(
                    f"{self.origin}: a chunk starts at {first}, not after the previous chunk's "
                    f"last bar ({self._last}); chunks must follow each other in time"
                )
            self._fingerprint.update(chunk)
            self.quality.dropped_rows += chunk.quality.dropped_rows
            self.quality.problems.extend(chunk.quality.problems)
            for symbol, frame in chunk.frames.items():
                self._bars[symbol] = self._bars.get(symbol, 0) + len(frame)
                if symbol in self._closes:
                    self._closes[symbol].append(frame["close"])
                first, last = frame.index[0], frame.index[-1]
                self._first = first if self._first is None else min(self._first, first)
                self._last = last if self._last is None else max(self._last, last)
            del frame
            yield chunk
            del chunk
        self._done = True
        self.total_bars = sum(self._bars.values())

    def close(self, symbol: str) -> pd.Series:
        if symbol not in self._closes:
            raise KeyError(f"{symbol}: only the closes of {self.keep_close} are kept")
        parts = self._closes[symbol]
        return pd.concat(parts) if parts else pd.Series([], dtype=np.float64)

    def fingerprint(self) -> str:
        self._check_done()
        return self._fingerprint.hexdigest()

    @property
    def description(self) -> str:
        self._check_done()
        names = ", ".join(self.symbols[:10]) + (", ..." if len(self.symbols) > 10 else "")
        first = self._first.isoformat() if self._first is not None else "-"
        last = self._last.isoformat() if self._last is not None else "-"
        text = (
            f"{self.origin}: {len(self.symbols)} symbol(s) ({names}), {self.total_bars} bars "
            f"from {first} to {last}, streamed in chunks"
        )
        if self.quality.dropped_rows:
            text += f"; {self.quality.dropped_rows} bad row(s) dropped"
        return text

    def _check_done(self) -> None:
        if not self._done:
            raise RuntimeError("the chunks have not all been read yet")


class DataSource(Component):
    """Base class of data sources.

    Subclasses implement :meth:`load` (history) and, for data larger than memory,
    :meth:`chunked`. :meth:`stream` is the live interface: historical sources get a replay of
    their data; live sources override it.
    """

    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST}), multi_symbol=True)

    def load(
        self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
    ) -> MarketData:
        """Return validated bars with ``start <= ts <= end`` (bounds inclusive, UTC)."""
        raise NotImplementedError(f"{type(self).__name__} does not provide historical data")

    def chunked(
        self,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        *,
        rows: int = CHUNK_ROWS,
        keep_close: tuple[str, ...] = (),
    ) -> ChunkedMarket | None:
        """The same bars as :meth:`load`, read about ``rows`` rows at a time, or None when
        this source can only load everything at once (the default)."""
        return None

    def size_hint(self) -> int | None:
        """Rows the source would load, if known cheaply (e.g. from file metadata)."""
        return None

    async def stream(
        self,
        symbols: Sequence[str] | None = None,
        *,
        start: pd.Timestamp | str | None = None,
        end: pd.Timestamp | str | None = None,
        clock: Clock | None = None,
    ) -> AsyncIterator[list[Bar]]:
        """The bars as they arrive: one list per timestamp (the bars of ``symbols``, default
        all, sorted by symbol), in time order.

        This default replays :meth:`load` (or :meth:`chunked` for data larger than memory)
        between ``start`` and ``end``, each batch delivered when ``clock`` reaches its time
        (default: no waiting). Live sources override it and deliver bars as the venue sends
        them. See ``docs/live-data.md``.
        """
        from tradeloom.live.replay import replay_history

        async for batch in replay_history(self, symbols, start=start, end=end, clock=clock):
            yield batch

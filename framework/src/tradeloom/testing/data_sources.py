"""The data-source contract: the bars a source loads satisfy ``MarketData``'s invariants.

See ``docs/testing.md`` for every check.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tradeloom.data import BAR_COLUMNS, DataSource, MarketData
from tradeloom.testing import ComponentContract

__all__ = ["DataSourceContract", "check_market_data"]


class DataSourceContract(ComponentContract):
    """Subclass it and set ``source_type`` (registered name) or ``source_cls`` (the class), and
    ``params``. ``start`` / ``end`` bound the slicing check (default: the timestamps a third and
    two thirds into the first symbol's full load); ``stream_batches`` caps the batches read
    from ``stream()``."""

    kind = "data_source"
    source_type: ClassVar[str | None] = None
    source_cls: ClassVar[type[DataSource] | None] = None
    start: ClassVar[str | None] = None
    end: ClassVar[str | None] = None
    stream_batches: ClassVar[int] = 200

    # --- hooks ----------------------------------------------------------------------------------
    def load(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> Any:
        """``load(start, end)`` of a freshly built source."""
        return self.build().load(start, end)

    def window(self, full: MarketData) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The ``(start, end)`` of the slicing check: ``start`` / ``end`` if set, else bar
        timestamps of the full data (so that inclusive bounds are tested)."""
        if self.start is not None and self.end is not None:
            return _utc(self.start), _utc(self.end)
        index = full.frames[full.symbols[0]].index
        lo, hi = len(index) // 3, max(len(index) // 3, 2 * len(index) // 3)
        return (
            _utc(self.start) if self.start else index[lo],
            _utc(self.end) if self.end else index[hi],
        )

    # --- the checks -----------------------------------------------------------------------------
    def test_is_a_data_source(self) -> None:
        """The class subclasses :class:`tradeloom.data.DataSource`."""
        cls = self.component_class()
        assert isinstance(cls, type) and issubclass(cls, DataSource), (
            f"{cls!r} must subclass tradeloom.data.DataSource"
        )

    def test_load_returns_valid_market_data(self) -> None:
        """``load()`` returns :class:`MarketData` holding bars whose frames satisfy every
        documented invariant (see :func:`check_market_data`)."""
        data = self.load()
        check_market_data(data, self.component_name())
        assert data.total_bars > 0, f"{self.component_name()}: load() returned no bars"

    def test_load_slices_by_start_and_end(self) -> None:
        """``load(start, end)`` returns exactly the bars of ``load()`` with
        ``start <= ts <= end`` (bounds inclusive), valid on its own."""
        full = self.load()
        start, end = self.window(full)
        part = self.load(start, end)
        name = self.component_name()
        check_market_data(part, name)
        expected = full.slice(start, end)
        assert part.symbols == expected.symbols, (
            f"{name}: load({start}, {end}) has symbols {part.symbols}, the full data sliced "
            f"has {expected.symbols}"
        )
        for symbol in expected.symbols:
            got, want = part.frames[symbol], expected.frames[symbol]
            assert got.index.min() >= start and got.index.max() <= end, (
                f"{name}: load({start}, {end}) returned {symbol} bars from {got.index.min()} to "
                f"{got.index.max()}"
            )
            try:
                pd.testing.assert_frame_equal(
                    got[list(BAR_COLUMNS)], want[list(BAR_COLUMNS)], check_freq=False
                )
            except AssertionError as exc:
                raise AssertionError(
                    f"{name}: load({start}, {end}) differs from load() sliced to the same "
                    f"bounds for {symbol} (bounds are inclusive): {exc}"
                ) from exc

    def test_fingerprint_is_stable(self) -> None:
        """Two loads by two fresh sources give the same data fingerprint (the provenance of a
        run depends on it)."""
        a, b = self.load(), self.load()
        assert a.fingerprint() == b.fingerprint(), (
            f"{self.component_name()}: two loads of the same data have different fingerprints"
        )

    def test_loads_are_independent(self) -> None:
        """Changing the frames one load returned does not change the next load (a cache must
        hand out copies)."""
        first = self.load()
        fingerprint = first.fingerprint()
        for frame in first.frames.values():
            frame.loc[:, "close"] = frame["close"] * 2.0
        assert self.load().fingerprint() == fingerprint, (
            f"{self.component_name()}: modifying a loaded frame changed what the next load "
            "returns; hand out copies of cached data"
        )

    def test_chunked_matches_load(self) -> None:
        """When ``chunked()`` is supported: the chunks follow each other in time and hold the
        same bars, with the same fingerprint, as ``load()``."""
        import pytest

        source = self.build()
        chunked = source.chunked(None, None, rows=max(1, self.load().total_bars // 3))
        if chunked is None:
            pytest.skip(f"{self.component_name()} does not read in chunks (chunked() is None)")
        parts: dict[str, list[pd.DataFrame]] = {}
        for chunk in chunked.chunks():
            for symbol, frame in chunk.frames.items():
                parts.setdefault(symbol, []).append(frame)
        full = self.load()
        assert chunked.fingerprint() == full.fingerprint(), (
            f"{self.component_name()}: the chunks' fingerprint differs from load()'s"
        )
        for symbol in full.symbols:
            joined = pd.concat(parts.get(symbol, []))
            assert joined.index.equals(full.frames[symbol].index), (
                f"{self.component_name()}: the chunks of {symbol} hold other timestamps than load()"
            )

    def test_stream_yields_batches_in_time_order(self) -> None:
        """``stream()`` (the replay of history for historical sources) yields non-empty lists
        of bars, one timestamp per batch, symbols sorted, timestamps strictly increasing; for
        a historical source they are exactly the bars of ``load()``."""
        source = self.build()
        full = self.load()
        start, end = self.window(full)
        batches = asyncio.run(_collect(source, start, end, self.stream_batches))
        name = self.component_name()
        previous = None
        for i, batch in enumerate(batches):
            assert isinstance(batch, list) and batch, f"{name}: stream batch #{i} is {batch!r}"
            stamps = {bar.ts for bar in batch}
            assert len(stamps) == 1, f"{name}: stream batch #{i} mixes timestamps {stamps}"
            symbols = [bar.symbol for bar in batch]
            assert symbols == sorted(set(symbols)), (
                f"{name}: stream batch #{i} symbols not sorted and unique: {symbols}"
            )
            ts = batch[0].ts
            assert previous is None or ts > previous, (
                f"{name}: stream batch #{i} at {pd.Timestamp(ts, tz='UTC')} is not after the "
                f"previous batch ({pd.Timestamp(previous, tz='UTC')})"
            )
            previous = ts
        if type(source).stream is DataSource.stream:  # a replay: the bars of load()
            expected = full.slice(start, end)
            want = sum(len(f) for f in expected.frames.values())
            got = sum(len(b) for b in batches)
            if len(batches) < self.stream_batches:
                assert got == want, (
                    f"{name}: stream({start}, {end}) yielded {got} bars, load() has {want}"
                )
            for bar in (b for batch in batches for b in batch):
                row = expected.frames[bar.symbol].loc[pd.Timestamp(bar.ts, tz="UTC")]
                values = [float(row[c]) for c in BAR_COLUMNS]
                assert values == [bar.open, bar.high, bar.low, bar.close, bar.volume], (
                    f"{name}: streamed bar {bar} differs from load()'s {values}"
                )
                break  # the replay is the kernel's: one bar proves the wiring


def check_market_data(data: Any, name: str = "data source") -> None:
    """Assert the invariants :class:`MarketData` documents, naming the symbol and the first
    offending timestamp: every frame indexed by a UTC ``DatetimeIndex`` named ``ts``, sorted
    and unique; float64 columns open, high, low, close, volume; no NaN or inf; prices > 0,
    volume >= 0; ``high >= max(open, close)`` and ``low <= min(open, close)``."""
    assert isinstance(data, MarketData), f"{name}: load() returned {type(data).__name__}"
    for symbol, frame in data.frames.items():
        where = f"{name}: {symbol}"
        assert isinstance(symbol, str) and symbol, f"{name}: symbol {symbol!r} is not a name"
        index = frame.index
        assert isinstance(index, pd.DatetimeIndex), (
            f"{where}: index is {type(index).__name__}, not a DatetimeIndex"
        )
        assert index.tz is not None and str(index.tz) == "UTC", (
            f"{where}: index time zone is {index.tz}, not UTC"
        )
        assert index.name == "ts", f"{where}: index is named {index.name!r}, not 'ts'"
        if not index.is_monotonic_increasing:
            bad = int(np.flatnonzero(np.diff(index.asi8) < 0)[0]) + 1
            raise AssertionError(f"{where}: bars not sorted by time (at {index[bad]})")
        if not index.is_unique:
            raise AssertionError(f"{where}: duplicate timestamp {index[index.duplicated()][0]}")
        missing = [c for c in BAR_COLUMNS if c not in frame.columns]
        assert not missing, f"{where}: missing column(s) {', '.join(missing)}"
        for column in BAR_COLUMNS:
            assert frame[column].dtype == np.float64, (
                f"{where}: column {column} is {frame[column].dtype}, not float64"
            )
        values = frame[list(BAR_COLUMNS)].to_numpy()
        finite = np.isfinite(values).all(axis=1)
        if not finite.all():
            raise AssertionError(f"{where}: NaN or inf at {index[~finite][0]}")
        o, h, low, c, v = (frame[col].to_numpy() for col in BAR_COLUMNS)
        for label, bad in (
            ("a price <= 0", (o <= 0) | (h <= 0) | (low <= 0) | (c <= 0)),
            ("volume < 0", v < 0),
            ("high < max(open, close)", h < np.maximum(o, c)),
            ("low > min(open, close)", low > np.minimum(o, c)),
        ):
            if bad.any():
                raise AssertionError(f"{where}: {label} at {index[bad][0]}")


async def _collect(source: DataSource, start: Any, end: Any, limit: int) -> list[Any]:
    batches = []
    stream = source.stream(start=start, end=end)
    try:
        async for batch in stream:
            batches.append(batch)
            if len(batches) >= limit:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return batches


def _utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")

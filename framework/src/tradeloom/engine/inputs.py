"""Checks and data loading shared by every engine before a run starts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import pandas as pd

from tradeloom.data import ChunkedMarket, DataSource, MarketData
from tradeloom.data.base import CHUNK_ROWS
from tradeloom.data.files import to_utc
from tradeloom.data.memory import available_memory, return_free_memory
from tradeloom.errors import ConfigError, DataError

if TYPE_CHECKING:
    from tradeloom.strategy import Strategy


Stream = Literal["auto", "always", "never"]

LOAD_BYTES_PER_ROW = 200
"""What loading one row whole costs at its peak (raw columns, parsed and validated copies)."""
AUTO_STREAM_SHARE = 0.25
"""``stream = "auto"`` streams when loading whole would take more than this share of the memory
available."""


def load_market(
    data: MarketData | DataSource,
    start: pd.Timestamp | str | None,
    end: pd.Timestamp | str | None,
    *,
    stream: Stream = "never",
    chunk_rows: int = CHUNK_ROWS,
    keep_close: tuple[str, ...] = (),
    slot: str = "data",
) -> MarketData | ChunkedMarket:
    """The bars with ``start <= ts <= end``, loaded from a source or sliced from data in hand,
    or read in chunks as the run goes (``stream``, see ``run.stream``).

    A data error names the setting to fix (``data.params.path``, ``run.start``); ``slot`` is
    the config slot of the source (``"fx"`` for FX rates: ``fx.params.path``).
    """
    start_ts, end_ts = to_utc(start), to_utc(end)
    if start_ts is not None and end_ts is not None and end_ts < start_ts:
        raise ConfigError(f"end {end_ts} is before start {start_ts}", path="run.end")
    if isinstance(data, DataSource) and _should_stream(data, stream):
        try:
            chunked = data.chunked(start_ts, end_ts, rows=chunk_rows, keep_close=keep_close)
        except DataError as exc:
            raise _data_error(data, exc, slot) from exc
        if chunked is not None:
            return chunked
        if stream == "always":
            raise ConfigError(
                f'run.stream = "always", but the {type(data).__name__} data source cannot read '
                f'its data in chunks; use a Parquet file, or set run.stream = "auto"',
                path="run.stream",
            )
    if isinstance(data, DataSource):
        try:
            market = data.load(start_ts, end_ts)
        except DataError as exc:
            raise _data_error(data, exc, slot) from exc
        return_free_memory()
    else:
        market = data.slice(start_ts, end_ts)
    if not market.frames:
        if slot != "data":
            raise DataError(
                f"{slot}: no bars between {start_ts or 'the start'} and {end_ts or 'the end'} "
                f"of the [{slot}] data; check its source and run.end"
            )
        raise DataError(
            f"no bars between {start_ts or 'the start'} and {end_ts or 'the end'} of the data; "
            "check run.start / run.end",
            field="run.start",
        )
    return market


def _should_stream(source: DataSource, stream: Stream) -> bool:
    if stream != "auto":
        return stream == "always"
    rows, free = source.size_hint(), available_memory()
    return (
        rows is not None
        and free is not None
        and rows * LOAD_BYTES_PER_ROW > free * AUTO_STREAM_SHARE
    )


def _data_error(source: DataSource, exc: DataError, slot: str = "data") -> DataError:
    field = exc.field or ""
    if field.startswith("run."):  # the period: run.start / run.end for the data itself
        where = field if slot == "data" else slot
    else:
        where = ".".join(filter(None, [slot, field]))
    return DataError(f"{where} ({type(source).__name__}): {exc}", field=field)


def check_run(
    market: MarketData | ChunkedMarket,
    strategies: Sequence[tuple[str, Strategy]],
    benchmark: str | None,
) -> None:
    """Refuse what the strategies' capabilities or the data cannot support."""
    for sid, strategy in strategies:
        if len(market.symbols) > 1 and not strategy.capabilities.multi_symbol:
            raise ConfigError(
                f"strategy {sid!r} trades one symbol, but the data has {len(market.symbols)}: "
                f"{', '.join(market.symbols)}; select one with data.params.symbols",
                path="data.params.symbols",
            )
    if benchmark is not None and benchmark not in market.symbols:
        raise ConfigError(
            f"benchmark {benchmark!r} is not in the data; available: {', '.join(market.symbols)}",
            path="run.benchmark",
        )

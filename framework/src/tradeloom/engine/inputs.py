"""Checks and data loading shared by every engine before a run starts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from tradeloom.data import DataSource, MarketData
from tradeloom.data.files import to_utc
from tradeloom.data.memory import return_free_memory
from tradeloom.errors import ConfigError, DataError

if TYPE_CHECKING:
    from tradeloom.strategy import Strategy


def load_market(
    data: MarketData | DataSource,
    start: pd.Timestamp | str | None,
    end: pd.Timestamp | str | None,
) -> MarketData:
    """The bars with ``start <= ts <= end``, loaded from a source or sliced from data in hand.

    A data error names the setting to fix (``data.params.path``, ``run.start``).
    """
    start_ts, end_ts = to_utc(start), to_utc(end)
    if start_ts is not None and end_ts is not None and end_ts < start_ts:
        raise ConfigError(f"end {end_ts} is before start {start_ts}", path="run.end")
    if isinstance(data, DataSource):
        try:
            market = data.load(start_ts, end_ts)
        except DataError as exc:
            field = exc.field or ""
            where = field if field.startswith("run.") else ".".join(filter(None, ["data", field]))
            raise DataError(f"{where} ({type(data).__name__}): {exc}", field=field) from exc
        return_free_memory()
    else:
        market = data.slice(start_ts, end_ts)
    if not market.frames:
        raise DataError(
            f"no bars between {start_ts or 'the start'} and {end_ts or 'the end'} of the data; "
            "check run.start / run.end",
            field="run.start",
        )
    return market


def check_run(
    market: MarketData, strategies: Sequence[tuple[str, Strategy]], benchmark: str | None
) -> None:
    """Refuse what the strategies' capabilities or the data cannot support."""
    for sid, strategy in strategies:
        if len(market.symbols) > 1 and not strategy.capabilities.multi_symbol:
            raise ConfigError(
                f"strategy {sid!r} trades one symbol, but the data has {len(market.symbols)}: "
                f"{', '.join(market.symbols)}; select one with data.params.symbols",
                path="data.params.symbols",
            )
    if benchmark is not None and benchmark not in market.frames:
        raise ConfigError(
            f"benchmark {benchmark!r} is not in the data; available: {', '.join(market.symbols)}",
            path="run.benchmark",
        )

"""A price bar."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd


class Bar(NamedTuple):
    """One OHLCV bar of one symbol. Immutable; cheap to create (a tuple).

    ``ts`` is the bar's timestamp as integer nanoseconds since the epoch, UTC; :attr:`time`
    gives it as a timezone-aware :class:`pandas.Timestamp`.
    """

    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def time(self) -> pd.Timestamp:
        return pd.Timestamp(self.ts, tz="UTC")

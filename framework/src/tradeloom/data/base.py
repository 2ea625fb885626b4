"""The data-source contract and the validated bars it produces."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tradeloom.components import Capabilities, Component, Mode

BAR_COLUMNS = ("open", "high", "low", "close", "volume")


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

    @property
    def symbols(self) -> list[str]:
        return sorted(self.frames)

    def fingerprint(self) -> str:
        """SHA-256 over symbols, timestamps and values: identical data, identical fingerprint."""
        h = hashlib.sha256()
        for symbol in self.symbols:
            frame = self.frames[symbol]
            h.update(symbol.encode())
            h.update(np.ascontiguousarray(frame.index.as_unit("ns").asi8).tobytes())
            for col in BAR_COLUMNS:
                h.update(np.ascontiguousarray(frame[col].to_numpy(np.float64)).tobytes())
        return h.hexdigest()

    def slice(self, start: pd.Timestamp | None, end: pd.Timestamp | None) -> MarketData:
        """Bars with ``start <= ts <= end`` (either bound may be None); empty symbols dropped."""
        frames = {}
        for symbol, frame in self.frames.items():
            part = frame.loc[start:end] if (start is not None or end is not None) else frame
            if len(part):
                frames[symbol] = part
        return MarketData(frames, self.quality, self.description)


class DataSource(Component):
    """Base class of data sources.

    Subclasses implement :meth:`load` (history). Live ``stream`` arrives with paper trading.
    """

    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST}), multi_symbol=True)

    def load(
        self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
    ) -> MarketData:
        """Return validated bars with ``start <= ts <= end`` (bounds inclusive, UTC)."""
        raise NotImplementedError(f"{type(self).__name__} does not provide historical data")

"""Tradable instruments."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Instrument(BaseModel):
    """What the engine knows about a symbol. Defaults describe a plain cash equity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    """Ticker as it appears in the data, e.g. ``AAPL``."""
    currency: str = "USD"
    """Quote currency of the prices."""
    tick_size: float = 0.0
    """Minimum price increment; 0 means prices are not rounded."""
    lot_size: float = 0.0
    """Minimum quantity increment; 0 means fractional quantities are allowed."""

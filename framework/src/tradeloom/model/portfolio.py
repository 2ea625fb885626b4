"""Snapshots of positions and the account handed to strategies and observers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Position:
    """A position in one symbol: signed quantity (negative = short) and average entry price."""

    symbol: str
    quantity: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0

    @property
    def is_flat(self) -> bool:
        return self.quantity == 0.0

    @property
    def is_long(self) -> bool:
        return self.quantity > 0.0

    @property
    def is_short(self) -> bool:
        return self.quantity < 0.0


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """The account at one moment, marked at the latest known prices."""

    currency: str
    cash: float
    equity: float
    position_value: float
    gross_exposure: float

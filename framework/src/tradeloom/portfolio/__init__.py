"""Cash, positions and PnL."""

from tradeloom.portfolio.ledger import Ledger, Trade

__all__ = ["Ledger", "Trade"]

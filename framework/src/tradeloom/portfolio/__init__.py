"""Cash, positions and PnL."""

from tradeloom.portfolio.ledger import CashFlow, Ledger, Trade

__all__ = ["CashFlow", "Ledger", "Trade"]

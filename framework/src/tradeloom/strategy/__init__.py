"""Strategies and the Context through which they see and act on the market."""

from tradeloom.strategy.base import Strategy
from tradeloom.strategy.context import Context

__all__ = ["Context", "Strategy"]

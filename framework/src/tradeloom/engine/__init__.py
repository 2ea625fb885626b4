"""The event engine shared by every mode, and what a backtest returns."""

from tradeloom.engine.backtest import BacktestEngine
from tradeloom.engine.result import BacktestResult

__all__ = ["BacktestEngine", "BacktestResult"]

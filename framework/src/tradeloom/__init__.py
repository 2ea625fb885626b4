"""tradeloom: take third-party trading strategies from research to production.

The library is silent: it calls ``logger.disable("tradeloom")``; only the CLI adds log sinks.
"""

from __future__ import annotations

from importlib import metadata

from loguru import logger

from tradeloom.hookspecs import hookimpl

logger.disable("tradeloom")

try:
    __version__ = metadata.version("tradeloom")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = ["Strategy", "__version__", "backtest", "hookimpl", "run_backtest"]


def __getattr__(name: str) -> object:
    # Lazy, so `import tradeloom` (and `tradeloom plugins list`) stays light.
    if name == "Strategy":
        from tradeloom.strategy import Strategy

        return Strategy
    if name in ("backtest", "run_backtest"):
        from tradeloom import api

        return getattr(api, name)
    raise AttributeError(f"module 'tradeloom' has no attribute {name!r}")

"""The base class every strategy subclasses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tradeloom.components import Capabilities, Component, Mode
from tradeloom.model import Bar, Fill, OrderUpdate

if TYPE_CHECKING:
    from tradeloom.strategy.context import Context


class Strategy(Component):
    """A trading strategy: it sees the market through a :class:`Context` and places orders on it.

    Override the callbacks you need; all default to doing nothing. The engine calls them in this
    order for each timestamp: fills and order updates that the new bars caused (``on_fill``,
    ``on_order``), then ``on_bars`` with every symbol's bar at that timestamp. ``on_bars`` calls
    ``on_bar`` once per symbol in symbol order; override ``on_bars`` instead for cross-sectional
    logic that wants all symbols at once.

    Orders are non-blocking: ``ctx.order(...)`` returns the order in state PENDING; acceptance,
    rejection and fills arrive later through ``on_order`` / ``on_fill``, exactly as they will live.
    """

    capabilities = Capabilities(
        modes=frozenset({Mode.BACKTEST, Mode.PAPER, Mode.LIVE}), multi_symbol=True
    )

    def on_start(self, ctx: Context) -> None:
        """Called once before the first bar."""

    def on_bars(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        """Called once per timestamp with the bars of every symbol that has one, by symbol."""
        for bar in bars.values():
            self.on_bar(ctx, bar)

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        """Called for each new bar (through the default :meth:`on_bars`)."""

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        """Called for each execution of one of this strategy's orders."""

    def on_order(self, ctx: Context, update: OrderUpdate) -> None:
        """Called whenever one of this strategy's orders changes state (accepted, rejected, ...)."""

    def on_stop(self, ctx: Context) -> None:
        """Called once after the last bar."""

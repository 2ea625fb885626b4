"""Small builders shared by the kernel tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from tradeloom.data import MarketData
from tradeloom.engine.backtest import BacktestEngine, EngineOutput
from tradeloom.execution import SimulatedBroker
from tradeloom.risk import RiskGate, RiskRule
from tradeloom.strategy import Context, Strategy

IBM_DEPLOYMENT = """
[data]
type = "dataset"
params = { name = "us-stocks-daily", symbols = ["IBM"] }

[strategy]
type = "sma-crossover"
params = { fast = 5, slow = 20, quantity = 10 }

[run]
start = "2010-01-01"
end = "2010-06-30"
"""
"""A small deployment on bundled data (IBM, first half of 2010) that tests extend."""

# Five bars whose fills are easy to compute by hand; b3 gaps up, b4 gaps down.
#            open   high   low    close
GAP_ROWS = [
    (100.0, 101.0, 99.0, 100.0),  # b0
    (102.0, 104.0, 101.0, 103.0),  # b1
    (103.0, 106.0, 100.0, 105.0),  # b2
    (110.0, 112.0, 108.0, 111.0),  # b3 gaps up
    (95.0, 97.0, 90.0, 96.0),  # b4 gaps down
]


def bars(
    rows: Sequence[tuple[float, float, float, float]],
    start: str = "2024-01-01",
    freq: str = "D",
    volume: float = 1000.0,
) -> pd.DataFrame:
    """A bar frame from (open, high, low, close) rows."""
    index = pd.date_range(start, periods=len(rows), freq=freq, tz="UTC", name="ts")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    frame["volume"] = volume
    return frame


class Scripted(Strategy):
    """Runs ``script[i](ctx)`` on the i-th bar (0-based) of its first symbol; records events."""

    def __init__(self, script: dict[int, Callable[[Context], object]]) -> None:
        super().__init__()
        self.script = script
        self.updates: list = []
        self.fills: list = []
        self.placed: list = []

    def on_bar(self, ctx: Context, bar) -> None:  # type: ignore[no-untyped-def]
        action = self.script.get(ctx.bar_count(bar.symbol) - 1)
        if action is not None:
            placed = action(ctx)
            if placed is not None:
                self.placed.append(placed)

    def on_order(self, ctx: Context, update) -> None:  # type: ignore[no-untyped-def]
        self.updates.append(update)

    def on_fill(self, ctx: Context, fill) -> None:  # type: ignore[no-untyped-def]
        self.fills.append(fill)


def run(
    frames: dict[str, pd.DataFrame] | pd.DataFrame,
    strategy: Strategy,
    *,
    cash: float = 10_000.0,
    broker: SimulatedBroker | None = None,
    risk: Sequence[RiskRule] = (),
) -> tuple[EngineOutput, SimulatedBroker]:
    if isinstance(frames, pd.DataFrame):
        frames = {"X": frames}
    broker = broker or SimulatedBroker()
    engine = BacktestEngine(
        MarketData(frames), [("s", strategy)], broker, RiskGate(list(risk)),
        initial_cash=cash, currency="USD",
    )  # fmt: skip
    return engine.run(), broker

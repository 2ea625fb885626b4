"""Test-only strategies and data for the research tests (``test_optimize.py``,
``test_walkforward.py``): a strategy whose trades are random (its ``seed`` is the only
parameter, so a search over seeds is a search over pure luck), and a market in which one seed
has a real, planted edge.

Module-level so that worker processes (``--executor process`` / ``dask``) can import them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from tradeloom.components import Kind, Params
from tradeloom.config import ResolvedDeployment, load_deployment
from tradeloom.data import MarketData
from tradeloom.model import Bar
from tradeloom.plugins import ComponentSpec, PluginHost
from tradeloom.strategy import Context, Strategy
from tradeloom.vector.signals import SignalData, Signals, Sizing

QUANTITY = 600.0
"""Units held long or short (about 60 % of the 100,000 initial cash at a price near 100)."""


_DAY_NS = 86_400 * 10**9


def random_states(seed: int, days: np.ndarray, switch: float) -> np.ndarray:
    """+1 (long) or -1 (short) for each day number (days since 1970-01-01): a random regime
    that flips with probability ``switch`` from one day to the next, a function of ``seed``
    and the calendar alone (so a window starting anywhere sees the same regime)."""
    rng = np.random.default_rng(seed)
    flips = rng.random(int(days.max()) + 1) < switch
    path = np.where(np.cumsum(flips) % 2 == 0, 1, -1)
    return path[days]


def day_numbers(ts_ns: np.ndarray) -> np.ndarray:
    return np.asarray(ts_ns, dtype=np.int64) // _DAY_NS


class RandomRegime(Strategy):
    """Long or short ``QUANTITY`` units, flipping at random: no skill at all."""

    class Params(Params):
        seed: int = 0
        switch: float = 0.1

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        day = day_numbers(np.array([bar.ts.value]))
        state = random_states(self.params.seed, day, self.params.switch)[0]
        ctx.order_target(bar.symbol, QUANTITY * float(state))

    def signals(self, data: SignalData) -> Signals:
        out = Signals.empty(data, Sizing(quantity=QUANTITY), long_short=True)
        for j, symbol in enumerate(data.symbols):
            rows = data.rows(symbol)
            states = random_states(self.params.seed, day_numbers(data.ts[rows]), self.params.switch)
            out.long_entry[rows, j] = states > 0
            out.short_entry[rows, j] = states < 0
        return out


DEPLOYMENT = """
[data]
type = "dataset"
params = { name = "sp500-daily" }

[strategy]
type = "test-random-regime"
params = { seed = 0 }
"""


def research_host() -> PluginHost:
    host = PluginHost()
    spec = ComponentSpec(
        Kind.STRATEGY, "test-random-regime", RandomRegime, "tradeloom-tests", "0",
        "tradeloom-tests:research", "Random long/short regimes.",
    )  # fmt: skip
    host.registry.add(spec)
    return host


def resolved(text: str = DEPLOYMENT, overrides: list[str] | None = None) -> ResolvedDeployment:
    folder = Path(tempfile.mkdtemp(prefix="tradeloom-research-"))
    path = folder / "deploy.toml"
    path.write_text(text, encoding="utf-8")
    return load_deployment([path], overrides or [], host=research_host())


def market(n: int, *, edge_seed: int | None = None, edge: float = 0.002, seed: int = 42,
           switch: float = 0.1, sigma: float = 0.008) -> MarketData:  # fmt: skip
    """``n`` business days of a random walk (daily σ ``sigma``). With ``edge_seed``, each bar's
    return (open to close) gets ``edge × state`` of that seed's regime at the previous bar — the
    position that seed holds during the bar — so that one strategy has a genuine edge."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0, sigma, n)
    index = pd.date_range("2001-01-01", periods=n, freq="B", tz="UTC", name="ts")
    if edge_seed is not None:
        days = day_numbers(index.as_unit("ns").asi8)
        states = random_states(edge_seed, days, switch).astype(float)
        r[1:] += edge * states[:-1]
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])  # no gaps: the bar's return is its own
    frame = pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) * 1.0005,
         "low": np.minimum(open_, close) * 0.9995, "close": close, "volume": 1e6},
        index=index,
    )  # fmt: skip
    return MarketData({"X": frame})


def worst_day(equity: pd.Series, metrics: dict) -> float:
    """A custom objective: the worst daily return (higher is better)."""
    returns = equity / equity.shift(1).fillna(100_000.0) - 1.0
    return float(returns.min())

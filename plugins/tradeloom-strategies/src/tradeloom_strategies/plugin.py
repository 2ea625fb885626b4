"""Entry point of the first-party strategies.

Declared in this distribution's ``pyproject.toml`` exactly as a third-party package would::

    [project.entry-points.tradeloom]
    strategies = "tradeloom_strategies.plugin"
"""

from __future__ import annotations

from tradeloom import hookimpl
from tradeloom.hookspecs import Register
from tradeloom_strategies.donchian import DonchianBreakout
from tradeloom_strategies.rsi_reversion import RsiMeanReversion
from tradeloom_strategies.sma_crossover import SmaCrossover
from tradeloom_strategies.xs_momentum import CrossSectionalMomentum


@hookimpl
def tradeloom_register_strategies(register: Register) -> None:
    """Register the four example strategies."""
    register("sma-crossover", SmaCrossover)
    register("donchian-breakout", DonchianBreakout)
    register("rsi-mean-reversion", RsiMeanReversion)
    register("xs-momentum", CrossSectionalMomentum)

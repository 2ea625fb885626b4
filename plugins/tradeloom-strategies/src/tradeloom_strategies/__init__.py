"""First-party example strategies for tradeloom.

``sma-crossover`` (:class:`SmaCrossover`), ``donchian-breakout`` (:class:`DonchianBreakout`),
``rsi-mean-reversion`` (:class:`RsiMeanReversion`) and ``xs-momentum``
(:class:`CrossSectionalMomentum`), registered through the ``tradeloom`` entry point in
:mod:`tradeloom_strategies.plugin`.
"""

from __future__ import annotations

from tradeloom_strategies.donchian import DonchianBreakout
from tradeloom_strategies.rsi_reversion import RsiMeanReversion
from tradeloom_strategies.sma_crossover import SmaCrossover
from tradeloom_strategies.xs_momentum import CrossSectionalMomentum

__all__ = ["CrossSectionalMomentum", "DonchianBreakout", "RsiMeanReversion", "SmaCrossover"]

"""``{{ cookiecutter.slug }}``: a close-channel breakout, long only. Replace the rule with yours.

The rule, per symbol (``t`` is the index of the symbol's current bar, 0 for its first):

* ``upper[t] = max(close[t - entry], …, close[t - 1])``: the highest close of the ``entry``
  bars before ``t`` (it exists from ``t = entry``);
* ``lower[t] = min(close[t - exit], …, close[t - 1])``: the lowest close of the ``exit`` bars
  before ``t`` (it exists from ``t = exit``);
* flat and ``close[t] > upper[t]``: buy ``quantity`` units;
* long and ``close[t] < lower[t]``: sell to flat.

Comparisons are strict. Orders are market orders sent at the close of bar ``t``; the simulated
broker fills them at the open of bar ``t + 1``, and a signal on the last bar is never filled.
{%- if cookiecutter.vectorised == "yes" %}

:meth:`{{ cookiecutter.class_name }}.signals` computes the same rule for every bar at once for
tradeloom's vector engine. The two paths must trade identically (``tradeloom parity`` and the
contract tests check it): change them together. Maxima and minima are exact in floating point,
so both paths agree bit for bit; a rule built on sums (moving averages) must add the same
numbers in the same order in both, or use ``math.fsum``.
{%- endif %}
"""

from __future__ import annotations

{% if cookiecutter.vectorised == "yes" -%}
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
{% endif -%}
from pydantic import Field
from tradeloom.components import Capabilities, Mode, Params
from tradeloom.model import Bar
from tradeloom.strategy import Context, Strategy
{%- if cookiecutter.vectorised == "yes" %}
from tradeloom.vector import SignalData, Signals, Sizing
{%- endif %}

FLAT = 1e-9
"""A position whose absolute quantity is at most this is flat (float noise)."""


class {{ cookiecutter.class_name }}(Strategy):
    """Close-channel breakout, long only: buy a new entry-bar high close, sell a new exit-bar low.

    The first line of this docstring is the description ``tradeloom plugins list`` shows.
    """

    class Params(Params):
        """Parameters of ``{{ cookiecutter.slug }}`` (unknown keys are errors; values are frozen).

        Each attribute docstring becomes the field's description in ``tradeloom config schema``.
        """

        entry: int = Field(default=20, ge=1)
        """Entry window in bars (>= 1): buy when the close is above the highest close of the
        previous ``entry`` bars."""
        exit: int = Field(default=10, ge=1)
        """Exit window in bars (>= 1): sell to flat when the close is below the lowest close of
        the previous ``exit`` bars. Usually shorter than ``entry``."""
        quantity: float = Field(default=100.0, gt=0, allow_inf_nan=False)
        """Units bought on each entry, per symbol."""

    params: {{ cookiecutter.class_name }}.Params

    capabilities = Capabilities(
        modes=frozenset({Mode.BACKTEST, Mode.PAPER, Mode.LIVE}),
        multi_symbol=True,
        short_selling=False,
    )

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        symbol, p = bar.symbol, self.params
        n = ctx.bar_count(symbol)  # bars seen so far, this one included: t = n - 1
        held = ctx.quantity(symbol)
        if abs(held) <= FLAT:
            if n > p.entry and not ctx.open_orders(symbol):
                upper = ctx.history(symbol, p.entry + 1)[:-1].max()
                if bar.close > upper:
                    ctx.order_target(symbol, p.quantity)
        elif held > 0 and n > p.exit:
            lower = ctx.history(symbol, p.exit + 1)[:-1].min()
            if bar.close < lower:
                ctx.order_target(symbol, 0.0)
{%- if cookiecutter.vectorised == "yes" %}

    def signals(self, data: SignalData) -> Signals:
        """The rule of :meth:`on_bar` for every bar at once (tradeloom's vector engine).

        Flat with ``long_entry`` buys ``quantity``; long with ``long_exit`` sells to flat: the
        vector engine applies the signals with the position held at each bar, as ``on_bar``
        does. The channels are computed on each symbol's own bars, as ``ctx.history`` gives them.
        """
        p = self.params
        out = Signals.empty(data, Sizing(quantity=p.quantity))
        for j, symbol in enumerate(data.symbols):
            rows, close = data.rows(symbol), data.own(symbol, "close")
            out.long_entry[rows, j] = _breaks_above(close, p.entry)
            out.long_exit[rows, j] = _breaks_below(close, p.exit)
        return out


def _breaks_above(close: np.ndarray, window: int) -> np.ndarray:
    """``close[t] > max(close[t - window .. t - 1])`` for every ``t`` (False before ``window``)."""
    hit = np.zeros(len(close), dtype=bool)
    if len(close) > window:
        upper = sliding_window_view(close, window)[:-1].max(axis=1)
        hit[window:] = close[window:] > upper
    return hit


def _breaks_below(close: np.ndarray, window: int) -> np.ndarray:
    """``close[t] < min(close[t - window .. t - 1])`` for every ``t`` (False before ``window``)."""
    hit = np.zeros(len(close), dtype=bool)
    if len(close) > window:
        lower = sliding_window_view(close, window)[:-1].min(axis=1)
        hit[window:] = close[window:] < lower
    return hit
{%- endif %}

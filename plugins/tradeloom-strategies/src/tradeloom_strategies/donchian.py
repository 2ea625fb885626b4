"""``donchian-breakout``: trade closes beyond the highest high / lowest low of earlier bars.

Channels at bar ``t`` exclude bar ``t`` itself:

* ``upper_N[t] = max(high[t-N .. t-1])`` and ``lower_N[t] = min(low[t-N .. t-1])`` with
  ``N = entry``; ``upper_M`` / ``lower_M`` likewise with ``M = exit``.
* An entry channel exists from bar index ``N`` (the ``N + 1``-th bar), an exit channel from bar
  index ``M``.

Rules, per symbol (``size`` from :mod:`tradeloom_strategies.sizing`):

* flat: ``close > upper_N`` → go long ``size``; in ``long_short``, ``close < lower_N`` → go short.
* long: in ``long_short``, ``close < lower_N`` → flip to short ``size`` (one order); otherwise
  ``close < lower_M`` → sell to flat.
* short (``long_short`` only): ``close > upper_N`` → flip to long ``size``; otherwise
  ``close > upper_M`` → buy to flat.

Comparisons are strict: a close equal to a channel bound is no signal. Market orders are sent on
the signal bar and fill at the next bar's open under the default simulated broker.

Each channel is a numpy ``max`` / ``min`` over a read-only ``ctx.history`` view: no Python loop
over the window.
"""

from __future__ import annotations

from pydantic import Field

from tradeloom.components import Capabilities, Mode
from tradeloom.model import Bar
from tradeloom.strategy import Context, Strategy
from tradeloom.vector.signals import SignalData, Signals
from tradeloom_strategies.sizing import SizedParams, is_flat, position_size, signal_sizing


class DonchianBreakout(Strategy):
    """Donchian channel breakout: enter on an N-bar extreme, exit on an M-bar extreme."""

    class Params(SizedParams):
        """Parameters of ``donchian-breakout``."""

        entry: int = Field(default=20, ge=1)
        """Entry channel length N in bars (>= 1): go long when close exceeds the highest high of
        the previous N bars (short below the lowest low, with ``long_short``)."""
        exit: int = Field(default=10, ge=1)
        """Exit channel length M in bars (>= 1): leave a long when close falls below the lowest
        low of the previous M bars (a short when it rises above the highest high). Usually
        shorter than ``entry``."""

    params: DonchianBreakout.Params

    capabilities = Capabilities(
        modes=frozenset({Mode.BACKTEST, Mode.PAPER, Mode.LIVE}),
        multi_symbol=True,
        short_selling=True,  # only with direction = "long_short"
    )

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        symbol = bar.symbol
        entry, exit_ = self.params.entry, self.params.exit
        n = ctx.bar_count(symbol)
        if n <= min(entry, exit_):
            return
        close = bar.close
        long_short = self.params.long_short
        held = ctx.quantity(symbol)
        # Only the channels the current state needs are computed (at most two per bar).
        if is_flat(held):
            if n <= entry or ctx.open_orders(symbol):
                return
            if close > _upper(ctx, symbol, entry):
                self._target(ctx, symbol, +1)
            elif long_short and close < _lower(ctx, symbol, entry):
                self._target(ctx, symbol, -1)
        elif held > 0:
            if long_short and n > entry and close < _lower(ctx, symbol, entry):
                self._target(ctx, symbol, -1)
            elif n > exit_ and close < _lower(ctx, symbol, exit_):
                ctx.order_target(symbol, 0.0)
        elif long_short:
            if n > entry and close > _upper(ctx, symbol, entry):
                self._target(ctx, symbol, +1)
            elif n > exit_ and close > _upper(ctx, symbol, exit_):
                ctx.order_target(symbol, 0.0)

    def _target(self, ctx: Context, symbol: str, sign: int) -> None:
        size = position_size(ctx, symbol, self.params, long=sign > 0)
        if size > 0:
            ctx.order_target(symbol, sign * size)
        else:
            ctx.order_target(symbol, 0.0)

    def signals(self, data: SignalData) -> Signals:
        """The rules of :meth:`on_bar` for every bar at once (``tradeloom.vector``): a close
        beyond the entry channel is an entry (a flip when positioned the other way, as
        ``_target`` does), beyond the exit channel an exit."""
        from tradeloom_strategies.signal_kernels import donchian_signals_nb

        p = self.params
        out = Signals.empty(data, signal_sizing(p), long_short=p.long_short)
        donchian_signals_nb(data.high, data.low, data.close, p.entry, p.exit, *out.arrays())
        return out


def _upper(ctx: Context, symbol: str, window: int) -> float:
    """Highest high of the ``window`` bars before the current one."""
    return float(ctx.history(symbol, window + 1, "high")[:-1].max())


def _lower(ctx: Context, symbol: str, window: int) -> float:
    """Lowest low of the ``window`` bars before the current one."""
    return float(ctx.history(symbol, window + 1, "low")[:-1].min())

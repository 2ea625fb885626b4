"""``rsi-mean-reversion``: buy oversold, sell overbought, leave when RSI returns to the middle.

RSI is Wilder's, over closes, with ``p = period``:

* changes ``Δ[t] = close[t] - close[t-1]``, gains ``G = max(Δ, 0)``, losses ``L = max(-Δ, 0)``;
* the first averages are plain means of the first ``p`` changes (known at bar index ``p``);
  after that ``avg[t] = (avg[t-1] · (p - 1) + x[t]) / p`` (Wilder smoothing), computed
  incrementally, O(1) per bar;
* ``RSI = 100 - 100 / (1 + avg_gain / avg_loss)``; 100 when ``avg_loss = 0 < avg_gain``, 50 when
  both are 0 (a flat series).

Rules, per symbol, evaluated at every bar from index ``period`` on (comparisons are strict):

* flat: ``RSI < oversold`` → go long; in ``long_short``, ``RSI > overbought`` → go short.
* long: in ``long_short``, ``RSI > overbought`` → flip to short (one order); otherwise
  ``RSI > exit_level`` → sell to flat.
* short (``long_short`` only): ``RSI < oversold`` → flip to long; otherwise
  ``RSI < exit_level`` → buy to flat.

With the defaults (30 / 70 / 50) a long bought in an oversold dip is closed once RSI climbs back
above 50, and a new long needs RSI below 30 again, so the strategy does not churn around a level.
Market orders go out on the signal bar and fill at the next bar's open under the default
simulated broker.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, model_validator

from tradeloom.components import Capabilities, Mode
from tradeloom.model import Bar
from tradeloom.strategy import Context, Strategy
from tradeloom.vector.signals import SignalData, Signals
from tradeloom_strategies.sizing import SizedParams, is_flat, position_size, signal_sizing


@dataclass(slots=True)
class _RsiState:
    """Per-symbol Wilder averages."""

    prev_close: float | None = None
    changes: int = 0
    """Price changes seen so far."""
    avg_gain: float = 0.0
    """Sum of gains while seeding (fewer than ``period`` changes), then Wilder's average."""
    avg_loss: float = 0.0


def wilder_rsi(avg_gain: float, avg_loss: float) -> float:
    """RSI from Wilder averages of gains and losses (both >= 0)."""
    if avg_loss == 0.0:
        return 50.0 if avg_gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


class RsiMeanReversion(Strategy):
    """Wilder RSI mean reversion: buy oversold dips, exit when RSI recovers to the middle."""

    class Params(SizedParams):
        """Parameters of ``rsi-mean-reversion``."""

        period: int = Field(default=14, ge=2)
        """RSI period in bars (>= 2). The first RSI value exists at bar index ``period``."""
        oversold: float = Field(default=30.0, gt=0, lt=100)
        """Go long when RSI falls strictly below this level (and cover shorts)."""
        overbought: float = Field(default=70.0, gt=0, lt=100)
        """With ``long_short``, go short when RSI rises strictly above this level (and flip
        longs to short)."""
        exit_level: float = Field(default=50.0, gt=0, lt=100)
        """Close a long when RSI rises strictly above it; close a short when RSI falls strictly
        below it. Between ``oversold`` and ``overbought`` (inclusive)."""

        @model_validator(mode="after")
        def _ordered_levels(self) -> RsiMeanReversion.Params:
            if not self.oversold < self.overbought:
                raise ValueError(
                    f"oversold ({self.oversold:g}) must be below overbought ({self.overbought:g})"
                )
            if not self.oversold <= self.exit_level <= self.overbought:
                raise ValueError(
                    f"exit_level ({self.exit_level:g}) must lie between oversold "
                    f"({self.oversold:g}) and overbought ({self.overbought:g})"
                )
            return self

    params: RsiMeanReversion.Params

    capabilities = Capabilities(
        modes=frozenset({Mode.BACKTEST, Mode.PAPER, Mode.LIVE}),
        multi_symbol=True,
        short_selling=True,  # only with direction = "long_short"
    )

    def on_start(self, ctx: Context) -> None:
        self._state: dict[str, _RsiState] = {}

    def rsi(self, symbol: str) -> float | None:
        """The latest RSI of ``symbol``, or ``None`` before ``period`` changes were seen."""
        state = self._state.get(symbol)
        if state is None or state.changes < self.params.period:
            return None
        return wilder_rsi(state.avg_gain, state.avg_loss)

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        symbol = bar.symbol
        state = self._state.get(symbol)
        if state is None:
            state = self._state[symbol] = _RsiState()
        self._update(state, bar.close)
        value = self.rsi(symbol)
        if value is None:
            return
        p = self.params
        held = ctx.quantity(symbol)
        if is_flat(held):
            if ctx.open_orders(symbol):
                return
            if value < p.oversold:
                self._target(ctx, symbol, +1)
            elif value > p.overbought and p.long_short:
                self._target(ctx, symbol, -1)
        elif held > 0:
            if value > p.overbought and p.long_short:
                self._target(ctx, symbol, -1)
            elif value > p.exit_level:
                ctx.order_target(symbol, 0.0)
        elif p.long_short:
            if value < p.oversold:
                self._target(ctx, symbol, +1)
            elif value < p.exit_level:
                ctx.order_target(symbol, 0.0)

    def _update(self, state: _RsiState, close: float) -> None:
        prev, state.prev_close = state.prev_close, close
        if prev is None:
            return
        change = close - prev
        gain, loss = (change, 0.0) if change > 0 else (0.0, -change)
        period = self.params.period
        state.changes += 1
        if state.changes <= period:
            state.avg_gain += gain
            state.avg_loss += loss
            if state.changes == period:
                state.avg_gain /= period
                state.avg_loss /= period
        else:
            state.avg_gain = (state.avg_gain * (period - 1) + gain) / period
            state.avg_loss = (state.avg_loss * (period - 1) + loss) / period

    def _target(self, ctx: Context, symbol: str, sign: int) -> None:
        size = position_size(ctx, symbol, self.params, long=sign > 0)
        ctx.order_target(symbol, sign * size)

    def signals(self, data: SignalData) -> Signals:
        """The rules of :meth:`on_bar` for every bar at once (``tradeloom.vector``): RSI below
        ``oversold`` is a long entry (a flip from short), above ``overbought`` a short entry,
        above / below ``exit_level`` the long / short exit."""
        from tradeloom_strategies.signal_kernels import rsi_signals_nb

        p = self.params
        out = Signals.empty(data, signal_sizing(p), long_short=p.long_short)
        rsi_signals_nb(data.close, p.period, p.oversold, p.overbought, p.exit_level, *out.arrays())
        return out

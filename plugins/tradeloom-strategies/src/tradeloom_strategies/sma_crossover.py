"""``sma-crossover``: trade the crossings of a fast and a slow simple moving average of close.

Signal (the convention of the project's speed benchmark): with ``d[t] = SMA_fast[t] - SMA_slow[t]``
over closes, a **cross up** at bar ``t`` is ``d[t] > 0 >= d[t-1]`` and a **cross down** is
``d[t] < 0 <= d[t-1]``. ``d`` exists from bar index ``slow - 1``, so the first possible signal is
at bar index ``slow`` (the ``slow + 1``-th bar).

Trading, per symbol and independently of the other symbols:

* ``long_only``: flat and cross up → buy the position size; long and cross down → sell to flat.
* ``long_short``: cross up → target ``+size``; cross down → target ``-size`` (a flip is one order).

Orders are market orders placed on the signal bar; under the default simulated broker they fill
at the next bar's open, and a signal on the last bar never fills.

The moving averages are running sums updated once per bar (add the new close, drop the one that
left the window, kept in the strategy's own ring buffer of the last ``slow`` closes), so a bar
costs O(1) whatever the windows and allocates nothing. To keep float drift bounded over millions
of bars the sums are re-anchored with an exact ``math.fsum`` of the window once every ``slow``
bars (amortised O(1)).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field, model_validator

from tradeloom.components import Capabilities, Mode
from tradeloom.model import Bar
from tradeloom.strategy import Context, Strategy
from tradeloom.vector.signals import SignalData, Signals
from tradeloom_strategies.sizing import SizedParams, is_flat, position_size, signal_sizing

if TYPE_CHECKING:
    from tradeloom.vector.kernels import CostSpec


@dataclass(slots=True)
class _SmaState:
    """Per-symbol running state."""

    bars: int = 0
    """Bars of the symbol folded into the sums so far."""
    sum_fast: float = 0.0
    sum_slow: float = 0.0
    prev_d: float | None = None
    """``d`` at the previous bar, once it exists."""
    window: deque[float] = field(default_factory=deque)
    """The last ``slow`` closes, oldest first."""


class SmaCrossover(Strategy):
    """Fast/slow simple moving average crossover on close, long only or long/short."""

    class Params(SizedParams):
        """Parameters of ``sma-crossover``."""

        fast: int = Field(default=10, ge=1)
        """Window of the fast moving average, in bars (>= 1, smaller than ``slow``)."""
        slow: int = Field(default=30, ge=2)
        """Window of the slow moving average, in bars (>= 2, larger than ``fast``)."""

        @model_validator(mode="after")
        def _fast_below_slow(self) -> SmaCrossover.Params:
            if self.fast >= self.slow:
                raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
            return self

    params: SmaCrossover.Params

    capabilities = Capabilities(
        modes=frozenset({Mode.BACKTEST, Mode.PAPER, Mode.LIVE}),
        multi_symbol=True,
        short_selling=True,  # only with direction = "long_short"
    )

    def on_start(self, ctx: Context) -> None:
        self._state: dict[str, _SmaState] = {}
        self._fast, self._slow = self.params.fast, self.params.slow

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        # The hot path of every backtest that uses this strategy: kept flat on purpose.
        state = self._state.get(bar.symbol)
        if state is None:
            state = self._state[bar.symbol] = _SmaState(window=deque(maxlen=self.params.slow))
        fast, slow = self._fast, self._slow
        window = state.window
        close = bar.close
        held = len(window)
        if held >= fast:
            state.sum_fast -= window[-fast]
        if held == slow:
            state.sum_slow -= window[0]
        window.append(close)
        state.sum_fast += close
        state.sum_slow += close
        n = state.bars = state.bars + 1
        if n % slow == 0:  # exact re-anchoring bounds float drift
            state.sum_slow = math.fsum(window)
            state.sum_fast = math.fsum(window[i] for i in range(slow - fast, slow))
        if n < slow:
            return
        d = state.sum_fast / fast - state.sum_slow / slow
        prev, state.prev_d = state.prev_d, d
        if prev is None:
            return
        if d > 0 >= prev:
            self._on_cross(ctx, bar.symbol, up=True)
        elif d < 0 <= prev:
            self._on_cross(ctx, bar.symbol, up=False)

    def _on_cross(self, ctx: Context, symbol: str, *, up: bool) -> None:
        held = ctx.quantity(symbol)
        if self.params.long_short:
            size = position_size(ctx, symbol, self.params, long=up)
            ctx.order_target(symbol, size if up else -size)
        elif up:
            if is_flat(held) and not ctx.open_orders(symbol):
                size = position_size(ctx, symbol, self.params, long=True)
                if size > 0:
                    ctx.order_target(symbol, size)
        elif held > 0:
            ctx.order_target(symbol, 0.0)

    # --- the vector engine ------------------------------------------------------------------------
    def signals(self, data: SignalData) -> Signals:
        """The crossings of :meth:`on_bar` for every bar at once (``tradeloom.vector``).

        Cross up sets ``long_entry`` and ``short_exit``, cross down ``short_entry`` and
        ``long_exit``; long only uses entries and exits as ``_on_cross`` does, and long/short
        re-targets to ``±size`` on every crossing (``retarget``), like ``order_target``.
        """
        from tradeloom_strategies.signal_kernels import sma_signals_nb

        p = self.params
        out = Signals.empty(data, signal_sizing(p), long_short=p.long_short, retarget=p.long_short)
        sma_signals_nb(data.close, p.fast, p.slow, *out.arrays())
        return out

    @classmethod
    def fused_sweep(
        cls,
        data: SignalData,
        params: Sequence[SmaCrossover.Params],
        costs: CostSpec,
        periods_per_year: float,
        bucket: np.ndarray,
        bucket_equity: np.ndarray,
    ) -> np.ndarray:
        """Sweep statistics of every ``params`` in one parallel compiled call (see
        :func:`tradeloom.vector.sweep`): each combination computes its moving averages and
        simulates them without leaving numba (``bucket_equity[i]`` receives combination
        ``i``'s equity per bucket)."""
        from tradeloom_strategies.signal_kernels import sma_sweep_nb

        def floats(values: list[float | None]) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

        return sma_sweep_nb(
            data.open,
            data.high,
            data.low,
            data.close,
            np.array([p.fast for p in params], dtype=np.int64),
            np.array([p.slow for p in params], dtype=np.int64),
            np.array([p.long_short for p in params], dtype=np.bool_),
            floats([p.quantity for p in params]),
            floats([p.fraction if p.quantity is None else None for p in params]),
            costs,
            float(periods_per_year),
            bucket,
            bucket_equity,
        )

"""``xs-momentum``: hold a universe's best recent performers, equal-weighted, on a schedule.

**Score.** At a rebalance bar ``t`` the score of a symbol is its trailing return over
``lookback`` bars, skipping the most recent ``skip`` bars::

    score = close[t - skip] / close[t - skip - lookback] - 1

(indices count that symbol's own bars). A symbol with fewer than ``lookback + skip + 1`` bars
is not eligible. Symbols are ranked by score, highest first (ties by symbol name), and the top
``min(top_n, eligible)`` are selected, each with weight ``gross_fraction / selected``.

**Schedule.** The strategy counts timestamps (``on_bars`` calls). The first rebalance happens at
the first timestamp at which at least two symbols are eligible; then every ``rebalance_every``
timestamps after it.

**Two-step rebalance** (because every market order fills at the next bar's open, the cash from
a sale does not exist when the buy is submitted, and a cash account rejects buys it cannot pay
for):

1. On the rebalance bar: sell every held name that was not selected (target 0) and trim
   selected names whose value exceeds their new weight (``order_target_percent``). Nothing is
   bought.
2. On the next bar, after those sales have filled at its open: for every selected name, place
   ``order_target_percent(name, weight)`` sized from the equity and closes of that bar; any
   remaining sells go first. Buys are sized at the close and fill at the next open; the
   ``1 - gross_fraction`` cash buffer (5% by default) absorbs the gap between the two.

If a buy is nevertheless rejected or canceled (e.g. the basket gapped up by more than the
buffer), step 2 is repeated on the following bar, re-sized at the new prices, until it succeeds
or the next rebalance comes. Long only; quantities are whole units, rounded down.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from tradeloom.components import Capabilities, Mode, Params
from tradeloom.errors import ConfigError
from tradeloom.model import Bar, OrderStatus, OrderUpdate, Side
from tradeloom.strategy import Context, Strategy
from tradeloom_strategies.sizing import is_flat

_FAILED = frozenset({OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED})


class CrossSectionalMomentum(Strategy):
    """Cross-sectional momentum: hold the top-N trailing performers, equal-weighted."""

    class Params(Params):
        """Parameters of ``xs-momentum``."""

        lookback: int = Field(default=126, ge=1)
        """Bars over which the trailing return is measured (>= 1)."""
        skip: int = Field(default=0, ge=0)
        """Most recent bars left out of the return (>= 0), e.g. 21 for the classic
        "12 months minus the last month" on daily bars."""
        rebalance_every: int = Field(default=21, ge=2)
        """Bars between rebalances (>= 2: a rebalance takes two bars, sells then buys)."""
        top_n: int = Field(default=3, ge=1)
        """How many of the best-ranked symbols to hold."""
        gross_fraction: float = Field(default=0.95, gt=0, le=1)
        """Fraction of equity invested in total, split equally among the selected symbols;
        the rest stays in cash as a buffer for overnight gaps."""

    params: CrossSectionalMomentum.Params

    capabilities = Capabilities(
        modes=frozenset({Mode.BACKTEST, Mode.PAPER, Mode.LIVE}),
        multi_symbol=True,
        short_selling=False,
    )

    def on_start(self, ctx: Context) -> None:
        if len(ctx.symbols) < 2:
            raise ConfigError(
                f"xs-momentum ranks symbols against each other and needs at least 2, "
                f"got {len(ctx.symbols)} ({', '.join(ctx.symbols)}); give the data source "
                "more symbols"
            )
        self._bars = 0
        self._anchor: int | None = None
        self._weights: dict[str, float] = {}
        """Target weights of the current selection."""
        self._complete_next = False
        """Whether step 2 (the buys) is due on the next bar."""
        self.selections: list[tuple[int, list[str]]] = []
        """Every rebalance as (timestamp in ns, selected symbols best first), for inspection."""

    def on_bars(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        index = self._bars
        self._bars += 1
        rebalance = (
            self._anchor is None or (index - self._anchor) % self.params.rebalance_every == 0
        )
        if self._complete_next and not rebalance:
            self._complete_next = False
            self._buy_step(ctx)
        if rebalance:
            self._sell_step(ctx, index)

    def on_order(self, ctx: Context, update: OrderUpdate) -> None:
        order = update.order
        if order.side is Side.BUY and update.status in _FAILED and order.symbol in self._weights:
            ctx.log.warning(
                "buy of {} {} {}: {}; retrying at the next bar",
                order.quantity, order.symbol, update.status.value, update.reason,
            )  # fmt: skip
            self._complete_next = True

    def scores(self, ctx: Context) -> dict[str, float]:
        """Trailing returns of every eligible symbol at the current bar."""
        lookback, skip = self.params.lookback, self.params.skip
        need = lookback + skip + 1
        out: dict[str, float] = {}
        for symbol in ctx.symbols:
            if ctx.bar_count(symbol) < need:
                continue
            closes = ctx.history(symbol, need)
            out[symbol] = float(closes[-1 - skip] / closes[0] - 1.0)
        return out

    def _sell_step(self, ctx: Context, index: int) -> None:
        scores = self.scores(ctx)
        if len(scores) < 2:
            return
        if self._anchor is None:
            self._anchor = index
        ranked = sorted(scores, key=lambda s: (-scores[s], s))
        selected = ranked[: self.params.top_n]
        weight = self.params.gross_fraction / len(selected)
        self._weights = dict.fromkeys(selected, weight)
        self.selections.append((ctx.ts, selected))
        for symbol in sorted(ctx.positions()):
            if symbol not in self._weights:
                ctx.order_target(symbol, 0.0)
        equity = ctx.equity
        for symbol in selected:
            if self._value(ctx, symbol) > weight * equity:
                ctx.order_target_percent(symbol, weight)
        self._complete_next = True

    def _buy_step(self, ctx: Context) -> None:
        for symbol in sorted(ctx.positions()):
            if symbol not in self._weights:
                ctx.order_target(symbol, 0.0)
        equity = ctx.equity
        # Reductions first, then increases, so that sells are queued ahead of buys.
        order = sorted(
            self._weights, key=lambda s: self._value(ctx, s) <= self._weights[s] * equity
        )
        for symbol in order:
            ctx.order_target_percent(symbol, self._weights[symbol])

    @staticmethod
    def _value(ctx: Context, symbol: str) -> float:
        quantity = ctx.quantity(symbol)
        return 0.0 if is_flat(quantity) else quantity * ctx.last_price(symbol)

"""Fill models of the simulated broker: when an order can first trade, and how much of it a bar
can fill.

A :class:`FillModel` is a component with three optional parts; the broker combines every
configured model (``[[fill_models]]`` in a deployment):

* :attr:`FillModel.at_close`: market orders fill at the close of the bar on which they were
  sent (optimistic: the strategy decided after seeing that close). The default, with no model
  saying so, is the next bar's open.
* :meth:`FillModel.delay`: ``(bars, nanoseconds)`` before a new order becomes active. With a
  delay of *b* bars and *d* ns, an order sent at bar *k* (time *t*) can first trade on a bar
  *j* with ``j > k + b`` and ``ts_j >= t + d``. The largest delay of all models applies.
* :meth:`FillModel.capacity`: the units of a symbol that all orders together may fill on a bar
  (the smallest of all models applies). Whatever does not fit stays working and carries over:
  a partial fill.

The same-bar close is also the broker's own ``fill_at = "close"`` (which the vector engine
supports as well); the fill models are applied by the event engine only.
"""

from __future__ import annotations

import math

from pydantic import Field

from tradeloom.components import Capabilities, Component, Mode, Params
from tradeloom.model import Bar

NS_PER_MS = 1_000_000


class FillModel(Component):
    """Base of fill models; every part is optional (the default is the next bar's open, no
    delay, no volume limit)."""

    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST, Mode.PAPER}))
    at_close: bool = False
    """Market orders fill at the close of the bar they were sent on."""

    def delay(self) -> tuple[int, int]:
        """``(bars, nanoseconds)`` an order waits after it is sent before it can trade."""
        return 0, 0

    def capacity(self, bar: Bar) -> float:
        """Units of ``bar.symbol`` all orders together may fill on ``bar``."""
        return math.inf

    def describe(self) -> str:
        return (type(self).__doc__ or type(self).__name__).strip().splitlines()[0]


class NextOpen(FillModel):
    """Market orders fill at the next bar's open (the default; no look-ahead)."""

    def describe(self) -> str:
        return "Fill model next-open: market orders fill at the next bar's open."


class SameClose(FillModel):
    """Market orders fill at the close of the bar they were sent on (optimistic)."""

    at_close = True

    def describe(self) -> str:
        return (
            "Fill model same-close, OPTIMISTIC: market orders fill at the close of the bar on "
            "which the strategy decided, a price it had already seen."
        )


class VolumeParticipation(FillModel):
    """Fills limited to a share of each bar's volume; the rest carries over as a partial
    fill."""

    class Params(Params):
        max_participation: float = Field(gt=0, le=1)
        """The largest fraction of a bar's volume the orders of one symbol may fill on it,
        e.g. 0.1 for 10 %. A bar with no volume fills nothing."""

    params: VolumeParticipation.Params

    def capacity(self, bar: Bar) -> float:
        return self.params.max_participation * bar.volume

    def describe(self) -> str:
        return (
            f"Fill model volume-participation: at most {self.params.max_participation:.1%} of "
            "each bar's volume per symbol; the rest of an order carries over to later bars "
            "(partial fills); bars without volume fill nothing."
        )


class Latency(FillModel):
    """Orders become active only after a delay, in bars and/or milliseconds."""

    class Params(Params):
        bars: int = Field(default=0, ge=0)
        """Bars an order waits after the bar it was sent on (0: it can trade on the next)."""
        ms: int = Field(default=0, ge=0)
        """Milliseconds after it was sent before an order can trade: it first trades on a bar
        stamped at least this much later."""

    params: Latency.Params

    def delay(self) -> tuple[int, int]:
        return self.params.bars, self.params.ms * NS_PER_MS

    def describe(self) -> str:
        p = self.params
        return (
            f"Fill model latency: an order can trade only from the {p.bars + 1}{_nth(p.bars + 1)}"
            f" bar after the one it was sent on and {p.ms} ms after it was sent."
        )


def _nth(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


BUILTIN_FILL_MODELS: dict[str, type[FillModel]] = {
    "next-open": NextOpen,
    "same-close": SameClose,
    "volume-participation": VolumeParticipation,
    "latency": Latency,
}
"""The built-in fill models by registered name."""

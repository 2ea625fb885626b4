"""Risk monitors: rules that watch executions, equity and bars and act through the control.

* :class:`RepeatedExecutionGuard` disables a strategy after N executions within a window (the
  Knight Capital failure: a loop that re-sends its order on every fill). Only an operator
  re-enables it (:meth:`~tradeloom.risk.control.RiskControl.resume`).
* :class:`MaxDailyLoss` and :class:`MaxDrawdown` halt the account when the loss since the
  previous day's last mark, or the fall from the equity peak, passes a limit; optionally they
  also cancel working orders and flatten the positions.
* :class:`StopLoss`, :class:`TakeProfit` and :class:`TrailingStop` are protective exits: they
  close a position whose price crossed a level set from its average entry price (percent, ATR
  multiple, or an absolute distance), even when the strategy forgot to. The exit is a market
  order from the runner (strategy id ``risk``), risk-reducing, checked on each bar's close and
  filled under the broker's fill convention (the next bar's open by default).

Equity is marked once per timestamp, after the strategies and the broker have seen the bars,
so a breach halts the account within the bar that shows it: orders from the next callback on
are refused.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Literal

from pydantic import Field, model_validator

from tradeloom.components import Params
from tradeloom.model import Bar, Fill, Side
from tradeloom.risk.base import RiskMonitor, number
from tradeloom.risk.control import RISK_ID, RiskControl, Scope, TradingState
from tradeloom.risk.sizing import atr

_NS = 1_000_000_000
_DAY = 86_400 * _NS
_NEVER = 2**63 - 1


def _halted(day: int) -> tuple[float, float, int]:
    """Halted today: nothing to watch until tomorrow (or a resume, which resets the band)."""
    return -math.inf, math.inf, (day + 1) * _DAY


class RepeatedExecutionGuard(RiskMonitor):
    """Disables a strategy after ``max_fills`` executions within ``window_seconds``.

    Counts each fill (a partial fill is an execution) of each strategy in a sliding window; the
    fill that reaches the count halts the strategy's scope (``strategy:ID``) and, with
    ``cancel_working``, cancels its working orders. The halt holds until an operator resumes the
    scope; the rule never lifts it."""

    class Params(Params):
        max_fills: int = Field(gt=0)
        """Executions of one strategy within the window that disable it."""
        window_seconds: float = Field(gt=0)
        """The window, in seconds of the run's clock."""
        cancel_working: bool = True
        """Also cancel the strategy's working orders when it is disabled."""

    def __init__(self, params: Params | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._window = round(self.params.window_seconds * _NS)
        self._fills: dict[str, deque[int]] = {}

    def on_fill(self, fill: Fill, control: RiskControl) -> None:
        sid = fill.strategy_id
        if not sid or sid == RISK_ID:
            return
        times = self._fills.get(sid)
        if times is None:
            times = self._fills[sid] = deque()
        oldest = fill.ts - self._window
        while times and times[0] <= oldest:
            times.popleft()
        times.append(fill.ts)
        limit = self.params.max_fills
        if len(times) >= limit:
            scope = Scope("strategy", sid)
            if control.state(scope) is not TradingState.HALTED:
                control.halt(
                    scope,
                    f"{len(times)} executions within {number(self.params.window_seconds)} s: "
                    "strategy disabled until an operator re-enables it",
                    rule=self.name, limit=limit, observed=len(times),
                    cancel=self.params.cancel_working,
                )  # fmt: skip
            times.clear()


class _HaltParams(Params):
    cancel_working: bool = True
    """Also cancel every working order when the limit halts the account."""
    flatten: bool = False
    """Also close every position with market orders from the runner."""
    reset_on_resume: bool = True
    """When an operator resumes the halted account, measure from the equity at that moment
    (false: from the original reference, so a resumed account still beyond the limit halts
    again at the next mark)."""


class _EquityLimit(RiskMonitor):
    """Shared: the halt, and noticing an operator's resume."""

    def __init__(self, params: Params | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._tripped = False

    def _resumed(self, control: RiskControl) -> bool:
        """True once, at the first mark after an operator lifted this rule's halt."""
        if self._tripped and control.state() is not TradingState.HALTED:
            self._tripped = False
            return True
        return False

    def _halt(self, control: RiskControl, reason: str, limit: float, observed: float) -> None:
        self._tripped = True
        if control.state() is TradingState.HALTED:
            return
        p = self.params
        control.halt(
            "global", reason, rule=self.name, limit=limit, observed=observed,
            cancel=p.cancel_working, flatten=p.flatten,
        )  # fmt: skip


class MaxDailyLoss(_EquityLimit):
    """Halts the account when today's loss passes a limit.

    Today's loss is the equity at the previous UTC day's last mark (the run's first mark on
    its first day) minus the equity now. Give ``max_loss`` (account currency), ``max_loss_pct``
    (percent of that reference) or both; the first one breached halts."""

    class Params(_HaltParams):
        max_loss: float | None = Field(default=None, gt=0)
        """Largest loss in one day, in the account currency."""
        max_loss_pct: float | None = Field(default=None, gt=0, lt=100)
        """Largest loss in one day, in percent of the previous day's closing equity."""

        @model_validator(mode="after")
        def _one_limit(self) -> MaxDailyLoss.Params:
            if self.max_loss is None and self.max_loss_pct is None:
                raise ValueError("give max_loss, max_loss_pct or both")
            return self

    def __init__(self, params: Params | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._day: int | None = None
        self._reference = 0.0

    def on_equity(
        self, ts: int, equity: float, control: RiskControl
    ) -> tuple[float, float, int] | None:
        day = ts // _DAY
        if day != self._day:
            # The engine calls at the first mark of each day (the band ends at midnight), so
            # the previous mark is the previous day's last.
            previous = control.previous_equity
            self._reference = equity if self._day is None or previous is None else previous
            self._day = day
        if self._resumed(control) and self.params.reset_on_resume:
            self._reference = equity
        ref = self._reference
        loss = ref - equity
        p = self.params
        floor = -math.inf
        if p.max_loss is not None:
            floor = ref - p.max_loss - 1e-9
            if loss > p.max_loss + 1e-9:
                self._halt(control, "daily loss over the limit", p.max_loss, loss)
                return None if control.state() is not TradingState.HALTED else _halted(day)
        if p.max_loss_pct is not None and ref > 0:
            floor = max(floor, ref * (1.0 - (p.max_loss_pct + 1e-9) / 100.0))
            pct = loss / ref * 100.0
            if pct > p.max_loss_pct + 1e-9:
                self._halt(control, "daily loss % over the limit", p.max_loss_pct, pct)
                return None if control.state() is not TradingState.HALTED else _halted(day)
        return floor, math.inf, (day + 1) * _DAY


class MaxDrawdown(_EquityLimit):
    """Halts the account when equity falls more than ``max_drawdown_pct`` % below its peak
    (the highest mark since the run started, or since an operator's resume)."""

    class Params(_HaltParams):
        max_drawdown_pct: float = Field(gt=0, lt=100)
        """Largest fall from the equity peak, in percent of the peak."""

    def __init__(self, params: Params | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._peak: float | None = None

    def on_equity(
        self, ts: int, equity: float, control: RiskControl
    ) -> tuple[float, float, int] | None:
        if self._resumed(control) and self.params.reset_on_resume:
            self._peak = equity
        if self._peak is None or equity > self._peak:
            self._peak = equity
        peak = self._peak
        limit = self.params.max_drawdown_pct
        if not peak > 0:
            return None
        drawdown = (peak - equity) / peak * 100.0
        if drawdown > limit + 1e-9:
            self._halt(control, "drawdown % over the limit", limit, drawdown)
            if control.state() is TradingState.HALTED:
                return -math.inf, peak, _NEVER  # only a new peak or a resume matters now
            return None
        return peak * (1.0 - (limit + 1e-9) / 100.0), peak, _NEVER


class _ExitParams(Params):
    pct: float | None = Field(default=None, gt=0)
    """Distance from the reference price in percent of it."""
    atr_multiple: float | None = Field(default=None, gt=0)
    """Distance in average true ranges (Wilder, ``atr_window`` bars) measured when the position
    was entered or last changed."""
    atr_window: int = Field(default=14, gt=0)
    """Bars in the ATR."""
    amount: float | None = Field(default=None, gt=0)
    """Distance in price units of the symbol."""
    symbols: list[str] | None = None
    """Symbols to protect (default: every symbol)."""
    trigger: Literal["close", "range"] = "close"
    """What must cross the level: the bar's close, or any price in its range (low for a
    long's stop, high for its take-profit; the exit still fills at the next fill, never at
    the level)."""

    @model_validator(mode="after")
    def _one_distance(self) -> _ExitParams:
        given = [n for n in ("pct", "atr_multiple", "amount") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of pct, atr_multiple or amount"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class _ProtectiveExit(RiskMonitor):
    """Shared: per-symbol entry tracking and the exit."""

    kind = ""

    def __init__(self, params: Params | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._entry: dict[str, tuple[float, float, float]] = {}
        """symbol -> (signed quantity, average price, distance) the level was set for."""
        self._extreme: dict[str, float] = {}
        p = self.params
        self._symbols = None if p.symbols is None else frozenset(p.symbols)

    def on_bar(self, bar: Bar, control: RiskControl) -> None:
        symbol = bar.symbol
        if self._symbols is not None and symbol not in self._symbols:
            return
        qty, avg = control.position(symbol)
        if qty == 0.0:
            self._entry.pop(symbol, None)
            self._extreme.pop(symbol, None)
            return
        entry = self._entry.get(symbol)
        if entry is None or (entry[0] > 0) != (qty > 0) or entry[1] != avg:
            # A new position, or one added to (a new average): a new level, trailing afresh.
            entry = self._entry[symbol] = (qty, avg, self._distance(symbol, avg, control))
            self._extreme[symbol] = avg
        elif entry[0] != qty:  # partly closed: same level, same trail, fewer units
            entry = self._entry[symbol] = (qty, avg, entry[2])
        if entry[2] != entry[2]:  # NaN: not enough bars for the ATR at entry; try each bar
            entry = self._entry[symbol] = (qty, avg, self._distance(symbol, avg, control))
            if entry[2] != entry[2]:
                return
        long = qty > 0
        level = self._level(symbol, long, avg, entry[2], bar)
        if level is None:
            return
        p = self.params
        if self.kind == "take-profit":
            price = (bar.high if long else bar.low) if p.trigger == "range" else bar.close
            crossed = price >= level if long else price <= level
        else:
            price = (bar.low if long else bar.high) if p.trigger == "range" else bar.close
            crossed = price <= level if long else price >= level
        if crossed:
            side = Side.SELL if long else Side.BUY
            control.exit(
                symbol, abs(qty), side,
                f"{'long' if long else 'short'} {abs(qty):g} {symbol} (avg {avg:g}): "
                f"{p.trigger} {price:g} crossed the {self.kind} level {level:g}",
                rule=self.name or self.kind,
            )  # fmt: skip
            self._entry.pop(symbol, None)

    def _distance(self, symbol: str, avg: float, control: RiskControl) -> float:
        p = self.params
        if p.amount is not None:
            return p.amount
        if p.pct is not None:
            return -p.pct  # a percentage: resolved against the reference price in _level
        bars = control.history(symbol, 4 * p.atr_window + 1)  # enough for Wilder's smoothing
        if bars.shape[1] < p.atr_window + 1:
            return float("nan")
        value = atr(bars[1], bars[2], bars[3], p.atr_window)
        return p.atr_multiple * value

    @staticmethod
    def _away(reference: float, distance: float) -> float:
        """The distance from ``reference``: absolute, or a percentage of it (negative)."""
        return reference * -distance / 100.0 if distance < 0 else distance

    def _level(
        self, symbol: str, long: bool, avg: float, distance: float, bar: Bar
    ) -> float | None:
        raise NotImplementedError


class StopLoss(_ProtectiveExit):
    """Closes a position whose price went ``distance`` against its average entry price."""

    kind = "stop-loss"

    class Params(_ExitParams):
        pass

    def _level(self, symbol: str, long: bool, avg: float, distance: float, bar: Bar) -> float:
        d = self._away(avg, distance)
        return avg - d if long else avg + d


class TakeProfit(_ProtectiveExit):
    """Closes a position whose price went ``distance`` in its favour from the average entry."""

    kind = "take-profit"

    class Params(_ExitParams):
        pass

    def _level(self, symbol: str, long: bool, avg: float, distance: float, bar: Bar) -> float:
        d = self._away(avg, distance)
        return avg + d if long else avg - d


class TrailingStop(_ProtectiveExit):
    """Closes a position whose price fell ``distance`` from its best close since entry (the
    highest for a long, the lowest for a short; the high or low with ``trigger = "range"``);
    a percentage distance is of that best price."""

    kind = "trailing-stop"

    class Params(_ExitParams):
        pass

    def _level(self, symbol: str, long: bool, avg: float, distance: float, bar: Bar) -> float:
        range_ = self.params.trigger == "range"
        best = self._extreme.get(symbol, avg)
        # The level trails the best price up to the previous bar: this bar's own extreme
        # cannot both raise the level and cross it.
        d = self._away(best, distance)
        level = best - d if long else best + d
        seen = (bar.high if long else bar.low) if range_ else bar.close
        self._extreme[symbol] = max(best, seen) if long else min(best, seen)
        return level

"""Built-in pre-trade rules.

Amounts are in the account currency: positions and prices in a :class:`RiskView` are in each
symbol's quote currency and are converted with ``view.rate(symbol)``. Exposure counts working
orders as if they fill (the worst case, see :meth:`RiskView.gross_exposure`); an order that does
not add to the exposure a rule limits always passes, even when a price move has already taken the
account over the limit.

The stateful rules (message throttle, duplicate guard) remember what they let through: a rule
instance lives for one run (the runner builds a fresh one per run). They keep time on
``view.ts``, the simulated clock in a backtest.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from tradeloom.components import Params
from tradeloom.model import Order, Side
from tradeloom.risk.base import Reject, RiskRule, RiskView, number
from tradeloom.risk.control import RiskControl, Scope


class MaxOrderQuantity(RiskRule):
    """Refuses any order for more than ``max_quantity`` units (fat-finger guard)."""

    class Params(Params):
        max_quantity: float = Field(gt=0)
        """Largest quantity a single order may have."""

    def room(self, symbol: str, side: Side, view: RiskView) -> float | None:
        return self.params.max_quantity

    def check(self, order: Order, view: RiskView) -> Reject | None:
        limit = self.params.max_quantity
        if order.quantity > limit:
            return Reject(self.name, "order quantity over the limit", limit, order.quantity)
        return None


class MaxOrderNotional(RiskRule):
    """Refuses any order whose notional exceeds ``max_notional``: its quantity × the higher of
    its limit price and the reference price (the latest close); an order with no price at all
    is refused."""

    class Params(Params):
        max_notional: float = Field(gt=0)
        """Largest quantity × reference price a single order may have, in account currency."""

    def room(self, symbol: str, side: Side, view: RiskView) -> float | None:
        price = view.last_prices.get(symbol)
        return self.params.max_notional / price if price else 0.0

    def check(self, order: Order, view: RiskView) -> Reject | None:
        # The higher of the limit price and the reference price: a marketable sell limit far
        # below the market still trades at the market, a buy limit above it may fill there.
        ref = view.last_prices.get(order.symbol)
        limit = order.limit_price
        price = ref if limit is None else limit if ref is None else max(limit, ref)
        if price is None:
            return Reject(self.name, f"no reference price for {order.symbol}")
        notional = order.quantity * price
        if notional > self.params.max_notional:
            return Reject(
                self.name, "order notional over the limit", self.params.max_notional, notional
            )
        return None


class MaxPosition(RiskRule):
    """Caps the absolute position per symbol, counting working orders on the same side."""

    class Params(Params):
        max_quantity: float = Field(gt=0)
        """Largest absolute position (held + working orders) per symbol, in units."""

    def room(self, symbol: str, side: Side, view: RiskView) -> float | None:
        sign = side.sign
        reach = (view.position_qty(symbol) + view.working_qty(symbol, sign)) * sign
        return max(0.0, self.params.max_quantity - reach)

    def check(self, order: Order, view: RiskView) -> Reject | None:
        sign = order.side.sign
        worst = (
            view.position_qty(order.symbol)
            + view.working_qty(order.symbol, sign)
            + order.quantity * sign
        )
        if abs(worst) > self.params.max_quantity + 1e-9:
            return Reject(
                self.name,
                f"position in {order.symbol} would exceed the limit",
                self.params.max_quantity,
                abs(worst),
            )
        return None


def _over(value: float, limit: float) -> bool:
    """``value`` above ``limit``, allowing for float rounding."""
    return value - limit > 1e-9 * max(1.0, abs(limit))


def _adds(before: float, after: float) -> bool:
    """An order takes an exposure from ``before`` to ``after``: does it add to it?"""
    return after - before > 1e-9 * max(1.0, abs(before))


def _no_price(rule: RiskRule, order: Order, view: RiskView) -> Reject | None:
    if view.unit_value(order.symbol, order) is None:
        return Reject(rule.name, f"no reference price for {order.symbol}")
    return None


class PriceCollar(RiskRule):
    """Refuses limit and stop prices more than ``max_deviation_pct`` % from the latest close.

    Checks the limit price, the stop price, and a trailing stop's level once it is set. Market
    orders pass; an order with a price but no reference price yet is refused."""

    class Params(Params):
        max_deviation_pct: float = Field(gt=0)
        """Largest distance of a limit or stop price from the latest close, in percent of it."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        if order.limit_price is None and order.stop_price is None:
            return None  # market, market-on-open/close, a trailing stop whose level is not set
        ref = view.last_prices.get(order.symbol)
        if ref is None or not ref > 0:
            return Reject(
                self.name,
                f"no reference price for {order.symbol} yet: a {order.type.value} order's "
                "price cannot be checked",
            )
        limit = self.params.max_deviation_pct
        for label, price in (("limit price", order.limit_price), ("stop price", order.stop_price)):
            if price is None:
                continue
            deviation = abs(price - ref) / ref * 100.0
            if deviation > limit + 1e-9:
                return Reject(
                    self.name,
                    f"% deviation of the {label} {price:g} from the reference price {ref:g} "
                    "over the limit",
                    limit,
                    deviation,
                )
        return None


class MaxGrossExposure(RiskRule):
    """Caps the gross exposure, working orders included, in account currency.

    Σ |position value| with working orders counted as if they fill, plus the order. An order
    that does not add to it (one that reduces a position without flipping beyond it) passes."""

    class Params(Params):
        max_gross: float = Field(gt=0)
        """Largest gross exposure, including working orders and the order, in account currency."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        missing = _no_price(self, order, view)
        if missing is not None:
            return missing
        (before, _), (after, _) = view.exposure(order)
        if _adds(before, after) and _over(after, self.params.max_gross):
            return Reject(
                self.name, "gross exposure would exceed the limit", self.params.max_gross, after
            )
        return None


class MaxNetExposure(RiskRule):
    """Caps the absolute net exposure, working orders included, in account currency.

    |Σ signed position value| with every working buy (or every working sell) filling, plus the
    order. An order that does not add to it passes."""

    class Params(Params):
        max_net: float = Field(gt=0)
        """Largest absolute net exposure, including working orders and the order, in account
        currency."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        missing = _no_price(self, order, view)
        if missing is not None:
            return missing
        (_, before), (_, after) = view.exposure(order)
        if _adds(before, after) and _over(after, self.params.max_net):
            return Reject(
                self.name, "net exposure would exceed the limit", self.params.max_net, after
            )
        return None


class MaxLeverage(RiskRule):
    """Caps gross exposure after the order (working orders included) ÷ equity.

    With equity at or below zero, every order that adds exposure is refused."""

    class Params(Params):
        max_leverage: float = Field(gt=0)
        """Largest gross exposure as a multiple of equity (1 = unlevered)."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        missing = _no_price(self, order, view)
        if missing is not None:
            return missing
        (before, _), (after, _) = view.exposure(order)
        if not _adds(before, after):
            return None
        if not view.equity > 0:
            return Reject(
                self.name, "equity is not positive: no order may add exposure", 0.0, view.equity
            )
        leverage = after / view.equity
        if _over(leverage, self.params.max_leverage):
            return Reject(
                self.name, "leverage would exceed the limit", self.params.max_leverage, leverage
            )
        return None


class RestrictedInstruments(RiskRule):
    """Never opens or adds to a position in the listed symbols.

    With ``allow_reducing`` (the default) an order that only reduces a position passes: one
    against the position whose units, with the working orders on its side, do not take it
    beyond zero."""

    class Params(Params):
        symbols: list[str]
        """Symbols never to trade (an empty list restricts nothing)."""
        allow_reducing: bool = True
        """Let orders that reduce an existing position through (true), or refuse every order in
        a restricted symbol (false)."""

    def room(self, symbol: str, side: Side, view: RiskView) -> float | None:
        if symbol not in self.params.symbols:
            return None
        return view.reducing_room(symbol, side) if self.params.allow_reducing else 0.0

    def check(self, order: Order, view: RiskView) -> Reject | None:
        symbol = order.symbol
        if symbol not in self.params.symbols:
            return None
        if not self.params.allow_reducing:
            return Reject(
                self.name, f"{symbol} is restricted: units ordered (no orders allowed)",
                0.0, order.quantity,
            )  # fmt: skip
        added = max(0.0, order.quantity - view.reducing_room(symbol, order.side))
        if added > 1e-9:
            return Reject(
                self.name, f"{symbol} is restricted: units that would open or add to a position",
                0.0, added,
            )  # fmt: skip
        return None


_NS = 1_000_000_000
"""Nanoseconds per second."""


class MessageThrottle(RiskRule):
    """Caps the orders and replaces each strategy sends per second and/or per minute.

    Counts, per strategy, the messages it let through in the sliding window ending at
    ``view.ts`` (the last second: timestamps in ``(ts - 1 s, ts]``; likewise the last minute); a
    replace reaches the gate as the amended order and counts as one message. The message that
    would take a window over its limit is refused, and a refused message does not count. Cancels
    count too (``count_cancels``) and over the limit are refused like the rest: the venue's
    message limit does not care what the message is; the kill switch and halts cancel through a
    separate path that no rule can refuse. Place it last in the chain: a message a later rule
    refuses has already been counted here.

    Sustained excess (``halt_after`` refusals of one strategy within a minute) halts that
    strategy (``strategy:ID``, its working orders canceled) and raises an alert: a strategy
    that keeps hammering the limit is broken, not busy.

    State: per strategy, a deque of the timestamps of the messages it let through, dropped once
    older than the longest window (so at most the larger limit of them), and one of its recent
    refusals."""

    class Params(Params):
        max_per_second: int | None = Field(default=None, gt=0)
        """Most orders and replaces a strategy may send in any one-second window."""
        max_per_minute: int | None = Field(default=None, gt=0)
        """Most orders and replaces a strategy may send in any one-minute window."""
        count_cancels: bool = True
        """Count (and limit) cancels as messages too."""
        halt_after: int | None = Field(default=None, gt=0)
        """Refusals of one strategy within a minute that halt it (none: never halt)."""

        @model_validator(mode="after")
        def _one_limit(self) -> MessageThrottle.Params:
            if self.max_per_second is None and self.max_per_minute is None:
                raise ValueError("give max_per_second, max_per_minute or both")
            return self

    def __init__(self, params: Params | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        p = self.params
        self._windows = [
            (label, span, limit)
            for label, span, limit in (
                ("second", _NS, p.max_per_second),
                ("minute", 60 * _NS, p.max_per_minute),
            )
            if limit is not None
        ]
        self._span = max(span for _, span, _ in self._windows)
        self._sent: dict[str, _Times] = {}
        self._refused: dict[str, deque[int]] = {}

    def check_cancel(self, order: Order, view: RiskView) -> Reject | None:
        return self.check(order, view) if self.params.count_cancels else None

    def on_reject(self, order: Order, reject: Reject, control: RiskControl) -> None:
        limit = self.params.halt_after
        if limit is None:
            return
        sid = order.strategy_id
        refused = self._refused.setdefault(sid, deque())
        now = control.now
        while refused and refused[0] <= now - 60 * _NS:
            refused.popleft()
        refused.append(now)
        if len(refused) >= limit:
            refused.clear()
            control.halt(
                Scope("strategy", sid),
                f"sustained message-rate excess: {limit} refusals within a minute",
                rule=self.name, limit=limit, observed=limit,
            )  # fmt: skip

    def check(self, order: Order, view: RiskView) -> Reject | None:
        now = view.ts
        sent = self._sent.get(order.strategy_id)
        if sent is None:
            sent = self._sent[order.strategy_id] = _Times()
        sent.drop_before(now - self._span)
        for label, span, limit in self._windows:
            count = sent.count_after(now - span)
            if count >= limit:
                return Reject(
                    self.name,
                    f"messages from strategy {order.strategy_id} in the last {label} over the "
                    "limit",
                    limit,
                    count + 1,
                )
        sent.append(now)
        return None


class _Times:
    """Non-decreasing timestamps with a moving start: append, drop the old, count the recent
    (binary search: a count costs log n, not n)."""

    __slots__ = ("_head", "_ts")

    def __init__(self) -> None:
        self._ts: list[int] = []
        self._head = 0

    def append(self, ts: int) -> None:
        self._ts.append(ts)

    def drop_before(self, oldest: int) -> None:
        """Forget timestamps ``<= oldest``."""
        ts = self._ts
        self._head = bisect_right(ts, oldest, self._head)
        if self._head > 1024 and self._head * 2 > len(ts):  # compact now and then
            del ts[: self._head]
            self._head = 0

    def count_after(self, start: int) -> int:
        """How many timestamps are ``> start``."""
        return len(self._ts) - bisect_right(self._ts, start, self._head)


class DuplicateOrderGuard(RiskRule):
    """Refuses an order that repeats one the same strategy sent within ``window_seconds``.

    A repeat has the same symbol, side, quantity, type, limit price and stop price as an order
    with another client order id that the rule let through at most ``window_seconds`` before
    ``view.ts``. A replace (the same client order id as an earlier order) is not a duplicate of
    itself, and its amended terms are remembered as sent at its time, along with the terms it
    was first sent with. A reused client order id never reaches a fill: the engine stamps the
    ids, and the simulated broker refuses an order whose id it has seen
    (``duplicate client order id``).

    State: the terms of the orders it let through in the window, per strategy, with each one's
    client order id and time; dropped once older than the window."""

    class Params(Params):
        window_seconds: float = Field(gt=0)
        """How long after an order the same order from the same strategy is refused, in
        seconds."""

    def __init__(self, params: Params | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._window = round(self.params.window_seconds * _NS)
        self._recent: deque[tuple[int, tuple[Any, ...], str]] = deque()
        self._seen: dict[tuple[Any, ...], dict[str, int]] = {}
        """(strategy, terms) -> client order id -> when it was last let through."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        now = view.ts
        oldest = now - self._window
        recent, seen = self._recent, self._seen
        while recent and recent[0][0] < oldest:
            ts, key, coid = recent.popleft()
            ids = seen.get(key)
            if ids is not None and ids.get(coid) == ts:
                del ids[coid]
                if not ids:
                    del seen[key]
        key = (
            order.strategy_id, order.symbol, order.side, order.quantity, order.type,
            order.limit_price, order.stop_price,
        )  # fmt: skip
        ids = seen.get(key)
        coid = order.client_order_id
        if ids is not None:
            for other, ts in ids.items():
                if other != coid:
                    return Reject(
                        self.name,
                        f"same {order.type.value} {order.side.value} of {order.quantity:g} "
                        f"{order.symbol} as order {other}, sent {(now - ts) / _NS:g} s earlier "
                        f"(window {self.params.window_seconds:g} s)",
                    )
        else:
            ids = seen[key] = {}
        ids[coid] = now
        recent.append((now, key, coid))
        return None


class StaleDataGuard(RiskRule):
    """Refuses an order when the ordered symbol's latest bar is more than ``max_age_seconds``
    old at ``view.ts`` (``view.last_bar_ts``), or when there is no bar time for it (no bar yet,
    or an engine that does not provide bar times).

    In a multi-symbol run the clock moves on with the other symbols' bars, so a symbol that
    stopped trading goes stale while the others do not. Stateless."""

    class Params(Params):
        max_age_seconds: float = Field(ge=0)
        """Oldest the ordered symbol's latest bar may be, in seconds (its timestamp to now)."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        last = view.last_bar_ts.get(order.symbol)
        if last is None:
            return Reject(
                self.name, f"no bar time for {order.symbol}: the age of its data cannot be checked"
            )
        age = (view.ts - last) / _NS
        limit = self.params.max_age_seconds
        if age > limit + 1e-9:
            return Reject(
                self.name, f"latest bar of {order.symbol} too old: seconds since it over the limit",
                limit, age,
            )  # fmt: skip
        return None


class MaxVar(RiskRule):
    """Refuses an order that would take the portfolio's value at risk over a limit.

    The holdings after the order are the positions, every working order filled, and the order
    filled; their one-bar money P&L over the last ``window`` bars of closes the run has seen
    (:func:`tradeloom.risk.var.portfolio_returns`, in the account currency at today's rates)
    gives the VaR (historical or parametric, at ``confidence``, scaled by √``horizon``). An
    order that does not raise the VaR (its incremental VaR is not positive) always passes. With
    several symbols whose bars are not aligned, the histories are cut to the shortest and
    paired by position. Costs a VaR computation per order: keep it near the end of the chain.
    """

    class Params(Params):
        max_var: float | None = Field(default=None, gt=0)
        """Largest VaR after the order, in the account currency."""
        max_var_pct: float | None = Field(default=None, gt=0, lt=100)
        """Largest VaR after the order, in percent of equity."""
        method: Literal["historical", "parametric"] = "historical"
        """Historical (empirical quantile) or parametric (normal, variance–covariance)."""
        confidence: float = Field(default=0.99, gt=0.5, lt=1)
        """Confidence level, e.g. 0.99."""
        horizon: int = Field(default=1, gt=0)
        """Horizon in bars (the one-bar VaR × √horizon)."""
        window: int = Field(default=250, ge=20)
        """One-bar P&Ls in the estimate (window + 1 closes)."""
        min_observations: int = Field(default=20, ge=2)
        """Fewer one-bar P&Ls than this and the VaR cannot be estimated: orders that add
        exposure are refused."""

        @model_validator(mode="after")
        def _one_limit(self) -> MaxVar.Params:
            if self.max_var is None and self.max_var_pct is None:
                raise ValueError("give max_var, max_var_pct or both")
            if self.method == "historical":
                needed = math.ceil(1.0 / (1.0 - self.confidence) - 1e-9) + self.horizon - 1
                if self.window < needed:
                    raise ValueError(
                        f"window {self.window} holds too few one-bar P&Ls for a historical VaR "
                        f"at {self.confidence:g} over {self.horizon} bar(s): raise it to at "
                        f'least {needed}, or use method = "parametric"'
                    )
            return self

    def check(self, order: Order, view: RiskView) -> Reject | None:
        from tradeloom.risk.var import portfolio_var

        p = self.params
        before: dict[str, float] = {s: pos.quantity for s, pos in view.positions.items()}
        for o in view.open_orders:
            before[o.symbol] = before.get(o.symbol, 0.0) + o.remaining * o.side.sign
        after = dict(before)
        after[order.symbol] = after.get(order.symbol, 0.0) + order.quantity * order.side.sign
        held = [s for s, q in after.items() if q != 0.0]
        if not held:
            return None
        if view.bars is None:
            return Reject(self.name, "this engine gives no price history: VaR cannot be computed")
        closes = {s: np.asarray(view.bars(s, p.window + 1)[3], dtype=float) for s in held}
        n = min(len(c) for c in closes.values())
        needed = p.min_observations
        if p.method == "historical":  # the tail must hold at least one scenario
            needed = max(needed, math.ceil(1.0 / (1.0 - p.confidence) - 1e-9) + p.horizon - 1)
        if n - 1 < needed:
            if abs(after[order.symbol]) <= abs(before.get(order.symbol, 0.0)):
                return None  # reduces the position: passes without an estimate
            return Reject(
                self.name,
                f"only {max(n - 1, 0)} one-bar P&Ls seen; the {p.method} VaR at "
                f"{p.confidence:g} needs {needed}",
            )
        prices = {s: c[-n:] * view.rate(s) for s, c in closes.items()}
        kw: dict[str, Any] = {"method": p.method, "confidence": p.confidence, "horizon": p.horizon}
        var_after = portfolio_var(prices, {s: after[s] for s in held}, **kw).var
        if var_after <= 0.0:
            return None
        was = {s: before.get(s, 0.0) for s in held if before.get(s, 0.0) != 0.0}
        var_before = portfolio_var(prices, was, **kw).var if was else 0.0
        if var_after <= var_before + 1e-9 * max(1.0, var_before):
            return None
        if p.max_var is not None and _over(var_after, p.max_var):
            return Reject(
                self.name,
                f"{p.method} VaR ({p.confidence:g}, {p.horizon} bar(s)) would exceed the limit "
                f"(incremental VaR {number(var_after - var_before)})",
                p.max_var, var_after,
            )  # fmt: skip
        if p.max_var_pct is not None:
            if not view.equity > 0:
                return Reject(self.name, "equity is not positive: no order may add VaR",
                              0.0, view.equity)  # fmt: skip
            pct = var_after / view.equity * 100.0
            if _over(pct, p.max_var_pct):
                return Reject(
                    self.name,
                    f"{p.method} VaR ({p.confidence:g}, {p.horizon} bar(s)) in % of equity "
                    "would exceed the limit",
                    p.max_var_pct, pct,
                )  # fmt: skip
        return None

"""The Context: a strategy's only door to the world.

Through it a strategy reads the clock, the past of each symbol, its positions and account,
and places or cancels orders. It holds no broker object and no credentials. History comes
from buffers that the engine fills only up to the current bar, so a strategy cannot see a
future bar: not through the arrays it is given, nor through their ``.base``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from loguru import logger

from tradeloom.errors import RunError
from tradeloom.model import (
    AccountSnapshot,
    Order,
    OrderType,
    Position,
    Side,
    TimeInForce,
)

if TYPE_CHECKING:
    from tradeloom.engine.backtest import BacktestEngine

FIELDS = {"open": 0, "high": 1, "low": 2, "close": 3, "volume": 4}


class Context:
    """Handed to every strategy callback. One per strategy."""

    __slots__ = ("_engine", "log", "strategy_id")

    def __init__(self, engine: BacktestEngine, strategy_id: str) -> None:
        self._engine = engine
        self.strategy_id = strategy_id
        self.log = logger.bind(strategy=strategy_id)
        """A loguru logger bound to this strategy (silent unless the CLI enables logging)."""

    # --- time and market ------------------------------------------------------------------------
    @property
    def ts(self) -> int:
        """The current time as integer nanoseconds since the epoch (UTC)."""
        return self._engine.now

    @property
    def now(self) -> pd.Timestamp:
        """The current time (the timestamp of the bars being handled), UTC."""
        return pd.Timestamp(self._engine.now, tz="UTC")

    @property
    def symbols(self) -> list[str]:
        return list(self._engine.symbols)

    def bar_count(self, symbol: str) -> int:
        """How many bars of ``symbol`` have been seen so far, the current one included."""
        return self._engine.seen(symbol)

    def history(self, symbol: str, n: int | None = None, field: str = "close") -> np.ndarray:
        """The last ``n`` values of ``field`` (open/high/low/close/volume) up to and including
        the current bar, oldest first; all of them if ``n`` is None. A read-only array view;
        shorter than ``n`` early in the data."""
        try:
            row = FIELDS[field]
        except KeyError:
            raise RunError(
                f"history(): unknown field {field!r}; use one of {', '.join(FIELDS)}"
            ) from None
        return self._engine.history(symbol, row, n)

    def last_price(self, symbol: str) -> float:
        """The latest close of ``symbol``; NaN before its first bar."""
        return self._engine.last_price(symbol)

    def fx_rate(self, symbol: str) -> float:
        """Account-currency units per unit of the currency ``symbol`` is quoted in, now (1.0
        for a symbol quoted in the account currency): ``last_price(s) * fx_rate(s)`` is the
        price in the account currency, which ``cash`` and ``equity`` are in."""
        return self._engine.broker.ledger.rate(symbol)

    # --- sizing ---------------------------------------------------------------------------------
    def size_fixed_fractional(
        self, symbol: str, risk_fraction: float, stop: float, *, lot: float = 1.0
    ) -> float:
        """Units that lose ``risk_fraction`` of equity if the price goes from the latest close
        to ``stop``: ``equity × risk_fraction ÷ |close − stop|`` (in the account currency),
        rounded down to ``lot``; unsigned (a stop below the close sizes a long)."""
        from tradeloom.risk import sizing

        rate = self.fx_rate(symbol)
        entry = self.last_price(symbol)
        return self._sized(
            sizing.fixed_fractional, self.equity, risk_fraction, entry * rate, stop * rate, lot=lot
        )

    def size_atr(
        self,
        symbol: str,
        risk_fraction: float,
        *,
        atr_multiple: float = 2.0,
        window: int = 14,
        lot: float = 1.0,
    ) -> float:
        """Units that lose ``risk_fraction`` of equity over ``atr_multiple`` average true ranges:
        ``equity × risk ÷ (k × ATR)``. Wilder's ATR with period ``window``, over the last
        ``10 × window + 1`` bars (seeded at the start of that span, so the value does not
        depend on how much history came before)."""
        from tradeloom.risk import sizing

        span = 10 * window + 1
        bars = [self.history(symbol, span, field) for field in ("high", "low", "close")]
        value = self._sized(sizing.atr, *bars, window=window) * self.fx_rate(symbol)
        return self._sized(
            sizing.atr_target, self.equity, risk_fraction, value, atr_multiple, lot=lot
        )

    def size_volatility_target(
        self,
        symbol: str,
        target_vol: float,
        *,
        window: int = 60,
        periods_per_year: float = 252,
        lot: float = 1.0,
    ) -> float:
        """Units whose annualised volatility (standard deviation of the last ``window`` bar
        returns × √``periods_per_year``) is ``target_vol`` of equity."""
        from tradeloom.risk import sizing

        closes = self.history(symbol, window + 1)
        returns = closes[1:] / closes[:-1] - 1.0
        price = self.last_price(symbol) * self.fx_rate(symbol)
        return self._sized(
            sizing.volatility_target, self.equity, target_vol, price, returns,
            periods_per_year=periods_per_year, lot=lot,
        )  # fmt: skip

    def max_order_size(self, symbol: str, side: Side | str) -> float:
        """The largest market order in ``symbol`` on ``side`` (``"buy"``/``"sell"``) the risk
        gate's quantity limits (order quantity and notional at the latest close, position
        with working orders, restricted instruments) and trading states would accept now;
        ``inf`` when none applies. Cap a sized quantity with it:
        ``min(ctx.size_atr("X", 0.01), ctx.max_order_size("X", "buy"))``. The limits
        themselves stay with the runner; exposure, leverage, VaR and message rules can still
        refuse an order within this size."""
        engine = self._engine
        engine._index_of(symbol)  # an unknown symbol is a RunError naming the run's symbols
        side = Side(side) if isinstance(side, str) else side
        return engine.risk.room(self.strategy_id, symbol, side, engine.risk_view())

    @staticmethod
    def _sized(fn: Any, *args: Any, **kwargs: Any) -> float:
        try:
            return float(fn(*args, **kwargs))
        except (TypeError, ValueError) as exc:
            raise RunError(f"{fn.__name__}(): {exc}") from None

    # --- account --------------------------------------------------------------------------------
    def position(self, symbol: str) -> Position:
        return self._engine.broker.ledger.position(symbol)

    def quantity(self, symbol: str) -> float:
        """The signed quantity held in ``symbol`` (0 when flat): ``position(symbol).quantity``
        without building a Position."""
        return self._engine.broker.ledger.quantity(symbol)

    def positions(self) -> dict[str, Position]:
        """Non-flat positions of the account, by symbol."""
        return self._engine.broker.positions()

    @property
    def cash(self) -> float:
        return self._engine.broker.ledger.cash

    @property
    def buying_power(self) -> float:
        """Cash not already reserved by working buy orders of any strategy: what a new buy may
        spend without being rejected at submission."""
        return self._engine.broker.buying_power()

    @property
    def equity(self) -> float:
        """Cash plus positions marked at the latest closes."""
        return self._engine.broker.ledger.equity()

    def account(self) -> AccountSnapshot:
        return self._engine.broker.account()

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """This strategy's working orders (optionally for one symbol)."""
        sid = self.strategy_id
        return [o for o in self._engine.broker.open_orders(symbol) if o.strategy_id == sid]

    def get_order(self, client_order_id: str) -> Order | None:
        """The latest state of one of this strategy's orders."""
        order = self._engine.orders.get(client_order_id)
        return order if order is not None and order.strategy_id == self.strategy_id else None

    # --- orders ---------------------------------------------------------------------------------
    def order(
        self,
        symbol: str,
        quantity: float,
        *,
        limit: float | None = None,
        stop: float | None = None,
        trail_amount: float | None = None,
        trail_percent: float | None = None,
        tif: str | TimeInForce = TimeInForce.GTC,
        at: Literal["open", "close"] | None = None,
    ) -> Order:
        """Place an order for ``quantity`` units (positive buys, negative sells).

        The type follows from the prices given: market (none), limit, stop, stop-limit (both),
        or a trailing stop (``trail_amount`` in price, or ``trail_percent``: its level starts
        that far from the latest close and follows the best price since, never moving back).
        ``tif``: ``"gtc"`` (default), ``"day"``, ``"ioc"`` or ``"fok"``. ``at="open"``: a
        market-on-open order (the open of the next session's first bar); ``at="close"``: a
        market-on-close order (the close of a session's last bar). Returns the order in state
        PENDING; its acceptance or rejection arrives through ``on_order``.
        """
        # Kept flat: every order of every strategy passes here.
        if not (quantity == quantity and quantity != 0 and abs(quantity) != math.inf) or isinstance(
            quantity, bool | str
        ):
            raise RunError(f"order(): quantity must be a non-zero finite number, got {quantity!r}")
        side = Side.BUY if quantity > 0 else Side.SELL
        if type(tif) is not TimeInForce:
            tif = self._tif(tif)
        if at is not None:
            if limit is not None or stop is not None or trail_amount or trail_percent:
                raise RunError(f"order(): a market-on-{at} order takes no limit, stop or trail")
            if at not in ("open", "close"):
                raise RunError(f"order(): at must be 'open' or 'close', got {at!r}")
            kind = OrderType.MARKET_ON_OPEN if at == "open" else OrderType.MARKET_ON_CLOSE
            return self._engine.submit(
                self.strategy_id, symbol, side, abs(float(quantity)), kind, None, None, tif
            )
        if trail_amount is None and trail_percent is None:
            if limit is None:
                kind = OrderType.MARKET if stop is None else OrderType.STOP
            else:
                kind = OrderType.LIMIT if stop is None else OrderType.STOP_LIMIT
            return self._engine.submit(
                self.strategy_id, symbol, side, abs(float(quantity)), kind, limit, stop, tif
            )
        if limit is not None or stop is not None:
            raise RunError("order(): a trailing stop takes no limit or stop price")
        trail = {"trail_amount": trail_amount, "trail_percent": trail_percent}
        return self._engine.submit(
            self.strategy_id, symbol, side, abs(float(quantity)), OrderType.TRAILING_STOP,
            None, None, tif, {k: float(v) for k, v in trail.items() if v is not None},
        )  # fmt: skip

    def replace(
        self,
        order: Order | str,
        *,
        quantity: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
    ) -> None:
        """Amend one of this strategy's working orders (same client order id): a new quantity
        (units, positive) and/or a new limit or stop price. The amendment passes the risk gate
        like a new order; the result arrives through ``on_order`` as an update whose ``note``
        says what changed, or why the replace was refused (the order then stays as it was)."""
        coid = order if isinstance(order, str) else order.client_order_id
        changes: dict[str, float] = {}
        if quantity is not None:
            _, changes["quantity"] = self._side_and_size(quantity)
        if limit is not None:
            changes["limit_price"] = float(limit)
        if stop is not None:
            changes["stop_price"] = float(stop)
        if not changes:
            raise RunError("replace(): give a new quantity, limit or stop")
        self._engine.replace(self.strategy_id, coid, changes)

    def oco(
        self,
        symbol: str,
        quantity: float,
        *,
        limit: float,
        stop: float,
        tif: str | TimeInForce = TimeInForce.GTC,
    ) -> tuple[Order, Order]:
        """Two orders for ``quantity`` units that cancel each other: a limit at ``limit`` and a
        stop at ``stop`` (typically a take-profit and a stop-loss around a position). The first
        to fill cancels the other; if both could fill on one bar, the worse for the trader
        fills. If either is refused, the other is canceled."""
        side, size = self._side_and_size(quantity)
        common = {"symbol": symbol, "side": side, "quantity": size, "tif": self._tif(tif)}
        first, second = self._engine.submit_oco(
            self.strategy_id,
            [
                {**common, "kind": OrderType.LIMIT, "limit": limit, "stop": None},
                {**common, "kind": OrderType.STOP, "limit": None, "stop": stop},
            ],
        )
        return first, second

    def bracket(
        self,
        symbol: str,
        quantity: float,
        *,
        take_profit: float,
        stop_loss: float,
        limit: float | None = None,
        tif: str | TimeInForce = TimeInForce.GTC,
    ) -> tuple[Order, Order, Order]:
        """An entry (market, or limit at ``limit``) for ``quantity`` units with two exits that
        wait for it to fill: a take-profit limit and a stop-loss stop for the same quantity,
        one-cancels-other. Returns ``(entry, take_profit, stop_loss)``. The exits are canceled
        if the entry ends without filling. A long bracket needs ``stop_loss < take_profit``
        (and a limit between them), a short one the opposite."""
        side, size = self._side_and_size(quantity)
        low, high = (stop_loss, take_profit) if side is Side.BUY else (take_profit, stop_loss)
        prices_ok = 0 < low < high and (limit is None or low < limit < high)
        if not prices_ok:
            names = (
                ["stop_loss", "take_profit"] if side is Side.BUY else ["take_profit", "stop_loss"]
            )
            if limit is not None:
                names.insert(1, "limit")
            raise RunError(
                f"bracket(): a {'long' if side is Side.BUY else 'short'} bracket needs "
                f"{' < '.join(names)}; got take_profit={take_profit!r}, stop_loss={stop_loss!r}, "
                f"limit={limit!r}"
            )
        entry = {
            "symbol": symbol, "side": side, "quantity": size, "tif": self._tif(tif),
            "kind": OrderType.MARKET if limit is None else OrderType.LIMIT,
            "limit": limit, "stop": None,
        }  # fmt: skip
        return self._engine.submit_bracket(self.strategy_id, entry, take_profit, stop_loss)

    @staticmethod
    def _side_and_size(quantity: float) -> tuple[Side, float]:
        if not (quantity == quantity and quantity != 0 and abs(quantity) != math.inf) or isinstance(
            quantity, bool | str
        ):
            raise RunError(f"order(): quantity must be a non-zero finite number, got {quantity!r}")
        return (Side.BUY if quantity > 0 else Side.SELL), abs(float(quantity))

    @staticmethod
    def _tif(tif: str | TimeInForce) -> TimeInForce:
        if type(tif) is TimeInForce:
            return tif
        try:
            return TimeInForce(tif)
        except ValueError:
            choices = ", ".join(t.value for t in TimeInForce)
            raise RunError(f"order(): unknown tif {tif!r}; use one of {choices}") from None

    def buy(self, symbol: str, quantity: float, **kwargs: Any) -> Order:
        return self.order(symbol, abs(quantity), **kwargs)

    def sell(self, symbol: str, quantity: float, **kwargs: Any) -> Order:
        return self.order(symbol, -abs(quantity), **kwargs)

    def order_target(self, symbol: str, target: float, **kwargs: Any) -> Order | None:
        """Order whatever brings the position, plus this strategy's working orders in
        ``symbol``, to ``target`` units. Returns ``None`` when nothing needs to change."""
        current = self._engine.broker.ledger.quantity(symbol)
        for o in self.open_orders(symbol):
            current += o.remaining * o.side.sign
        delta = target - current
        if abs(delta) <= 1e-9:
            return None
        return self.order(symbol, delta, **kwargs)

    def order_target_percent(
        self, symbol: str, fraction: float, *, whole_units: bool = True, **kwargs: Any
    ) -> Order | None:
        """Target a position worth ``fraction`` of equity at the latest close (negative: short).
        Quantities are rounded down to whole units unless ``whole_units=False``."""
        price = self.last_price(symbol)
        if not (price > 0):
            raise RunError(f"order_target_percent(): no price yet for {symbol}")
        qty = fraction * self.equity / (price * self.fx_rate(symbol))
        if whole_units:
            qty = math.floor(abs(qty)) * (1 if qty >= 0 else -1)
        return self.order_target(symbol, qty, **kwargs)

    def cancel(self, order: Order | str) -> None:
        """Ask to cancel one of this strategy's working orders (by order or client order id)."""
        coid = order if isinstance(order, str) else order.client_order_id
        own = self.get_order(coid)
        if own is None:
            raise RunError(f"cancel(): no order {coid!r} of strategy {self.strategy_id!r}")
        self._engine.cancel(coid)

    def __repr__(self) -> str:
        return f"<Context strategy={self.strategy_id!r} now={self.now}>"

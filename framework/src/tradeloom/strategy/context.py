"""The Context: a strategy's only door to the world.

Through it a strategy reads the clock, the past of each symbol, its positions and account,
and places or cancels orders. It holds no broker object and no credentials. History comes
from buffers that the engine fills only up to the current bar, so a strategy cannot see a
future bar: not through the arrays it is given, nor through their ``.base``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

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
        tif: str | TimeInForce = TimeInForce.GTC,
    ) -> Order:
        """Place an order for ``quantity`` units (positive buys, negative sells).

        The type follows from the prices given: market (neither), limit, stop, or stop-limit
        (both). Returns the order in state PENDING; its acceptance or rejection arrives through
        ``on_order``.
        """
        if not (quantity == quantity and quantity != 0 and abs(quantity) != math.inf) or isinstance(
            quantity, bool | str
        ):
            raise RunError(f"order(): quantity must be a non-zero finite number, got {quantity!r}")
        if limit is not None and stop is not None:
            kind = OrderType.STOP_LIMIT
        elif limit is not None:
            kind = OrderType.LIMIT
        elif stop is not None:
            kind = OrderType.STOP
        else:
            kind = OrderType.MARKET
        side = Side.BUY if quantity > 0 else Side.SELL
        if type(tif) is not TimeInForce:
            tif = TimeInForce(tif)
        return self._engine.submit(
            self.strategy_id, symbol, side, abs(float(quantity)), kind, limit, stop, tif
        )

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
        qty = fraction * self.equity / price
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

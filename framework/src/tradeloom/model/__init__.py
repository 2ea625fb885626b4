"""Immutable domain types shared by every engine, broker and plugin."""

from tradeloom.model.bar import Bar
from tradeloom.model.instrument import Instrument
from tradeloom.model.orders import (
    Fill,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    TimeInForce,
)
from tradeloom.model.portfolio import AccountSnapshot, Position

__all__ = [
    "AccountSnapshot",
    "Bar",
    "Fill",
    "Instrument",
    "Order",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "Position",
    "Side",
    "TimeInForce",
]

"""The broker contract shared by the simulated broker and real venues."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from tradeloom.components import Capabilities, Component, Mode
from tradeloom.model import AccountSnapshot, Fill, Order, OrderUpdate, Position

BrokerEvent = OrderUpdate | Fill


class MarketView(Protocol):
    """What a simulated venue reads from the engine that drives it (kept current by the
    engine, so nothing is copied per bar)."""

    now: int
    """The current time, integer nanoseconds since the epoch (UTC)."""
    prices: Mapping[str, float]
    """Latest close by symbol; symbols without a bar yet are absent."""

    def bar_index(self, symbol: str) -> int:
        """How many bars of ``symbol`` came before the current one (-1 before its first)."""
        ...


class Broker(Component):
    """Executes orders and keeps the account.

    Semantics every broker honours (in backtest exactly as live): :meth:`submit` never blocks
    and never returns a fill; acceptance, rejection, fills and expiries are queued as events and
    collected with :meth:`drain`. Orders are identified by their client order id.
    """

    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST}))

    def start(
        self,
        *,
        initial_cash: float,
        currency: str,
        symbols: list[str],
        market: MarketView | None = None,
    ) -> None:
        """Prepare the account before the first bar; ``market`` is the engine's live view."""

    def submit(self, order: Order) -> None:
        """Send a PENDING order; its acceptance or rejection arrives as an event."""
        raise NotImplementedError

    def cancel(self, client_order_id: str, reason: str = "canceled by strategy") -> None:
        """Ask to cancel a working order; the cancellation arrives as an event."""
        raise NotImplementedError

    def replace(self, order: Order) -> None:
        """Amend a working order in place (same client order id) to ``order``'s quantity and
        prices; the amendment, or its refusal, arrives as an :class:`OrderUpdate` with a
        ``note``."""
        raise NotImplementedError

    def hold(self, order: Order) -> None:
        """Accept a bracket exit (``order.parent_id`` set) in state HELD; it becomes working
        when its entry fills and is canceled if the entry ends without a fill."""
        raise NotImplementedError

    def get_order(self, client_order_id: str) -> Order | None:
        raise NotImplementedError

    def open_orders(self) -> list[Order]:
        raise NotImplementedError

    def positions(self) -> dict[str, Position]:
        raise NotImplementedError

    def account(self) -> AccountSnapshot:
        raise NotImplementedError

    def drain(self) -> list[BrokerEvent]:
        """Events since the previous call, in the order they happened."""
        raise NotImplementedError

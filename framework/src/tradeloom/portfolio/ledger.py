"""The ledger: cash, positions on an average-cost basis, realised PnL and closed trades.

Invariants (checked by property tests):

* a position's quantity is the signed sum of its fills;
* ``equity == cash + Σ quantity × last price``;
* ``equity == initial cash + realised gross PnL + unrealised PnL − fees paid``.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from tradeloom.model import Fill, Position

QTY_EPSILON = 1e-9


@dataclass(slots=True)
class _Book:
    """Mutable per-symbol state; only the ledger touches it."""

    quantity: float = 0.0
    avg_price: float = 0.0
    realized: float = 0.0
    entry_ts: int = 0
    entry_bar: int = 0
    entry_fees: float = 0.0
    """Fees paid to open the part of the position still held."""
    avg_cost: float = 0.0
    """Average entry price in the account currency (``avg_price`` times the exchange rate of
    each fill); equal to ``avg_price`` for an instrument quoted in the account currency."""
    strategy_id: str = ""


@dataclass(frozen=True, slots=True)
class Trade:
    """A closed (part of a) position."""

    symbol: str
    side: str  # "long" or "short"
    quantity: float
    entry_ts: int
    entry_price: float
    exit_ts: int
    exit_price: float
    pnl: float
    fees: float
    bars_held: int
    strategy_id: str

    @property
    def return_pct(self) -> float:
        cost = self.entry_price * self.quantity
        return self.pnl / cost if cost else 0.0


@dataclass(frozen=True, slots=True)
class CashFlow:
    """Cash booked outside trades."""

    ts: int
    kind: str
    """``"dividend"``, ``"dividend reinvested"``, ``"borrow fee"``, ``"interest"``, ..."""
    symbol: str
    amount: float
    """Positive: cash received; negative: cash paid."""


class Ledger:
    """Account state of one simulated account, in its currency."""

    def __init__(
        self,
        initial_cash: float,
        currency: str = "USD",
        prices: Mapping[str, float] | MutableMapping[str, float] | None = None,
    ) -> None:
        self.initial_cash = float(initial_cash)
        self.currency = currency
        self.cash = float(initial_cash)
        self.fees_paid = 0.0
        self.books: dict[str, _Book] = {}
        self.last_price: Mapping[str, float] = {} if prices is None else prices
        """Latest prices by symbol: a dict fed by :meth:`mark`, or a live view the engine
        keeps current (then nothing is copied per bar)."""
        self.rates: Mapping[str, float] = {}
        """Account-currency units per unit of each symbol's quote currency, now (a live view
        set by the engine); a symbol not in it is quoted in the account currency."""
        self.trades: list[Trade] = []
        self.journal: list[tuple[int, float, str, float]] = []
        """``(ts, cash after, symbol, position after)`` for every fill, split and cash flow, in
        order (``symbol`` is ``""`` for a cash flow that moves no position): enough to rebuild
        the cash and position series after a run without recording anything per bar."""
        self.cash_flows: list[CashFlow] = []
        """Cash in or out that is not a trade: dividends, borrow fees, interest."""

    # --- reading -----------------------------------------------------------------------------
    def position(self, symbol: str) -> Position:
        book = self.books.get(symbol)
        if book is None:
            return Position(symbol)
        return Position(symbol, book.quantity, book.avg_price, book.realized)

    def positions(self) -> dict[str, Position]:
        return {s: self.position(s) for s, b in self.books.items() if b.quantity != 0.0}

    def quantity(self, symbol: str) -> float:
        book = self.books.get(symbol)
        return book.quantity if book is not None else 0.0

    def rate(self, symbol: str) -> float:
        """Account-currency units per unit of ``symbol``'s quote currency, now."""
        rates = self.rates
        return rates.get(symbol, 1.0) if rates else 1.0

    def position_value(self) -> float:
        """Σ quantity × latest price, in the account currency."""
        last = self.last_price
        if not self.rates:  # every symbol in the account currency
            return sum(b.quantity * last.get(s, b.avg_price) for s, b in self.books.items())
        rate = self.rate
        return sum(b.quantity * last.get(s, b.avg_price) * rate(s) for s, b in self.books.items())

    def gross_exposure(self) -> float:
        last = self.last_price
        if not self.rates:
            return sum(abs(b.quantity) * last.get(s, b.avg_price) for s, b in self.books.items())
        rate = self.rate
        return sum(
            abs(b.quantity) * last.get(s, b.avg_price) * rate(s) for s, b in self.books.items()
        )

    def equity(self) -> float:
        return self.cash + self.position_value()

    def cash_now(self) -> float:
        return self.cash

    def quantities(self) -> dict[str, float]:
        """Symbol -> units held, for the symbols held (no Position objects: cheap)."""
        return {s: b.quantity for s, b in self.books.items() if b.quantity != 0.0}

    def realized_pnl(self) -> float:
        return sum(b.realized for b in self.books.values())

    def unrealized_pnl(self) -> float:
        last, rate = self.last_price, self.rate
        return sum(
            (last.get(s, b.avg_price) * rate(s) - b.avg_cost) * b.quantity
            for s, b in self.books.items()
        )

    def income(self) -> float:
        """Net cash flows that are not trades (dividends, interest, borrow fees)."""
        return sum(flow.amount for flow in self.cash_flows)

    # --- writing -----------------------------------------------------------------------------
    def cash_flow(self, ts: int, amount: float, kind: str, symbol: str = "") -> None:
        """Book ``amount`` of cash (positive in, negative out) that is not a trade: a dividend,
        a borrow fee, interest. ``kind`` names it in the results."""
        self.cash += amount
        self.cash_flows.append(CashFlow(ts, kind, symbol, amount))
        self.journal.append((ts, self.cash, "", 0.0))

    def split(self, ts: int, symbol: str, ratio: float) -> None:
        """Apply a split of ``ratio`` new shares per old share: the position is multiplied by
        it and its average price divided, so its cost and value do not change."""
        book = self.books.get(symbol)
        if book is None or book.quantity == 0.0:
            return
        book.quantity *= ratio
        book.avg_price /= ratio
        book.avg_cost /= ratio
        self.journal.append((ts, self.cash, symbol, book.quantity))

    def reinvest(self, ts: int, symbol: str, amount: float, price: float) -> None:
        """Buy ``amount / price`` more units of ``symbol`` with a dividend of ``amount`` already
        booked as cash (no fee; fractional units), at ``price``."""
        book = self.books.get(symbol)
        if book is None or book.quantity == 0.0 or not price > 0:
            return
        cost = price * self.rate(symbol)
        units = amount / cost
        held = book.quantity
        book.avg_price = (book.avg_price * abs(held) + price * abs(units)) / abs(held + units)
        book.avg_cost = (book.avg_cost * abs(held) + cost * abs(units)) / abs(held + units)
        book.quantity = held + units
        self.cash -= amount
        self.cash_flows.append(CashFlow(ts, "dividend reinvested", symbol, -amount))
        self.journal.append((ts, self.cash, symbol, book.quantity))

    def mark(self, symbol: str, price: float) -> None:
        """Record the latest price of ``symbol`` (only when the ledger owns its price dict)."""
        self.last_price[symbol] = price  # type: ignore[index]

    def apply_fill(self, fill: Fill, bar_index: int = 0) -> None:
        """Book one fill: cash, fees, position, realised PnL and any trade it closes."""
        qty = fill.quantity
        sign = fill.side.sign
        rate = self.rates.get(fill.symbol, 1.0) if self.rates else 1.0
        cost = fill.price * rate  # per unit, in the account currency
        self.cash -= sign * qty * cost + fill.fee
        self.fees_paid += fill.fee
        book = self.books.get(fill.symbol)
        if book is None:
            book = self.books[fill.symbol] = _Book(strategy_id=fill.strategy_id)

        held = book.quantity
        if held == 0.0 or (held > 0) == (sign > 0):
            self._open(book, fill, qty, fill.fee, bar_index, cost)
            self.journal.append((fill.ts, self.cash, fill.symbol, book.quantity))
            return
        closing = min(qty, abs(held))
        exit_fee = fill.fee * closing / qty
        entry_fee = book.entry_fees * closing / abs(held)
        direction = 1.0 if held > 0 else -1.0
        gross = (cost - book.avg_cost) * closing * direction
        book.realized += gross
        book.entry_fees -= entry_fee
        self.trades.append(
            Trade(
                symbol=fill.symbol,
                side="long" if held > 0 else "short",
                quantity=closing,
                entry_ts=book.entry_ts,
                entry_price=book.avg_price,
                exit_ts=fill.ts,
                exit_price=fill.price,
                pnl=gross - entry_fee - exit_fee,
                fees=entry_fee + exit_fee,
                bars_held=bar_index - book.entry_bar,
                strategy_id=book.strategy_id,
            )
        )
        remaining = held + sign * closing
        if abs(remaining) <= QTY_EPSILON:
            book.quantity = 0.0
            book.avg_price = 0.0
            book.avg_cost = 0.0
            book.entry_fees = 0.0
        else:
            book.quantity = remaining
        left = qty - closing
        if left > QTY_EPSILON:  # the fill flips the position
            self._open(book, fill, left, fill.fee - exit_fee, bar_index, cost)
        self.journal.append((fill.ts, self.cash, fill.symbol, book.quantity))

    def _open(
        self, book: _Book, fill: Fill, qty: float, fee: float, bar_index: int, cost: float
    ) -> None:
        held = abs(book.quantity)
        if held == 0.0:
            book.entry_ts = fill.ts
            book.entry_bar = bar_index
            book.strategy_id = fill.strategy_id
            book.avg_price = fill.price
            book.avg_cost = cost
        else:
            book.avg_price = (book.avg_price * held + fill.price * qty) / (held + qty)
            book.avg_cost = (book.avg_cost * held + cost * qty) / (held + qty)
        book.quantity += fill.side.sign * qty
        book.entry_fees += fee

"""The risk-rule contract and the gate that chains the rules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tradeloom.components import Capabilities, Component, Mode
from tradeloom.model import Bar, Fill, Order, Position, Side

if TYPE_CHECKING:
    from tradeloom.risk.control import RiskControl


@dataclass(frozen=True, slots=True)
class Reject:
    """A rule's refusal: which rule, why, the limit and the observed value."""

    rule: str
    reason: str
    limit: float | None = None
    observed: float | None = None

    def message(self) -> str:
        detail = ""
        if self.limit is not None and self.observed is not None:
            detail = f" (limit {number(self.limit)}, observed {number(self.observed)})"
        return f"risk rule {self.rule}: {self.reason}{detail}"


def number(x: float) -> str:
    """A limit or an observed value for people: ``1,250,000`` rather than ``1.25e+06``, up to
    six significant digits below 10,000."""
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if abs(x) >= 10_000:
        return f"{x:,.2f}".rstrip("0").rstrip(".")
    return f"{x:.6g}"


@dataclass(frozen=True, slots=True)
class RiskView:
    """A read-only snapshot of the account that rules decide on."""

    ts: int
    cash: float
    equity: float
    positions: Mapping[str, Position]
    open_orders: Sequence[Order]
    last_prices: Mapping[str, float]
    """The reference price of each symbol: its latest close, in the symbol's quote currency."""
    rates: Mapping[str, float] = field(default_factory=dict)
    """Account-currency units per unit of each symbol's quote currency, now; a symbol not in it
    (every symbol when it is empty) is quoted in the account currency (rate 1.0)."""
    strategy_qty: Callable[[str, str], float] | None = None
    """``strategy_qty(strategy_id, symbol)``: the net units that strategy's fills left in the
    symbol (the account's positions are shared by every strategy); ``None`` when the engine
    does not attribute positions."""
    bars: Callable[[str, int], Any] | None = None
    """``bars(symbol, n)``: the last ``n`` bars of ``symbol`` seen so far, a ``(5, m)`` array
    (rows open, high, low, close, volume; ``m <= n``); ``None`` when the engine gives no
    history (rules that need it then refuse with a reason)."""
    last_bar_ts: Mapping[str, int] = field(default_factory=dict)
    """The timestamp (ns since epoch) of each symbol's latest bar at ``ts``; a symbol without a
    bar yet is not in it. Empty when the engine does not provide it. The backtest engine fills
    it lazily (:class:`LazyMapping`): read it during ``check``, not later."""

    def rate(self, symbol: str) -> float:
        """Account-currency units per unit of ``symbol``'s quote currency."""
        rates = self.rates
        return rates.get(symbol, 1.0) if rates else 1.0

    def position_qty(self, symbol: str) -> float:
        pos = self.positions.get(symbol)
        return pos.quantity if pos is not None else 0.0

    def strategy_position(self, strategy_id: str, symbol: str) -> float:
        """Net units of ``symbol`` bought minus sold by ``strategy_id`` (the account's position
        when positions are not attributed)."""
        if self.strategy_qty is None:
            return self.position_qty(symbol)
        return self.strategy_qty(strategy_id, symbol)

    def reducing_room(self, symbol: str, side: Side) -> float:
        """Units of an order on ``side`` that would still be risk-reducing (see
        :meth:`reduces`)."""
        sign = side.sign
        held = self.position_qty(symbol) * sign
        if held >= 0:
            return 0.0
        return max(0.0, -held - abs(self.working_qty(symbol, sign)))

    def reduces(self, order: Order) -> bool:
        """Is ``order`` risk-reducing: against the position, and its units together with the
        working orders on its side no more than the position (it cannot open or flip one)?"""
        sign = order.side.sign
        held = self.position_qty(order.symbol) * sign  # negative: the order is against it
        if held >= 0:
            return False
        room = -held - abs(self.working_qty(order.symbol, sign))
        return order.quantity <= room + 1e-9 * max(1.0, -held)

    def working_qty(self, symbol: str, side_sign: int) -> float:
        """Signed remaining quantity of working orders in ``symbol`` on one side
        (``side_sign`` +1 buy, -1 sell)."""
        return sum(
            o.remaining * o.side.sign
            for o in self.open_orders
            if o.symbol == symbol and o.side.sign == side_sign
        )

    def reach(self, order: Order | None = None) -> dict[str, tuple[float, float]]:
        """For each symbol held or with working orders (and ``order``'s, if given, counted as one
        more working order): ``(low, high)``, the lowest and highest position it can reach if its
        working orders fill (position - working sells, position + working buys)."""
        reach = {s: [p.quantity, p.quantity] for s, p in self.positions.items()}
        orders = self.open_orders if order is None else [*self.open_orders, order]
        for o in orders:
            r = reach.get(o.symbol)
            if r is None:
                r = reach[o.symbol] = [0.0, 0.0]
            if o.side is Side.BUY:
                r[1] += o.remaining
            else:
                r[0] -= o.remaining
        return {s: (lo, hi) for s, (lo, hi) in reach.items()}

    def unit_value(self, symbol: str, order: Order | None = None) -> float | None:
        """One unit of ``symbol`` in the account currency: the reference price (latest close),
        else the position's average price, else the limit or stop price of a working order (or
        of ``order``) in it, times the rate; ``None`` when there is no price at all."""
        price = self.last_prices.get(symbol)
        if price is None:
            pos = self.positions.get(symbol)
            if pos is not None and pos.avg_price > 0:
                price = pos.avg_price
            else:
                orders = self.open_orders if order is None else [*self.open_orders, order]
                price = next(
                    (
                        o.limit_price or o.stop_price
                        for o in orders
                        if o.symbol == symbol and (o.limit_price or o.stop_price)
                    ),
                    None,
                )
                if price is None:
                    return None
        return price * self.rate(symbol)

    def gross_exposure(self, order: Order | None = None) -> float:
        """The worst-case gross exposure in the account currency, counting working orders (and
        ``order`` if given): sum over symbols of ``max(|low|, |high|) × unit value`` (see
        :meth:`reach`); a symbol with no price at all counts 0."""
        total = 0.0
        for symbol, (lo, hi) in self.reach(order).items():
            value = self.unit_value(symbol, order)
            if value is not None:
                total += max(abs(lo), abs(hi)) * value
        return total

    def net_exposure(self, order: Order | None = None) -> float:
        """The worst-case absolute net exposure in the account currency, counting working orders
        (and ``order`` if given): ``max(|Σ low × value|, |Σ high × value|)``, every
        symbol's working buys filling or every symbol's working sells filling."""
        low = high = 0.0
        for symbol, (lo, hi) in self.reach(order).items():
            value = self.unit_value(symbol, order)
            if value is not None:
                low += lo * value
                high += hi * value
        return max(abs(low), abs(high))


class LazyMapping(Mapping[str, int]):
    """A read-only mapping whose values are computed when asked for: ``get(key)`` returns the
    value, or ``None`` for a key that has none (it is then not in the mapping). For views that
    are built per order but whose fields are rarely read."""

    __slots__ = ("_get", "_keys")

    def __init__(self, keys: Iterable[str], get: Callable[[str], int | None]) -> None:
        self._keys = keys
        self._get = get

    def __getitem__(self, key: str) -> int:
        value = self._get(key) if key in self._keys else None
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._keys if self._get(k) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class RiskRule(Component):
    """A pre-trade rule. ``check`` returns ``None`` to accept or a :class:`Reject`.

    The optional methods let a rule also watch what happens and act through the
    :class:`~tradeloom.risk.control.RiskControl` it is given (halt a scope, send a protective
    exit, raise an alert). The control calls only the methods a rule overrides."""

    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST, Mode.PAPER, Mode.LIVE}))
    name: str = ""
    """Set by the runner to the registered name, for reject messages."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        raise NotImplementedError

    def check_cancel(self, order: Order, view: RiskView) -> Reject | None:
        """A strategy's cancel of ``order``; refuse only to protect the venue (message rate)."""
        return None

    def room(self, symbol: str, side: Side, view: RiskView) -> float | None:
        """The largest quantity of a market order in ``symbol`` on ``side`` this rule would
        accept now (``None``: it sets no quantity limit). Lets the runner answer a strategy's
        ``ctx.max_order_size`` without showing it the rules."""
        return None

    def on_reject(self, order: Order, reject: Reject, control: RiskControl) -> None:
        """This rule's ``reject`` of ``order`` was recorded."""

    def on_fill(self, fill: Fill, control: RiskControl) -> None:
        """An execution was booked (every strategy's and the runner's exits)."""

    def on_equity(self, ts: int, equity: float, control: RiskControl) -> None:
        """The account's equity after the bars at ``ts`` (monitors of loss and drawdown)."""

    def on_bar(self, bar: Bar, control: RiskControl) -> None:
        """A bar closed, after the strategies saw it (protective exits)."""


class RiskMonitor(RiskRule):
    """A rule that only watches (fills, equity, bars) and never checks orders itself; its
    actions go through the control, whose trading states the gate enforces."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        return None


class RiskGate:
    """The ordered chain of rules every order passes before it reaches a broker; a reject wins."""

    def __init__(self, rules: Sequence[RiskRule]) -> None:
        self._rules = tuple(rules)

    @property
    def rules(self) -> tuple[RiskRule, ...]:
        return self._rules

    def __len__(self) -> int:
        return len(self._rules)

    def check(self, order: Order, view: RiskView) -> Reject | None:
        for rule in self._rules:
            verdict = rule.check(order, view)
            if verdict is not None:
                return verdict
        return None

"""The risk-rule contract and the gate that chains the rules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
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


class Lazy:
    """A value a :class:`RiskView` computes the first time a rule reads it (the engine passes
    ``Lazy(ledger.equity)``: a view is built per order, most fields are rarely read)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn


class RiskView:
    """A read-only snapshot of the account that rules decide on.

    Fields:

    * ``ts``: now (ns since epoch);
    * ``cash``, ``equity``: in the account currency;
    * ``positions``: symbol -> :class:`Position`;
    * ``open_orders``: the working orders;
    * ``last_prices``: the reference price of each symbol — its latest close, in the symbol's
      quote currency;
    * ``rates``: account-currency units per unit of each symbol's quote currency, now; a symbol
      not in it (every symbol when it is empty) is quoted in the account currency (rate 1.0);
    * ``strategy_qty(strategy_id, symbol)``: the net units that strategy's fills left in the
      symbol (the account's positions are shared by every strategy); ``None`` when the engine
      does not attribute positions;
    * ``bars(symbol, n)``: the last ``n`` bars of ``symbol`` seen so far, a ``(5, m)`` array
      (rows open, high, low, close, volume; ``m <= n``); ``None`` when the engine gives no
      history (rules that need it then refuse with a reason);
    * ``last_bar_ts``: the timestamp of each symbol's latest bar at ``ts``; a symbol without a
      bar yet is not in it; empty when the engine does not provide it.

    The engine passes some fields as :class:`Lazy` values or live mappings, computed when read:
    read them during ``check``, not later. Exposure figures (:meth:`reach`,
    :meth:`gross_exposure`, :meth:`net_exposure`) are computed once per view and order and
    shared by every rule that asks.
    """

    __slots__ = (
        "_bars", "_cash", "_equity", "_last_bar_ts", "_last_prices", "_memo", "_positions",
        "_quantities", "open_orders", "rates", "strategy_qty", "ts",
    )  # fmt: skip

    def __init__(
        self,
        ts: int,
        cash: float | Lazy,
        equity: float | Lazy | None,
        positions: Mapping[str, Position] | Lazy,
        open_orders: Sequence[Order],
        last_prices: Mapping[str, float] | Lazy,
        rates: Mapping[str, float] | None = None,
        strategy_qty: Callable[[str, str], float] | None = None,
        bars: Callable[[str, int], Any] | None = None,
        last_bar_ts: Mapping[str, int] | None = None,
        quantities: Mapping[str, float] | Lazy | None = None,
    ) -> None:
        """``quantities``: symbol -> units held, when the engine has it cheaper than
        ``positions`` (default: read from ``positions``)."""
        self.ts = ts
        self._quantities = quantities
        self._cash = cash
        self._equity = equity
        self._positions = positions
        self.open_orders = open_orders
        self._last_prices = last_prices
        self.rates = {} if rates is None else rates
        self.strategy_qty = strategy_qty
        self._bars = bars
        self._last_bar_ts = {} if last_bar_ts is None else last_bar_ts
        self._memo: dict[Any, Any] = {}

    def _get(self, name: str) -> Any:
        value = getattr(self, name)
        if type(value) is Lazy:
            value = value.fn()
            setattr(self, name, value)
        return value

    @property
    def cash(self) -> float:
        return self._get("_cash")

    @property
    def equity(self) -> float:
        """Cash plus the positions at their unit values (:meth:`unit_value`), unless the engine
        gave it."""
        if self._equity is None:
            held = 0.0
            for symbol, q in self.quantities.items():
                value = self.unit_value(symbol)
                if value is not None:
                    held += q * value
            self._equity = self.cash + held
        return self._get("_equity")

    @property
    def positions(self) -> Mapping[str, Position]:
        return self._get("_positions")

    @property
    def last_prices(self) -> Mapping[str, float]:
        return self._get("_last_prices")

    @property
    def bars(self) -> Callable[[str, int], Any] | None:
        return self._bars

    @property
    def last_bar_ts(self) -> Mapping[str, int]:
        return self._last_bar_ts

    def __repr__(self) -> str:
        return f"RiskView(ts={self.ts}, open_orders={len(self.open_orders)})"

    def rate(self, symbol: str) -> float:
        """Account-currency units per unit of ``symbol``'s quote currency."""
        rates = self.rates
        return rates.get(symbol, 1.0) if rates else 1.0

    @property
    def quantities(self) -> Mapping[str, float]:
        """Symbol -> units held (signed), for the symbols held."""
        if self._quantities is None:
            self._quantities = {s: p.quantity for s, p in self.positions.items() if p.quantity}
        return self._get("_quantities")

    def position_qty(self, symbol: str) -> float:
        return self.quantities.get(symbol, 0.0)

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
        buys, sells = self._working().get(symbol, (0.0, 0.0))
        return buys if side_sign > 0 else -sells

    def _working(self) -> dict[str, tuple[float, float]]:
        """Symbol -> (units of working buys, units of working sells), computed once."""
        hit = self._memo.get("working")
        if hit is not None:
            return hit
        working: dict[str, list[float]] = {}
        for o in self.open_orders:
            w = working.get(o.symbol)
            if w is None:
                w = working[o.symbol] = [0.0, 0.0]
            w[0 if o.side is Side.BUY else 1] += o.remaining
        out = {s: (b, x) for s, (b, x) in working.items()}
        self._memo["working"] = out
        return out

    def _memoized(self, kind: str, order: Order | None, fn: Callable[[Any], Any]) -> Any:
        """``fn(order)``, computed once per view and order (the order is kept with the value,
        so a recycled ``id`` cannot return another order's figure)."""
        key = (kind, id(order))
        hit = self._memo.get(key)
        if hit is not None and hit[0] is order:
            return hit[1]
        value = fn(order)
        self._memo[key] = (order, value)
        return value

    def reach(self, order: Order | None = None) -> dict[str, tuple[float, float]]:
        """For each symbol held or with working orders (and ``order``'s, if given, counted as one
        more working order): ``(low, high)``, the lowest and highest position it can reach if its
        working orders fill (position - working sells, position + working buys)."""
        return self._memoized("reach", order, self._reach)

    def _reach(self, order: Order | None) -> dict[str, tuple[float, float]]:
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
        values = self._memo.get("values")
        if values is None:
            values = self._memo["values"] = {}
        key = (symbol, None if order is None or order.symbol != symbol else id(order))
        hit = values.get(key)
        if hit is None or (key[1] is not None and hit[0] is not order):
            hit = values[key] = (order, self._unit_value(symbol, order))
        return hit[1]

    def _unit_value(self, symbol: str, order: Order | None) -> float | None:
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
        before, after = self.exposure(order)
        return (after if order is not None else before)[0]

    def net_exposure(self, order: Order | None = None) -> float:
        """The worst-case absolute net exposure in the account currency, counting working orders
        (and ``order`` if given): ``max(|Σ low × value|, |Σ high × value|)``, every
        symbol's working buys filling or every symbol's working sells filling."""
        before, after = self.exposure(order)
        return (after if order is not None else before)[1]

    def exposure(
        self, order: Order | None = None
    ) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((gross, net) before, (gross, net) after)`` ``order`` is added to the working
        orders (both the same without one): one pass over the symbols, shared by the gross,
        net and leverage rules."""
        return self._memoized("exposure", order, self._exposure)

    def _exposure(self, order: Order | None) -> tuple[tuple[float, float], tuple[float, float]]:
        reach = {s: [q, q] for s, q in self.quantities.items()}
        for symbol, (buys, sells) in self._working().items():
            r = reach.get(symbol)
            if r is None:
                r = reach[symbol] = [0.0, 0.0]
            r[0] -= sells
            r[1] += buys
        gross = low = high = 0.0
        after_symbol = order.symbol if order is not None else None
        after_range: tuple[float, float] | None = None
        for symbol, (lo, hi) in reach.items():
            value = self.unit_value(symbol, order)
            if value is None:
                continue
            gross += max(-lo, hi, lo, -hi) * value
            low += lo * value
            high += hi * value
            if symbol == after_symbol:
                after_range = (lo, hi)
        before = (gross, max(abs(low), abs(high)))
        if order is None:
            return before, before
        value = self.unit_value(order.symbol, order)
        if value is None:
            return before, before
        lo, hi = after_range if after_range is not None else (0.0, 0.0)
        new_lo, new_hi = (
            (lo, hi + order.remaining) if order.side is Side.BUY else (lo - order.remaining, hi)
        )
        gross += (max(abs(new_lo), abs(new_hi)) - max(abs(lo), abs(hi))) * value
        low += (new_lo - lo) * value
        high += (new_hi - hi) * value
        return before, (gross, max(abs(low), abs(high)))


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

    def on_equity(
        self, ts: int, equity: float, control: RiskControl
    ) -> tuple[float, float, int] | None:
        """The account's equity after the bars at ``ts`` (monitors of loss and drawdown).

        May return a *quiet band* ``(low, high, until)``: nothing for this rule to do while
        equity stays within ``[low, high]`` and the clock before ``until`` (ns), so the engine
        need not call it on those bars (marking equity stays cheap). ``None``: call every bar.
        ``control.previous_equity`` is the equity at the bar before this call."""
        return None

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

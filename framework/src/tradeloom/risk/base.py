"""The risk-rule contract and the gate that chains the rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tradeloom.components import Capabilities, Component, Mode
from tradeloom.model import Order, Position


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
            detail = f" (limit {self.limit:g}, observed {self.observed:g})"
        return f"risk rule {self.rule}: {self.reason}{detail}"


@dataclass(frozen=True, slots=True)
class RiskView:
    """A read-only snapshot of the account that rules decide on."""

    ts: int
    cash: float
    equity: float
    positions: Mapping[str, Position]
    open_orders: Sequence[Order]
    last_prices: Mapping[str, float]

    def position_qty(self, symbol: str) -> float:
        pos = self.positions.get(symbol)
        return pos.quantity if pos is not None else 0.0

    def working_qty(self, symbol: str, side_sign: int) -> float:
        """Signed remaining quantity of working orders in ``symbol`` on one side
        (``side_sign`` +1 buy, -1 sell)."""
        return sum(
            o.remaining * o.side.sign
            for o in self.open_orders
            if o.symbol == symbol and o.side.sign == side_sign
        )


class RiskRule(Component):
    """A pre-trade rule. ``check`` returns ``None`` to accept or a :class:`Reject`."""

    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST, Mode.PAPER, Mode.LIVE}))
    name: str = ""
    """Set by the runner to the registered name, for reject messages."""

    def check(self, order: Order, view: RiskView) -> Reject | None:
        raise NotImplementedError


class RiskGate:
    """The ordered chain of rules every order passes before it reaches a broker; a reject wins."""

    def __init__(self, rules: Sequence[RiskRule]) -> None:
        self._rules = tuple(rules)

    def __len__(self) -> int:
        return len(self._rules)

    def check(self, order: Order, view: RiskView) -> Reject | None:
        for rule in self._rules:
            verdict = rule.check(order, view)
            if verdict is not None:
                return verdict
        return None

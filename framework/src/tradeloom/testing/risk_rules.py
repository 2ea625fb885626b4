"""The risk-rule contract: a rule accepts what it should, refuses what it should with a reason
that names it, decides the same way every time, and validates its params.

See ``docs/testing.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from tradeloom.model import Order, OrderType, Position, Side
from tradeloom.risk import RiskRule
from tradeloom.risk.base import Reject, RiskView
from tradeloom.testing import ComponentContract

__all__ = ["RiskRuleContract"]

OrderSpec = Order | Mapping[str, Any]
"""An order, or its fields as a dict: ``{"symbol": "IBM", "side": "buy", "quantity": 10}``
(``limit_price`` / ``stop_price`` set the type; ``client_order_id`` defaults to a fresh id)."""


class RiskRuleContract(ComponentContract):
    """Subclass it and set ``rule_type`` (registered name) or ``rule_cls`` (the class),
    ``params``, and an ``allowed_order`` / ``refused_order`` pair: orders the rule, in the
    account :meth:`make_view` describes, must accept and refuse. ``prior_orders`` are checked
    (and must be accepted) first, for rules with memory (a duplicate guard, a throttle)."""

    kind = "risk_rule"
    rule_type: ClassVar[str | None] = None
    rule_cls: ClassVar[type[RiskRule] | None] = None
    allowed_order: ClassVar[OrderSpec | None] = None
    refused_order: ClassVar[OrderSpec | None] = None
    prior_orders: ClassVar[list[OrderSpec]] = []
    cash: ClassVar[float] = 100_000.0
    positions: ClassVar[dict[str, float]] = {}
    """Symbol -> units held (signed) in the view's account."""
    last_prices: ClassVar[dict[str, float]] = {"IBM": 100.0}
    """The reference price (latest close) of each symbol."""
    ts: ClassVar[int] = 1_704_153_600_000_000_000
    """The view's time, ns (2024-01-02 00:00 UTC); every symbol's last bar is at it."""

    # --- hooks ----------------------------------------------------------------------------------
    def make_rule(self) -> RiskRule:
        """A fresh rule named as the runner names it (the registered name)."""
        rule = self.build()
        rule.name = self.component_name()
        return rule

    def make_view(self) -> RiskView:
        """The account the rule decides on: ``cash``, ``positions`` at ``last_prices``, no
        working orders, every symbol's last bar at ``ts``. Override for rules that read more
        (bars for VaR, strategy attribution, open orders)."""
        positions = {
            s: Position(s, float(q), self.last_prices.get(s, 0.0))
            for s, q in self.positions.items()
            if q
        }
        equity = self.cash + sum(
            q * self.last_prices.get(s, 0.0) for s, q in self.positions.items()
        )
        return RiskView(
            self.ts,
            self.cash,
            equity,
            positions,
            [],
            dict(self.last_prices),
            last_bar_ts=dict.fromkeys(self.last_prices, self.ts),
        )

    def make_order(self, spec: OrderSpec, n: int) -> Order:
        """``spec`` as an :class:`Order` (a dict gets client order id ``rc-<n>``)."""
        if isinstance(spec, Order):
            return spec
        fields = dict(spec)
        fields.setdefault("client_order_id", f"rc-{n}")
        fields.setdefault("symbol", next(iter(self.last_prices), "IBM"))
        fields["side"] = Side(fields.get("side", "buy"))
        if "type" not in fields:
            limit, stop = fields.get("limit_price"), fields.get("stop_price")
            if limit is not None:
                fields["type"] = OrderType.LIMIT if stop is None else OrderType.STOP_LIMIT
            elif stop is not None:
                fields["type"] = OrderType.STOP
        else:
            fields["type"] = OrderType(fields["type"])
        fields.setdefault("strategy_id", "contract")
        fields.setdefault("created_ts", self.ts)
        fields.setdefault("updated_ts", self.ts)
        return Order(**fields)

    def decide(self, rule: RiskRule, spec: OrderSpec, n: int) -> Reject | None:
        """``rule.check`` of ``spec`` in a fresh view, after the ``prior_orders``."""
        return rule.check(self.make_order(spec, n), self.make_view())

    def _primed(self) -> RiskRule:
        rule = self.make_rule()
        for n, spec in enumerate(self.prior_orders):
            verdict = self.decide(rule, spec, 1000 + n)
            assert verdict is None, (
                f"{self.component_name()} refused prior order #{n} ({spec!r}): "
                f"{_message(verdict)}; prior_orders must be accepted"
            )
        return rule

    def _pair(self) -> tuple[OrderSpec, OrderSpec]:
        if self.allowed_order is None or self.refused_order is None:
            raise TypeError(
                f"{type(self).__name__}: set allowed_order and refused_order (an Order or a "
                "dict of its fields) — an order the rule accepts and one it refuses"
            )
        return self.allowed_order, self.refused_order

    # --- the checks -----------------------------------------------------------------------------
    def test_is_a_risk_rule(self) -> None:
        """The class subclasses :class:`tradeloom.risk.RiskRule`."""
        cls = self.component_class()
        assert isinstance(cls, type) and issubclass(cls, RiskRule), (
            f"{cls!r} must subclass tradeloom.risk.RiskRule"
        )

    def test_accepts_the_allowed_order(self) -> None:
        """``check(allowed_order)`` returns None."""
        allowed, _ = self._pair()
        verdict = self.decide(self._primed(), allowed, 1)
        assert verdict is None, (
            f"{self.component_name()} refused the allowed order {allowed!r}: {_message(verdict)}"
        )

    def test_refuses_the_refused_order_naming_the_rule(self) -> None:
        """``check(refused_order)`` returns a :class:`Reject` whose ``rule`` is the rule's
        registered name, with a reason, finite limit and observed values when given, and a
        message that names the rule."""
        _, refused = self._pair()
        name = self.component_name()
        verdict = self.decide(self._primed(), refused, 2)
        assert verdict is not None, f"{name} accepted the refused order {refused!r}"
        assert isinstance(verdict, Reject), f"{name}.check returned {verdict!r}, not a Reject"
        assert verdict.rule == name, (
            f"{name}'s Reject names rule {verdict.rule!r}: use self.name (the runner sets it to "
            "the registered name) so a refusal says which rule refused"
        )
        assert isinstance(verdict.reason, str) and verdict.reason.strip(), (
            f"{name}'s Reject has no reason: say why the order is refused"
        )
        for label in ("limit", "observed"):
            value = getattr(verdict, label)
            assert value is None or math.isfinite(value), f"{name}'s Reject {label} is {value!r}"
        assert name in verdict.message(), f"{name}: message {verdict.message()!r}"

    def test_deterministic(self) -> None:
        """Two fresh rules given the same orders in the same views decide the same way, to the
        reason and the figures."""
        allowed, refused = self._pair()
        sequence = [allowed, refused, allowed, refused]
        runs = []
        for _ in range(2):
            rule = self._primed()
            runs.append([self.decide(rule, spec, i) for i, spec in enumerate(sequence)])
        assert runs[0] == runs[1], (
            f"{self.component_name()} decided differently on identical inputs: "
            f"{[_message(v) for v in runs[0]]} vs {[_message(v) for v in runs[1]]}"
        )


def _message(verdict: Reject | None) -> str:
    return "accepted" if verdict is None else verdict.message()

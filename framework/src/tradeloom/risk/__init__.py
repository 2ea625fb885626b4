"""Pre-trade risk: the rule contract, the gate, and built-in rules."""

from tradeloom.risk.base import Reject, RiskGate, RiskRule, RiskView

__all__ = ["Reject", "RiskGate", "RiskRule", "RiskView"]

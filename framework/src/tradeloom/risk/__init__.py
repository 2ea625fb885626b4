"""Pre-trade risk: the rule contract, the gate, trading states and the kill switch, and
built-in rules."""

from tradeloom.risk.base import Reject, RiskGate, RiskMonitor, RiskRule, RiskView
from tradeloom.risk.control import KillReport, RiskControl, RiskEvent, Scope, TradingState

__all__ = [
    "KillReport",
    "Reject",
    "RiskControl",
    "RiskEvent",
    "RiskGate",
    "RiskMonitor",
    "RiskRule",
    "RiskView",
    "Scope",
    "TradingState",
]

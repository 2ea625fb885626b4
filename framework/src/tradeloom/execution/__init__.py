"""Brokers: the contract, the simulated broker, and its cost models."""

from tradeloom.execution.broker import Broker, BrokerEvent
from tradeloom.execution.costs import NoFees, PercentFees, PerUnitFees
from tradeloom.execution.simulated import SimulatedBroker

__all__ = ["Broker", "BrokerEvent", "NoFees", "PerUnitFees", "PercentFees", "SimulatedBroker"]

"""What every pluggable component declares: a ``Params`` model and its capabilities."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class Kind(StrEnum):
    """The six kinds of component a plugin can contribute."""

    STRATEGY = "strategy"
    DATA_SOURCE = "data_source"
    RISK_RULE = "risk_rule"
    BROKER = "broker"
    COST_MODEL = "cost_model"
    FILL_MODEL = "fill_model"


class Mode(StrEnum):
    BACKTEST = "backtest"
    PAPER = "paper"
    LIVE = "live"


class Params(BaseModel):
    """Base class for component parameter models: unknown keys are errors, values are frozen.

    Subclass it and document each field with an attribute docstring; the docstrings become
    descriptions in ``tradeloom config schema``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class EmptyParams(Params):
    """A component that takes no parameters."""


class Capabilities(BaseModel):
    """What a component declares it can do; the runner refuses combinations it does not support."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modes: frozenset[Mode] = frozenset({Mode.BACKTEST})
    """Run modes the component supports."""
    multi_symbol: bool = True
    """Works with more than one symbol at a time."""
    short_selling: bool = True
    """Strategies: may go short. Brokers: can execute short sales."""

    def describe(self, kind: Kind | None = None) -> str:
        """Short text for listings; ``short`` is shown only for strategies and brokers."""
        order = [Mode.BACKTEST, Mode.PAPER, Mode.LIVE]
        flags = ["/".join(m.value for m in order if m in self.modes)]
        if self.multi_symbol:
            flags.append("multi-symbol")
        if self.short_selling and kind in (None, Kind.STRATEGY, Kind.BROKER):
            flags.append("short")
        return ", ".join(flags)


class Component:
    """Base class of strategies, data sources, risk rules, brokers, cost models and fill models.

    A component is built by the runner with its validated params:
    ``component = cls(cls.Params(**config_params))``.
    """

    Params: ClassVar[type[Params]] = EmptyParams
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, params: Params | None = None, **kwargs: Any) -> None:
        if params is None:
            params = type(self).Params(**kwargs)
        elif kwargs:
            raise TypeError("pass either a Params instance or keyword arguments, not both")
        self.params = params

    def __repr__(self) -> str:
        # Params reprs mask SecretStr values, so this never prints a secret.
        return f"{type(self).__name__}({self.params!r})"

"""The hook specifications: the one contract between the tradeloom kernel and its plugins.

A plugin is any installed distribution that declares an entry point in the group
``tradeloom``; the entry point names a module (or object) whose functions carry
``@tradeloom.hookimpl``. Two kinds of hook exist:

*Contribution hooks* (``tradeloom_register_*``) run once, when a
:class:`~tradeloom.plugins.PluginHost` is built, in no guaranteed order between plugins.
Each receives a ``register`` callable bound to one component kind and calls it once per
component: ``register("my-name", MyClass)``. The registry checks the name
(``^[a-z][a-z0-9_-]*$``), the class, and that no other distribution already registered the
name. Their return value is ignored.

*Lifecycle hooks* (``tradeloom_run_*``) notify observers (journals, notifiers, metrics
exporters) of low-frequency events. Every implementation is called; return values are ignored.
An observer that raises fails the run in backtest mode. **No hook is ever called per bar**:
the engine calls strategies, risk rules and brokers directly, and the broker calls its cost
and fill models directly.

Hooks evolve by adding arguments (pluggy passes each implementation only the arguments it names),
so an implementation written for an older kernel keeps working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from tradeloom.components import Component

PROJECT_NAME = "tradeloom"
ENTRY_POINT_GROUP = "tradeloom"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Register(Protocol):
    """The callable passed to contribution hooks."""

    def __call__(self, name: str, cls: type[Component], *, description: str | None = None) -> None:
        """Register ``cls`` under ``name``. ``description`` defaults to the class docstring's
        first line."""


# --- contribution hooks (called once per host, when the host is built) ---------------------


@hookspec
def tradeloom_register_strategies(register: Register) -> None:
    """Contribute strategies.

    Called once when a plugin host is built. Call ``register(name, cls)`` for each strategy,
    where ``cls`` subclasses :class:`tradeloom.Strategy` and declares a ``Params`` model.
    Call semantics: every implementation is called; the return value is ignored.

    Example::

        @tradeloom.hookimpl
        def tradeloom_register_strategies(register):
            register("my-crossover", MyCrossover)
    """


@hookspec
def tradeloom_register_data_sources(register: Register) -> None:
    """Contribute data sources.

    Called once when a plugin host is built. Call ``register(name, cls)`` for each data source,
    where ``cls`` subclasses :class:`tradeloom.data.DataSource` (``load`` for history; ``stream``
    for live data, once live modes exist). Every implementation is called; the return value is
    ignored.
    """


@hookspec
def tradeloom_register_risk_rules(register: Register) -> None:
    """Contribute pre-trade risk rules.

    Called once when a plugin host is built. Call ``register(name, cls)`` for each rule, where
    ``cls`` subclasses :class:`tradeloom.risk.RiskRule`. Rules are chained in the order the
    deployment's ``risk`` list gives; any reject wins. Every implementation is called; the
    return value is ignored.
    """


@hookspec
def tradeloom_register_brokers(register: Register) -> None:
    """Contribute brokers.

    Called once when a plugin host is built. Call ``register(name, cls)`` for each broker,
    where ``cls`` subclasses :class:`tradeloom.execution.Broker` and declares the modes it supports
    in its ``capabilities``. Every implementation is called; the return value is ignored.
    """


@hookspec
def tradeloom_register_cost_models(register: Register) -> None:
    """Contribute cost models of the simulated broker (commissions, spread, financing).

    Called once when a plugin host is built. Call ``register(name, cls)`` for each model, where
    ``cls`` subclasses :class:`tradeloom.execution.cost_models.CostModel` and overrides any of
    its hooks (``commission``, ``fill_price``, ``accrue``, ``reset``, ``describe``). The broker
    applies the models in the order the deployment's ``costs`` list gives; a model's daily
    financing is booked as a cash flow whose kind is the name registered here. Every
    implementation is called; the return value is ignored.

    Example::

        @tradeloom.hookimpl
        def tradeloom_register_cost_models(register):
            register("flat-fee", FlatFee)
    """


@hookspec
def tradeloom_register_fill_models(register: Register) -> None:
    """Contribute fill models of the simulated broker (when an order can first trade, how much
    of it a bar can fill).

    Called once when a plugin host is built. Call ``register(name, cls)`` for each model, where
    ``cls`` subclasses :class:`tradeloom.execution.fills.FillModel` and sets or overrides any of
    its parts (``at_close``, ``delay``, ``capacity``, ``describe``). The broker combines every
    model of the deployment's ``fill_models`` list: market orders fill at the close if any
    model says so, the largest delay applies and the smallest capacity. Every implementation is
    called; the return value is ignored.

    Example::

        @tradeloom.hookimpl
        def tradeloom_register_fill_models(register):
            register("half-volume", HalfVolume)
    """


# --- lifecycle hooks (observers; low frequency) ----------------------------------------------


@hookspec
def tradeloom_run_start(run_id: str, mode: str, config: dict[str, Any]) -> None:
    """A run is about to start.

    Called once per backtest, after the pipeline has been assembled and validated and before
    the first bar. ``run_id`` is the run's id in the journal (``BacktestResult.run_id``);
    ``mode`` is ``"backtest"`` (paper and live sessions do not call it yet). ``config`` is the
    resolved deployment with secrets masked (a plain dict; do not mutate it). Every
    implementation is called; return values are ignored.
    """


@hookspec
def tradeloom_run_finish(run_id: str, mode: str, summary: dict[str, Any]) -> None:
    """A run has finished (normally or not).

    Called once per backtest after the last bar and after outputs are computed, also when the
    run failed. ``run_id`` and ``mode`` are those of :func:`tradeloom_run_start`. ``summary``
    holds ``status`` (``"completed"`` or ``"failed"``), ``error`` (message or
    ``None``) and, on success, ``metrics`` (the metrics as a dict). Every implementation is
    called; return values are ignored.
    """

"""The kernel's own components, registered through the same hooks as any plugin."""

from __future__ import annotations

from tradeloom.hookspecs import Register, hookimpl


@hookimpl
def tradeloom_register_data_sources(register: Register) -> None:
    from tradeloom.data.datasets import DatasetSource
    from tradeloom.data.files import CsvSource, ParquetSource
    from tradeloom.live.replay import ReplaySource

    register("csv", CsvSource)
    register("parquet", ParquetSource)
    register("dataset", DatasetSource)
    register("replay", ReplaySource)


@hookimpl
def tradeloom_register_brokers(register: Register) -> None:
    from tradeloom.execution import SimulatedBroker

    register("simulated", SimulatedBroker)


@hookimpl
def tradeloom_register_risk_rules(register: Register) -> None:
    from tradeloom.risk.rules import (
        DuplicateOrderGuard,
        MaxGrossExposure,
        MaxLeverage,
        MaxNetExposure,
        MaxOrderNotional,
        MaxOrderQuantity,
        MaxPosition,
        MaxVar,
        MessageThrottle,
        PriceCollar,
        RestrictedInstruments,
        StaleDataGuard,
    )

    register("max-order-quantity", MaxOrderQuantity)
    register("max-order-notional", MaxOrderNotional)
    register("max-position", MaxPosition)
    register("price-collar", PriceCollar)
    register("max-gross-exposure", MaxGrossExposure)
    register("max-net-exposure", MaxNetExposure)
    register("max-leverage", MaxLeverage)
    register("restricted-instruments", RestrictedInstruments)
    register("message-throttle", MessageThrottle)
    register("duplicate-order-guard", DuplicateOrderGuard)
    register("stale-data-guard", StaleDataGuard)
    register("max-var", MaxVar)

    from tradeloom.risk.monitors import (
        MaxDailyLoss,
        MaxDrawdown,
        RepeatedExecutionGuard,
        StopLoss,
        TakeProfit,
        TrailingStop,
    )

    register("repeated-execution-guard", RepeatedExecutionGuard)
    register("max-daily-loss", MaxDailyLoss)
    register("max-drawdown", MaxDrawdown)
    register("stop-loss", StopLoss)
    register("take-profit", TakeProfit)
    register("trailing-stop", TrailingStop)


@hookimpl
def tradeloom_register_cost_models(register: Register) -> None:
    from tradeloom.execution.cost_models import BUILTIN_COST_MODELS

    for name, cls in BUILTIN_COST_MODELS.items():
        register(name, cls)


@hookimpl
def tradeloom_register_fill_models(register: Register) -> None:
    from tradeloom.execution.fills import BUILTIN_FILL_MODELS

    for name, cls in BUILTIN_FILL_MODELS.items():
        register(name, cls)

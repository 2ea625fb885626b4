"""The Python API: everything the CLI does is a call here first.

>>> result = tradeloom.backtest("deploy.toml", overrides=["strategy.params.fast=20"])
>>> result.metrics.sharpe, result.trades.head()
>>> result.report("out.html")
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from tradeloom.components import Kind, Mode
from tradeloom.data import ChunkedMarket, DataSource, MarketData
from tradeloom.data.base import CHUNK_ROWS, HISTORY_BARS
from tradeloom.engine.backtest import BacktestEngine, EngineOutput
from tradeloom.engine.inputs import Stream, check_run, load_market
from tradeloom.engine.result import (
    BacktestResult,
    build_result,
    cash_flows_frame,
    data_conventions,
    equity_frame,
    fills_frame,
    orders_frame,
    risk_events_frame,
    trades_frame,
)
from tradeloom.errors import ConfigError, DataError
from tradeloom.execution import SimulatedBroker
from tradeloom.execution.cost_models import CostModel
from tradeloom.execution.fills import FillModel
from tradeloom.portfolio.fx import FxRates
from tradeloom.risk import RiskRule
from tradeloom.risk.control import RiskControl
from tradeloom.strategy import Strategy

if TYPE_CHECKING:
    from tradeloom.config import ResolvedDeployment
    from tradeloom.plugins import PluginHost
    from tradeloom.store import Store


def backtest(
    *paths: str | Path,
    overrides: Sequence[str] = (),
    host: PluginHost | None = None,
    env: Mapping[str, str] | None = None,
) -> BacktestResult:
    """Load the deployment config(s) at ``paths`` (merged in order), apply ``overrides``
    (``"strategy.params.fast=20"``) and run it as a backtest."""
    from tradeloom.config import load_deployment
    from tradeloom.plugins import PluginHost

    host = host or PluginHost()
    resolved = load_deployment(list(paths), overrides, host=host, env=env)
    return run_deployment(resolved, host)


def build_named(components: Sequence[Any]) -> list[Any]:
    """Build resolved components that report under their registered name (risk rules, cost
    models, fill models): each gets ``.name`` set to it, as the runner does everywhere."""
    built = []
    for rc in components:
        component = rc.build()
        component.name = rc.spec.name
        built.append(component)
    return built


def run_deployment(
    resolved: ResolvedDeployment,
    host: PluginHost | None = None,
    progress: Callable[[int, int], None] | None = None,
    journal: Store | None = None,
    out_dir: str | Path | None = None,
    sandbox: bool = False,
) -> BacktestResult:
    """Assemble the pipeline a resolved deployment describes and run it as a backtest;
    with ``journal``, write it to that store; with ``sandbox``, each strategy in its own
    process (see :func:`run_backtest`)."""
    if resolved.mode != Mode.BACKTEST:
        raise ConfigError(
            f"this command runs backtests; the deployment says "
            f"mode = {Mode(resolved.mode).value!r} "
            f"(paper and live sessions arrive with `tradeloom run`)",
            path="mode",
        )
    data_source = resolved.data.build()
    strategies = [(c.id or c.spec.name, c.build()) for c in resolved.strategies]
    rules = build_named(resolved.risk)
    broker = resolved.broker.build()
    if not isinstance(broker, SimulatedBroker):
        raise ConfigError(
            f'broker {resolved.broker.spec.name!r} cannot run backtests; use type = "simulated"',
            path="broker.type",
        )
    costs = build_named(resolved.costs)  # a cost model's name is the cash-flow kind it books
    fill_models = build_named(resolved.fill_models)
    fx = resolved.fx.build() if resolved.fx is not None else None
    run = resolved.run
    config = resolved.to_dict(mask_secrets=True)
    provenance = _provenance(resolved, [s for _, s in strategies])
    provenance["config_hash"] = resolved.config_hash()
    return run_backtest(
        data_source,
        strategies,
        broker=broker,
        risk=rules,
        costs=costs,
        fill_models=fill_models,
        initial_cash=run.initial_cash,
        currency=run.currency,
        fx=fx,
        currencies=run.currencies,
        start=run.start,
        end=run.end,
        benchmark=run.benchmark,
        stream=run.stream,
        chunk_rows=run.chunk_rows,
        history_bars=run.history_bars,
        dividends=run.dividends,
        calendar=run.calendar,
        config=config,
        provenance=provenance,
        host=host,
        progress=progress,
        journal=journal,
        out_dir=out_dir,
        sandbox=sandbox,
        title=", ".join(
            f"{sid} ({c.spec.name})"
            for (sid, _), c in zip(strategies, resolved.strategies, strict=True)
        ),
    )


def run_backtest(
    data: MarketData | DataSource,
    strategies: Strategy | Sequence[tuple[str, Strategy]],
    *,
    broker: SimulatedBroker | None = None,
    risk: Sequence[RiskRule] | RiskControl = (),
    costs: Sequence[CostModel] = (),
    fill_models: Sequence[FillModel] = (),
    initial_cash: float = 100_000.0,
    currency: str = "USD",
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
    benchmark: str | None = None,
    config: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    host: PluginHost | None = None,
    title: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    stream: Stream = "never",
    chunk_rows: int = CHUNK_ROWS,
    history_bars: int = HISTORY_BARS,
    dividends: Literal["cash", "reinvest"] = "cash",
    calendar: str = "utc-days",
    fx: DataSource | MarketData | FxRates | None = None,
    currencies: Mapping[str, str] | None = None,
    journal: Store | None = None,
    out_dir: str | Path | None = None,
    sandbox: bool = False,
) -> BacktestResult:
    """Run a backtest with component objects directly (no config file).

    ``sandbox``: run each strategy in its own isolated child process, as paper sessions do
    (:mod:`tradeloom.live.sandbox`; slower — a round trip per callback — and identical in
    its results, which is what it is for: proving a strategy behaves the same sandboxed).

    ``journal``: a :class:`~tradeloom.store.Store` the run is written to when it ends (every
    order state, fills, final positions, equity snapshots, risk events, audit records; a run
    that fails is journaled as failed); ``out_dir`` is noted with it.

    ``strategies`` is one strategy or a list of ``(strategy_id, strategy)`` pairs. ``costs``
    are cost models the broker applies in order (:meth:`SimulatedBroker.use_costs`; when empty,
    the broker keeps any models it was given). ``fill_models`` are fill models the broker
    combines (:meth:`SimulatedBroker.use_fill_models`; when empty, likewise).
    ``stream``, ``chunk_rows``, ``history_bars``, ``dividends`` and ``calendar`` are the ``run``
    settings of that name: with streaming, the data source's bars are read chunk by chunk while
    the loop runs.

    ``currencies`` maps symbols to their quote currency (``run.currencies``; symbols not listed
    are in ``currency``). When one differs from ``currency``, ``fx`` supplies the rates: a data
    source or market data whose symbols are pairs named BASEQUOTE (loaded whole up to ``end``,
    so the first rates precede the first bar), or :class:`~tradeloom.portfolio.fx.FxRates`
    in ``currency``. A rate must exist at the first bar of the data for every such currency.
    """
    clock = time.perf_counter  # durations only, for the benchmark; never time of day
    t0 = clock()
    keep = (benchmark,) if benchmark else ()
    market = load_market(data, start, end, stream=stream, chunk_rows=chunk_rows, keep_close=keep)
    if isinstance(strategies, Strategy):
        strategies = [(_default_id(strategies), strategies)]
    check_run(market, strategies, benchmark)
    if sandbox:
        from tradeloom.live.sandbox import sandboxed

        strategies = sandboxed(strategies)
        try:
            return run_backtest(
                market, strategies, broker=broker, risk=risk, costs=costs,
                fill_models=fill_models, initial_cash=initial_cash, currency=currency,
                start=start, end=end, benchmark=benchmark, config=config,
                provenance={**(provenance or {}), "sandbox": True}, host=host, title=title,
                progress=progress, stream=stream, chunk_rows=chunk_rows,
                history_bars=history_bars, dividends=dividends, calendar=calendar, fx=fx,
                currencies=currencies, journal=journal, out_dir=out_dir,
            )  # fmt: skip
        finally:
            for _, strategy in strategies:
                strategy.close()  # type: ignore[attr-defined]
    fx_engine, fx_provenance = _fx_inputs(market, fx, currencies, currency, end)
    if fx_provenance:
        provenance = {**(provenance or {}), **fx_provenance}
    broker = broker or SimulatedBroker()
    if calendar != "utc-days":
        from tradeloom.calendars import SessionCalendar

        broker.use_calendar(SessionCalendar.get(calendar))
    if costs:
        broker.use_costs(costs)
    if fill_models:
        broker.use_fill_models(fill_models)
    run_id = uuid.uuid4().hex[:12]
    started_at = None
    if journal is not None:
        from tradeloom.store.db import now_iso

        started_at = now_iso()
    if host is not None:
        host.hook.tradeloom_run_start(run_id=run_id, mode="backtest", config=config or {})
    try:
        engine = BacktestEngine(
            market,
            strategies,
            broker,
            risk if isinstance(risk, RiskControl) else RiskControl(list(risk)),
            initial_cash=initial_cash,
            currency=currency,
            progress=progress,
            history_bars=history_bars,
            dividends=dividends,
            **fx_engine,
        )
        if journal is not None:
            engine.order_log = []
        t1 = clock()
        output = engine.run()
        t2 = clock()
        result = _result(
            run_id, output, broker, market, initial_cash, currency, benchmark, config,
            title or ", ".join(sid for sid, _ in strategies), provenance or {}, engine,
        )  # fmt: skip
    except Exception as exc:  # observers hear about every failure, then it propagates
        if journal is not None:
            journal.record_failure(
                run_id, "backtest", config or {}, _failed_provenance(provenance, market),
                f"{type(exc).__name__}: {exc}", title=title or "", started_at=started_at,
            )  # fmt: skip
        if host is not None:
            host.hook.tradeloom_run_finish(
                run_id=run_id, mode="backtest", summary={"status": "failed", "error": str(exc)}
            )
        raise
    result.timings = {"load": t1 - t0, "loop": t2 - t1, "results": clock() - t2}
    if journal is not None:
        t3 = clock()
        ledger = broker.ledger
        journal.record_backtest(
            result,
            order_log=engine.order_log,
            fill_log=output.fills,
            positions=[(s, p.quantity, p.avg_price) for s, p in ledger.positions().items()],
            out_dir=out_dir,
            started_at=started_at,
        )
        result.timings["journal"] = clock() - t3
    if host is not None:
        host.hook.tradeloom_run_finish(
            run_id=run_id,
            mode="backtest",
            summary={"status": "completed", "error": None, "metrics": result.metrics.model_dump()},
        )
    return result


def _failed_provenance(
    provenance: dict[str, Any] | None, market: MarketData | ChunkedMarket
) -> dict[str, Any]:
    """What a failed run's journal row can still say: the framework version and the data
    fingerprint, with the deployment's provenance."""
    from importlib import metadata

    try:
        version = metadata.version("tradeloom")
    except metadata.PackageNotFoundError:
        version = "unknown"
    try:
        fingerprint = market.fingerprint()
    except Exception:  # the failure may be in the data itself
        fingerprint = ""
    return {"framework_version": version, "data_fingerprint": fingerprint, **(provenance or {})}


_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _fx_inputs(
    market: MarketData | ChunkedMarket,
    fx: DataSource | MarketData | FxRates | None,
    currencies: Mapping[str, str] | None,
    currency: str,
    end: pd.Timestamp | str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The engine's ``fx`` / ``currencies`` keywords and the provenance entries for a run whose
    ``currencies`` quote symbols in another currency than ``currency``; both empty otherwise."""
    if not currencies:
        return {}, {}
    for symbol, code in currencies.items():
        if not isinstance(code, str) or not _CURRENCY.match(code):
            raise ConfigError(
                f"expected a three-letter upper-case currency code like USD (got {code!r})",
                path=f"run.currencies.{symbol}",
            )
    unknown = sorted(symbol for symbol in currencies if symbol not in market.symbols)
    if unknown:
        raise ConfigError(
            f"symbol(s) {', '.join(unknown)} not in the data, which holds "
            f"{', '.join(market.symbols)}; list only symbols of the data",
            path="run.currencies",
        )
    foreign = {s: currencies[s] for s in sorted(currencies) if currencies[s] != currency}
    if not foreign:
        return {}, {}
    listed = ", ".join(f"{s} in {c}" for s, c in foreign.items())
    if fx is None:
        raise ConfigError(
            f"symbols quoted in another currency than the account's ({currency}) need FX rates, "
            f"but none were given ({listed}): add an [fx] data source (or pass fx=...)",
            path="run.currencies",
        )
    if isinstance(fx, FxRates):
        if fx.account_currency != currency:
            raise ConfigError(
                f"the FX rates convert into {fx.account_currency}, but the account currency is "
                f"{currency}; build them with FxRates({currency!r}, ...)",
                path="fx",
            )
        rates, description = fx, f"FxRates({currency!r}) with pairs {', '.join(fx.pairs)}"
    else:
        # Whole up to `end`, no `start`: the rate at the first bar is the last one before it.
        fx_market = load_market(fx, None, end, slot="fx")
        assert isinstance(fx_market, MarketData)  # loaded whole: never streamed
        try:
            rates = FxRates.from_market(currency, fx_market, fx_market.symbols)
        except DataError as exc:
            raise ConfigError(str(exc), path="fx") from exc
        description = fx_market.description
    # Streamed data's first bar is known only once read; the engine then finds a missing rate.
    if isinstance(market, MarketData):
        first_ts = min(int(f.index[:1].as_unit("ns").asi8[0]) for f in market.frames.values())
        for code in sorted(set(foreign.values())):
            try:
                rates.rate(code, first_ts)
            except DataError as exc:
                raise ConfigError(str(exc), path="fx") from exc
    return {"fx": rates, "currencies": foreign}, {"currencies": foreign, "fx": description}


def _result(
    run_id: str,
    out: EngineOutput,
    broker: SimulatedBroker,
    market: MarketData | ChunkedMarket,
    initial_cash: float,
    currency: str,
    benchmark: str | None,
    config: dict[str, Any] | None,
    title: str,
    provenance: dict[str, Any],
    engine: BacktestEngine,
) -> BacktestResult:
    return build_result(
        run_id=run_id,
        equity=equity_frame(out.ts, out.cash, out.position_value, out.equity, out.gross_exposure),
        trades=trades_frame(broker.ledger.trades),
        orders=orders_frame(out.orders),
        fills=fills_frame(out.fills),
        cash_flows=cash_flows_frame(broker.ledger.cash_flows),
        margin_calls=[
            {
                "time": pd.Timestamp(ts, tz="UTC").isoformat(),
                "equity": call.equity,
                "requirement": call.requirement,
                "deficit": call.deficit,
                "reason": call.reason,
            }
            for ts, call in broker.margin_calls
        ],
        risk_events=risk_events_frame(engine.risk.events),
        market=market,
        initial_cash=initial_cash,
        currency=currency,
        benchmark=benchmark,
        config=config,
        title=title,
        provenance=provenance,
        conventions=[
            *broker.conventions(),
            *data_conventions(market.actions, engine.dividends, engine.currencies, currency),
        ],
    )


def _default_id(strategy: Strategy) -> str:
    return type(strategy).__name__.lower()


def _provenance(resolved: ResolvedDeployment, strategies: list[Strategy]) -> dict[str, Any]:
    from tradeloom.provenance import strategy_code

    components = resolved.components()
    plugins = sorted({(c.spec.distribution, c.spec.version) for c in components})
    code = strategy_code([type(s) for s in strategies])
    return {
        "plugins": [f"{d} {v}" for d, v in plugins],
        "strategy_code_sha256": {k: v["sha256"] for k, v in code["code"].items()},
        **code,
        "components": {c.path: f"{c.spec.kind.value}:{c.spec.name}" for c in components},
    }


__all__ = ["Kind", "backtest", "run_backtest", "run_deployment"]

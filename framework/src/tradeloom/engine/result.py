"""What a backtest returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Iterable

    import numpy as np

    from tradeloom.data import ChunkedMarket, MarketData
    from tradeloom.model import Fill, Order
    from tradeloom.portfolio import CashFlow, Trade
    from tradeloom.report.metrics import Metrics

EQUITY_COLUMNS = ["cash", "position_value", "equity", "gross_exposure"]
TRADE_COLUMNS = [
    "symbol", "side", "quantity", "entry_time", "entry_price", "exit_time", "exit_price",
    "pnl", "fees", "return_pct", "bars_held", "strategy_id",
]  # fmt: skip
ORDER_COLUMNS = [
    "client_order_id", "strategy_id", "symbol", "side", "type", "quantity", "limit_price",
    "stop_price", "tif", "status", "filled_quantity", "avg_fill_price", "created_time",
    "updated_time", "reason",
]  # fmt: skip
FILL_COLUMNS = [
    "fill_id", "client_order_id", "strategy_id", "symbol", "side", "quantity", "price", "fee",
    "time",
]  # fmt: skip
CASH_FLOW_COLUMNS = ["time", "kind", "symbol", "amount"]
RISK_EVENT_COLUMNS = [
    "time", "kind", "scope", "state", "rule", "reason", "limit", "observed", "client_order_id",
    "by",
]  # fmt: skip


@dataclass
class BacktestResult:
    """Everything a backtest produced.

    * ``equity``: one row per timestamp (UTC ``DatetimeIndex`` named ``ts``), columns
      :data:`EQUITY_COLUMNS`, marked at each bar's close.
    * ``trades``: closed round trips (average-cost basis), columns :data:`TRADE_COLUMNS`;
      ``side`` is ``"long"`` or ``"short"``, ``fees`` are entry + exit fees attributed pro rata,
      ``pnl`` is net of those fees.
    * ``orders``: every order with its final state and reason, columns :data:`ORDER_COLUMNS`.
    * ``fills``: every execution, columns :data:`FILL_COLUMNS`.
    * ``cash_flows``: cash booked outside trades (dividends, borrow fees, interest), columns
      :data:`CASH_FLOW_COLUMNS`; ``kind`` names it (a cost model's registered name for its
      daily financing), ``symbol`` is ``""`` when no symbol is concerned, ``amount`` is
      positive when received.
    * ``risk_events``: what the risk control did (rejects, halts, kills, exits, alerts),
      columns :data:`RISK_EVENT_COLUMNS`.
    * ``benchmark``: close prices of the benchmark symbol on the equity index, if configured.
    * ``conventions``: plain-language lines stating every simulation assumption (fill timing,
      fees, slippage, ...); every report prints them.
    """

    run_id: str
    equity: pd.DataFrame
    trades: pd.DataFrame
    orders: pd.DataFrame
    fills: pd.DataFrame
    metrics: Metrics
    initial_cash: float
    currency: str
    conventions: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved deployment, secrets masked."""
    title: str = "tradeloom backtest"
    benchmark: pd.Series | None = None
    benchmark_symbol: str | None = None
    data_fingerprint: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent: ``load`` (data), ``loop`` (the engine), ``results`` (frames, metrics)."""
    cash_flows: pd.DataFrame = field(default_factory=lambda: cash_flows_frame(()))
    margin_calls: list[dict[str, Any]] = field(default_factory=list)
    """Margin calls of a margin account: time, equity, requirement, deficit and the reason
    (the positions were closed at the next bar; the orders are in ``orders``)."""
    risk_events: pd.DataFrame = field(default_factory=lambda: risk_events_frame(()))
    """What the risk control did, columns :data:`RISK_EVENT_COLUMNS`: every reject (rule,
    limit, observed value, client order id), trading-state change (halts, resumes), kill,
    protective exit and alert, in time order."""

    def report(self, path: str | Path) -> Path:
        """Write the self-contained HTML report to ``path`` and return it."""
        from tradeloom.report.html import write_html_report

        return write_html_report(self, Path(path))

    def _repr_html_(self) -> str:  # Jupyter
        from html import escape

        rows = "".join(
            f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(v)}</td></tr>"
            for k, v in self.metrics.display_rows()
        )
        return f"<h4>{escape(self.title)}</h4><table>{rows}</table>"

    def __repr__(self) -> str:
        shown = dict(self.metrics.display_rows())
        return (
            f"<BacktestResult {self.run_id}: {len(self.equity)} bars, {len(self.trades)} trades, "
            f"total return {shown.get('Total return', '—')}, "
            f"Sharpe {shown.get('Sharpe ratio', '—')}>"
        )


# --- building results (shared by the event and the vector engine) -------------------------------


def _times(ns: list[int] | np.ndarray) -> pd.DatetimeIndex:
    """UTC timestamps from integer nanoseconds, converted in one vectorised step."""
    import numpy as np

    return pd.DatetimeIndex(np.asarray(ns, dtype="datetime64[ns]")).tz_localize("UTC")


def equity_frame(
    ts: np.ndarray,
    cash: np.ndarray,
    position_value: np.ndarray,
    equity: np.ndarray,
    gross_exposure: np.ndarray,
) -> pd.DataFrame:
    """The equity DataFrame from int64-nanosecond timestamps and float arrays."""
    index = _times(ts).rename("ts")
    return pd.DataFrame(
        {
            "cash": cash,
            "position_value": position_value,
            "equity": equity,
            "gross_exposure": gross_exposure,
        },
        index=index,
        columns=EQUITY_COLUMNS,
        copy=False,  # the engine hands over its arrays
    )


def _frame(columns: dict[str, list[Any]], times: tuple[str, ...], order: list[str]) -> pd.DataFrame:
    data: dict[str, Any] = dict(columns)
    for name in times:
        data[name] = _times(columns[name])
    return pd.DataFrame(data, columns=order)


def trades_frame(trades: Iterable[Trade]) -> pd.DataFrame:
    trades = list(trades)
    columns: dict[str, list[Any]] = {
        "symbol": [t.symbol for t in trades],
        "side": [t.side for t in trades],
        "quantity": [t.quantity for t in trades],
        "entry_time": [t.entry_ts for t in trades],
        "entry_price": [t.entry_price for t in trades],
        "exit_time": [t.exit_ts for t in trades],
        "exit_price": [t.exit_price for t in trades],
        "pnl": [t.pnl for t in trades],
        "fees": [t.fees for t in trades],
        "return_pct": [t.return_pct for t in trades],
        "bars_held": [t.bars_held for t in trades],
        "strategy_id": [t.strategy_id for t in trades],
    }
    return _frame(columns, ("entry_time", "exit_time"), TRADE_COLUMNS)


def orders_frame(orders: Iterable[Order]) -> pd.DataFrame:
    orders = list(orders)
    columns: dict[str, list[Any]] = {
        "client_order_id": [o.client_order_id for o in orders],
        "strategy_id": [o.strategy_id for o in orders],
        "symbol": [o.symbol for o in orders],
        "side": [o.side.value for o in orders],
        "type": [o.type.value for o in orders],
        "quantity": [o.quantity for o in orders],
        "limit_price": [o.limit_price for o in orders],
        "stop_price": [o.stop_price for o in orders],
        "tif": [o.tif.value for o in orders],
        "status": [o.status.value for o in orders],
        "filled_quantity": [o.filled_quantity for o in orders],
        "avg_fill_price": [o.avg_fill_price if o.filled_quantity else None for o in orders],
        "created_time": [o.created_ts for o in orders],
        "updated_time": [o.updated_ts for o in orders],
        "reason": [o.reason for o in orders],
    }
    return _frame(columns, ("created_time", "updated_time"), ORDER_COLUMNS)


def fills_frame(fills: Iterable[Fill]) -> pd.DataFrame:
    fills = list(fills)
    columns: dict[str, list[Any]] = {
        "fill_id": [f.fill_id for f in fills],
        "client_order_id": [f.client_order_id for f in fills],
        "strategy_id": [f.strategy_id for f in fills],
        "symbol": [f.symbol for f in fills],
        "side": [f.side.value for f in fills],
        "quantity": [f.quantity for f in fills],
        "price": [f.price for f in fills],
        "fee": [f.fee for f in fills],
        "time": [f.ts for f in fills],
    }
    return _frame(columns, ("time",), FILL_COLUMNS)


def cash_flows_frame(flows: Iterable[CashFlow]) -> pd.DataFrame:
    flows = list(flows)
    columns: dict[str, list[Any]] = {
        "time": [f.ts for f in flows],
        "kind": [f.kind for f in flows],
        "symbol": [f.symbol for f in flows],
        "amount": [float(f.amount) for f in flows],
    }
    return _frame(columns, ("time",), CASH_FLOW_COLUMNS)


def risk_events_frame(events: Iterable[Any]) -> pd.DataFrame:
    """The risk control's :class:`~tradeloom.risk.control.RiskEvent` list as a frame."""
    events = list(events)
    columns: dict[str, list[Any]] = {
        "time": [e.ts for e in events],
        "kind": [e.kind for e in events],
        "scope": [e.scope for e in events],
        "state": [e.state for e in events],
        "rule": [e.rule for e in events],
        "reason": [e.reason for e in events],
        "limit": [np.nan if e.limit is None else float(e.limit) for e in events],
        "observed": [np.nan if e.observed is None else float(e.observed) for e in events],
        "client_order_id": [e.client_order_id for e in events],
        "by": [e.by for e in events],
    }
    return _frame(columns, ("time",), RISK_EVENT_COLUMNS)


def build_result(
    *,
    run_id: str,
    equity: pd.DataFrame,
    trades: pd.DataFrame,
    orders: pd.DataFrame,
    fills: pd.DataFrame,
    market: MarketData | ChunkedMarket,
    initial_cash: float,
    currency: str,
    benchmark: str | None,
    config: dict[str, Any] | None,
    title: str,
    provenance: dict[str, Any],
    conventions: list[str],
    cash_flows: pd.DataFrame | None = None,
    margin_calls: list[dict[str, Any]] | None = None,
    risk_events: pd.DataFrame | None = None,
) -> BacktestResult:
    """Metrics, benchmark and provenance around the frames an engine produced
    (``cash_flows`` defaults to none)."""
    from importlib import metadata

    from tradeloom.report.metrics import compute_metrics

    bench = None
    if benchmark is not None:
        close = market.close(benchmark)
        bench = close.reindex(equity.index).ffill().rename(benchmark)
    metrics = compute_metrics(equity, trades, fills, initial_cash=initial_cash, benchmark=bench)
    try:
        version = metadata.version("tradeloom")
    except metadata.PackageNotFoundError:
        version = "unknown"
    provenance = {
        "framework_version": version,
        "data_fingerprint": market.fingerprint(),
        "data": market.description,
        "data_rows_dropped": market.quality.dropped_rows,
        "data_problems": list(market.quality.problems),
        **provenance,
    }
    return BacktestResult(
        run_id=run_id,
        equity=equity,
        trades=trades,
        orders=orders,
        fills=fills,
        metrics=metrics,
        initial_cash=initial_cash,
        currency=currency,
        conventions=conventions,
        config=config or {},
        title=title,
        benchmark=bench,
        benchmark_symbol=benchmark,
        data_fingerprint=provenance["data_fingerprint"],
        provenance=provenance,
        cash_flows=cash_flows if cash_flows is not None else cash_flows_frame(()),
        margin_calls=margin_calls or [],
        risk_events=risk_events if risk_events is not None else risk_events_frame(()),
    )


def data_conventions(
    actions: Sequence[Any], dividends: str, currencies: Mapping[str, str], currency: str
) -> list[str]:
    """The assumptions about the data a report states next to the broker's: the corporate
    actions applied (``dividends``: ``"cash"`` or ``"reinvest"``) and the currencies."""
    splits = sum(1 for a in actions if a.kind == "split")
    how = "reinvested at the ex-date close" if dividends == "reinvest" else "as cash"
    if actions:
        applied = (
            f"Corporate actions applied while the raw prices play: {splits} split(s), "
            f"{len(actions) - splits} dividend(s) ({how}); history shown in today's share units."
        )
    else:
        applied = "Corporate actions: none applied (prices as the data source gives them)."
    if currencies:
        quoted = ", ".join(f"{s} in {c}" for s, c in sorted(currencies.items()))
        money = (
            f"Currencies: account in {currency}; {quoted}, converted at the [fx] rate at or "
            "before each time."
        )
    else:
        money = f"Currency: every amount in {currency}."
    return [applied, money]

"""What a backtest returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
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

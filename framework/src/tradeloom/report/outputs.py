"""Writes a backtest's files into an output folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import tomli_w

if TYPE_CHECKING:
    from tradeloom.engine.result import BacktestResult

OUTPUT_FILES = (
    "metrics.json",
    "trades.csv",
    "orders.csv",
    "equity.csv",
    "cash_flows.csv",
    "config.resolved.toml",
    "report.html",
)


def write_outputs(result: BacktestResult, out_dir: Path) -> dict[str, Path]:
    """Write every output file into ``out_dir`` (created if missing); return name → path.

    Everything except ``report.html`` (which names the run id) is a pure function of the
    inputs: two runs of the same deployment on the same data give byte-identical files.
    ``metrics.json`` holds the metrics and, under ``"assumptions"``, the run's conventions (fill
    timing, fees, slippage, cost models) in plain language, so two results can be compared
    knowingly.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in OUTPUT_FILES}
    paths["metrics.json"].write_text(metrics_json(result) + "\n", encoding="utf-8")
    result.trades.to_csv(paths["trades.csv"], index=False, lineterminator="\n")
    result.orders.to_csv(paths["orders.csv"], index=False, lineterminator="\n")
    result.equity.to_csv(paths["equity.csv"], index=True, lineterminator="\n")
    result.cash_flows.to_csv(paths["cash_flows.csv"], index=False, lineterminator="\n")
    paths["config.resolved.toml"].write_text(
        tomli_w.dumps(_toml_safe(result.config)), encoding="utf-8"
    )
    result.report(paths["report.html"])
    return paths


def metrics_json(result: BacktestResult) -> str:
    """The metrics as JSON (sorted keys, indent 2, stable float rounding) with an
    ``"assumptions"`` key (the list of :attr:`BacktestResult.conventions`) and a
    ``"margin_calls"`` key (:attr:`BacktestResult.margin_calls`, empty for a cash account)."""
    data = json.loads(result.metrics.to_json())
    data["assumptions"] = list(result.conventions)
    data["margin_calls"] = list(result.margin_calls)
    return json.dumps(data, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False)


def _toml_safe(value: object) -> object:
    """TOML has no null: drop ``None`` values (they mean "not set")."""
    if isinstance(value, dict):
        return {k: _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_toml_safe(v) for v in value if v is not None]
    return value

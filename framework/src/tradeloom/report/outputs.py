"""Writes a backtest's files into an output folder."""

from __future__ import annotations

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
    "config.resolved.toml",
    "report.html",
)


def write_outputs(result: BacktestResult, out_dir: Path) -> dict[str, Path]:
    """Write every output file into ``out_dir`` (created if missing); return name → path.

    Everything except ``report.html`` (which names the run id) is a pure function of the
    inputs: two runs of the same deployment on the same data give byte-identical files.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in OUTPUT_FILES}
    paths["metrics.json"].write_text(result.metrics.to_json() + "\n", encoding="utf-8")
    result.trades.to_csv(paths["trades.csv"], index=False, lineterminator="\n")
    result.orders.to_csv(paths["orders.csv"], index=False, lineterminator="\n")
    result.equity.to_csv(paths["equity.csv"], index=True, lineterminator="\n")
    paths["config.resolved.toml"].write_text(
        tomli_w.dumps(_toml_safe(result.config)), encoding="utf-8"
    )
    result.report(paths["report.html"])
    return paths


def _toml_safe(value: object) -> object:
    """TOML has no null: drop ``None`` values (they mean "not set")."""
    if isinstance(value, dict):
        return {k: _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_toml_safe(v) for v in value if v is not None]
    return value

"""Writes a backtest's files into an output folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import tomli_w

if TYPE_CHECKING:
    from tradeloom.engine.result import BacktestResult

OUTPUT_FILES = (
    "metrics.json",
    "trades.csv",
    "orders.csv",
    "equity.csv",
    "cash_flows.csv",
    "risk_events.csv",
    "config.resolved.toml",
    "report.html",
)


def write_outputs(result: BacktestResult, out_dir: Path) -> dict[str, Path]:
    """Write every output file into ``out_dir`` (created if missing); return name → path.

    Everything except ``report.html`` (which names the run id) is a pure function of the
    inputs: two runs of the same deployment on the same data give byte-identical files.
    ``metrics.json`` holds the metrics and, under ``"assumptions"``, the run's conventions (fill
    timing, fees, slippage, cost models) in plain language, so two results can be compared
    knowingly; under ``"risk"`` it summarises what the risk control did (see
    :func:`risk_summary`). ``risk_events.csv`` lists every risk event (columns
    :data:`~tradeloom.engine.result.RISK_EVENT_COLUMNS`, in time order; only a header when the
    control did nothing).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in OUTPUT_FILES}
    paths["metrics.json"].write_text(metrics_json(result) + "\n", encoding="utf-8")
    result.trades.to_csv(paths["trades.csv"], index=False, lineterminator="\n")
    result.orders.to_csv(paths["orders.csv"], index=False, lineterminator="\n")
    result.equity.to_csv(paths["equity.csv"], index=True, lineterminator="\n")
    result.cash_flows.to_csv(paths["cash_flows.csv"], index=False, lineterminator="\n")
    _risk_events(result).to_csv(paths["risk_events.csv"], index=False, lineterminator="\n")
    paths["config.resolved.toml"].write_text(
        tomli_w.dumps(_toml_safe(result.config)), encoding="utf-8"
    )
    result.report(paths["report.html"])
    return paths


def metrics_json(result: BacktestResult) -> str:
    """The metrics as JSON (sorted keys, indent 2, stable float rounding) with an
    ``"assumptions"`` key (the list of :attr:`BacktestResult.conventions`), a
    ``"margin_calls"`` key (:attr:`BacktestResult.margin_calls`, empty for a cash account) and
    a ``"risk"`` key (:func:`risk_summary` of :attr:`BacktestResult.risk_events`)."""
    data = json.loads(result.metrics.to_json())
    data["assumptions"] = list(result.conventions)
    data["margin_calls"] = list(result.margin_calls)
    data["risk"] = risk_summary(_risk_events(result))
    return json.dumps(data, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False)


def risk_summary(events: pd.DataFrame) -> dict[str, Any]:
    """What the risk control did, in counts (the ``"risk"`` key of ``metrics.json``)::

        {"rejects": {rule: count},          # orders and cancels refused, per rule
         "halts": [{"time", "scope", "reason", "by"}, ...],
         "resumes": count, "exits": count, "alerts": count}

    ``halts`` lists, in time order, every move of a scope to ``halted`` (a ``state`` event) and
    every kill-switch use (a ``kill`` event), ``time`` in ISO 8601 UTC. ``resumes`` counts the
    moves back to ``active``; ``exits`` the protective exits and flattening orders the runner
    sent; ``alerts`` the alert events. A move to ``reducing`` and an operator's change of a
    rule's limits are in ``risk_events.csv`` but not counted here.
    """
    if events.empty:
        return {"rejects": {}, "halts": [], "resumes": 0, "exits": 0, "alerts": 0}
    kind = events["kind"].astype(str)
    state = events["state"].astype(str)
    rejects: dict[str, int] = {}
    for rule in events.loc[kind == "reject", "rule"]:
        key = _text(rule)
        rejects[key] = rejects.get(key, 0) + 1
    halted = (kind == "kill") | ((kind == "state") & (state == "halted"))
    halts = [
        {
            "time": _iso(row["time"]),
            "scope": _text(row["scope"]),
            "reason": _text(row["reason"]),
            "by": _text(row["by"]),
        }
        for row in events.loc[halted, ["time", "scope", "reason", "by"]].to_dict("records")
    ]
    return {
        "rejects": rejects,
        "halts": halts,
        "resumes": int(((kind == "state") & (state == "active")).sum()),
        "exits": int((kind == "exit").sum()),
        "alerts": int((kind == "alert").sum()),
    }


def _risk_events(result: BacktestResult) -> pd.DataFrame:
    """The result's risk events (an empty frame for a result built without them)."""
    from tradeloom.engine.result import risk_events_frame

    events = getattr(result, "risk_events", None)
    return risk_events_frame(()) if events is None else events


def _text(value: object) -> str:
    """A cell as text; missing values (``None``, NaN) are ``""``."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def _iso(value: object) -> str:
    """A timestamp as ISO 8601 in UTC (``""`` when missing)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return ""
    ts = pd.Timestamp(value)  # type: ignore[arg-type]
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return ts.isoformat()


def _toml_safe(value: object) -> object:
    """TOML has no null: drop ``None`` values (they mean "not set")."""
    if isinstance(value, dict):
        return {k: _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_toml_safe(v) for v in value if v is not None]
    return value

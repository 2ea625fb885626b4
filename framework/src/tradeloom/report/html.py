"""The self-contained HTML report of a backtest.

One file that opens offline: plotly.js is embedded inline exactly once (it serves two
figures: equity over drawdown on a shared time axis, div ``equity-plot``, and the rolling VaR,
div ``var-plot``), styles are inline, no fonts, images or scripts are fetched. Every string that
comes from data or config is HTML-escaped. The output is deterministic: the same result gives
byte-identical files (no generation timestamp, fixed div ids).

Sections, in order: assumptions, metrics, strategy and configuration, equity and drawdown (with
trade markers and the risk control's halts, kills and resumes), VaR over time, risk controls
(rejects per rule, halts, exits, alerts and the first :data:`MAX_RISK_EVENT_ROWS` risk events),
trades, orders, the resolved configuration and provenance.

Large runs stay readable and small:

* the plotted curves are decimated to at most :data:`MAX_PLOT_POINTS` points (per bucket of
  bars the lowest and highest equity and the deepest drawdown are kept, so peaks and troughs
  survive); metrics are always computed on every bar;
* at most :data:`MAX_TRADE_MARKERS` trades get entry/exit markers (the ones with the largest
  absolute P&L), drawn as SVG so the report needs no WebGL;
* the trades table shows the first and last :data:`TRADE_TABLE_EDGE_ROWS` rows;
* at most :data:`MAX_RISK_MARKERS` trading-state changes are marked (the first ones), with a
  vertical line for at most :data:`MAX_RISK_LINES` of them; the risk events table shows the
  first :data:`MAX_RISK_EVENT_ROWS` events (``risk_events.csv`` has them all);
* the VaR curve is computed only at the bars the equity curve is drawn with.

Each of these limits is stated in the report when it applies.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tradeloom.report.outputs import _risk_events, risk_summary

if TYPE_CHECKING:
    from tradeloom.engine.result import BacktestResult

__all__ = [
    "EQUITY_PLOT_ID",
    "MAX_PLOT_POINTS",
    "MAX_RISK_EVENT_ROWS",
    "MAX_RISK_LINES",
    "MAX_RISK_MARKERS",
    "MAX_TRADE_MARKERS",
    "TRADE_TABLE_EDGE_ROWS",
    "VAR_CONFIDENCE",
    "VAR_MIN_OBSERVATIONS",
    "VAR_PLOT_ID",
    "VAR_WINDOW",
    "render_html_report",
    "rolling_var",
    "write_html_report",
]

EQUITY_PLOT_ID = "equity-plot"
"""The id of the div holding the equity/drawdown figure (stable; tests and tools rely on it)."""
MAX_PLOT_POINTS = 10_000
"""Curves longer than this are decimated for plotting."""
MAX_TRADE_MARKERS = 1_000
"""At most this many trades are marked on the equity curve."""
TRADE_TABLE_EDGE_ROWS = 50
"""The trades table shows this many rows from each end of a long trade list."""
MAX_REASON_ROWS = 50
"""At most this many distinct (status, reason) rows in the orders summary."""
VAR_PLOT_ID = "var-plot"
"""The id of the div holding the rolling VaR figure."""
VAR_WINDOW = 250
"""The rolling VaR uses the trailing this many one-bar P&Ls (fewer at the start)."""
VAR_CONFIDENCE = 0.99
"""Confidence level of the rolling VaR."""
VAR_MIN_OBSERVATIONS = 30
"""The rolling VaR is drawn from the bar with this many one-bar P&Ls on (the historical one
from ``⌈1 / (1 − VAR_CONFIDENCE)⌉`` on, as :func:`tradeloom.risk.var.historical_var` needs)."""
MAX_RISK_MARKERS = 1_000
"""At most this many trading-state changes (halts, kills, resumes) are marked on the equity."""
MAX_RISK_LINES = 200
"""At most this many of those markers also get a vertical line."""
MAX_RISK_EVENT_ROWS = 50
"""The risk events table shows the first this many events; so does the halts table."""

_NONE = "—"
_WIN = "#1a7f37"
_LOSS = "#cf222e"
_REDUCING = "#bf8700"
_VAR_TOLERANCE = 1e-9
"""As in :mod:`tradeloom.risk.var`: slack when turning ``(1 − c)·m`` into a tail count."""
_VAR_CHUNK = 4_096
"""Windows evaluated at once by :func:`rolling_var` (bounds its memory)."""

_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  margin: 0 auto; max-width: 1200px; padding: 1.5rem; color: #1f2328; line-height: 1.45; }
h1 { margin: 0 0 .25rem; font-size: 1.6rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .6rem; border-bottom: 1px solid #d0d7de;
  padding-bottom: .25rem; }
.meta { color: #59636e; margin: 0 0 1rem; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: .85rem; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: .75rem; overflow-x: auto;
  white-space: pre; }
.assumptions { background: #fff8c5; border: 1px solid #d4a72c; border-left: 6px solid #d4a72c;
  padding: .6rem 1rem; border-radius: 4px; }
.assumptions h2 { border: 0; margin: .2rem 0 .3rem; }
.assumptions ul { margin: .2rem 0 .4rem; padding-left: 1.3rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 1.5rem; }
table { border-collapse: collapse; font-size: .88rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #eaeef2; text-align: left;
  vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { font-weight: 600; white-space: nowrap; }
.scroll { overflow-x: auto; }
tr.win td.pnl { color: #1a7f37; }
tr.loss td.pnl { color: #cf222e; }
tr.gap td { text-align: center; color: #59636e; font-style: italic; }
.note { color: #59636e; font-size: .85rem; }
"""


# --- public API --------------------------------------------------------------------------------
def write_html_report(result: BacktestResult, path: Path) -> Path:
    """Write the report of ``result`` to ``path`` (parent folders are created); return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(render_html_report(result))
    return path


def render_html_report(result: BacktestResult) -> str:
    """The complete report of ``result`` as one HTML document (a string)."""
    title = _e(result.title)
    curves = _equity_curves(result)
    events = _risk_events(result)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        _header(result),
        _assumptions(result.conventions),
        '<div class="grid">',
        _section("Metrics", _kv_table(result.metrics.display_rows(), numeric=True)),
        _section("Strategy and configuration", _config_summary(result.config)),
        "</div>",
        _section("Equity and drawdown", _figure(result, curves)),
        _section("VaR over time", _var_figure(result, curves)),
        _section("Risk controls", _risk_section(events, result.currency)),
        _section("Trades", _trades_table(result.trades)),
        _section("Orders", _orders_summary(result.orders)),
        _section("Resolved configuration", f"<pre>{_e(_json(result.config))}</pre>"),
        _section("Provenance", _provenance(result)),
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


# --- small helpers -----------------------------------------------------------------------------
def _e(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def _section(heading: str, body: str) -> str:
    return f"<section>\n<h2>{_e(heading)}</h2>\n{body}\n</section>"


def _kv_table(rows: Iterable[tuple[Any, Any]], *, numeric: bool = False) -> str:
    cls = ' class="num"' if numeric else ""
    body = "\n".join(f"<tr><th>{_e(k)}</th><td{cls}>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">\n{body}\n</table>'


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _timestamp(value: Any) -> pd.Timestamp:
    """A UTC timestamp from a Timestamp/datetime/ISO string or integer nanoseconds."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def _scalar(value: Any) -> str:
    """A config or provenance value as short text."""
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def _utc_naive(index: pd.Index) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(index)
    return idx.tz_convert("UTC").tz_localize(None) if idx.tz is not None else idx


# --- header and assumptions --------------------------------------------------------------------
def _header(result: BacktestResult) -> str:
    m = result.metrics
    meta = [
        f"Run <code>{_e(result.run_id)}</code>",
        f"{_e(m.start)} → {_e(m.end)}",
        f"{len(result.equity):,} bars",
        f"currency {_e(result.currency)}",
    ]
    if result.benchmark_symbol:
        meta.append(f"benchmark {_e(result.benchmark_symbol)}")
    joined = " · ".join(meta)
    return f'<header>\n<h1>{_e(result.title)}</h1>\n<p class="meta">{joined}</p>\n</header>'


def _assumptions(conventions: Sequence[str]) -> str:
    if conventions:
        items = "\n".join(f"<li>{_e(line)}</li>" for line in conventions)
        body = f"<ul>\n{items}\n</ul>"
    else:
        body = "<p>No simulation conventions were recorded for this run.</p>"
    return (
        f'<section class="assumptions" id="assumptions">\n<h2>Assumptions</h2>\n{body}\n</section>'
    )


# --- configuration -----------------------------------------------------------------------------
def _component(value: Any) -> str | None:
    """``type(param=value, ...)`` for a ``{type, params}`` component table, else ``None``."""
    if not isinstance(value, Mapping) or "type" not in value:
        return None
    params = value.get("params") or {}
    if isinstance(params, Mapping):
        args = ", ".join(f"{k}={_scalar(v)}" for k, v in params.items())
    else:
        args = _scalar(params)
    return f"{value['type']}({args})"


def _summary_rows(config: Mapping[str, Any], prefix: str, depth: int) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        component = _component(value)
        if component is not None:
            rows.append((name, component))
        elif (
            isinstance(value, list | tuple)
            and value
            and all(_component(v) is not None for v in value)
        ):
            rows.extend((f"{name}[{i}]", str(_component(v))) for i, v in enumerate(value))
        elif isinstance(value, Mapping):
            if depth > 0:
                rows.extend(_summary_rows(value, f"{name}.", depth - 1))
        else:
            rows.append((name, _scalar(value)))
    return rows


def _config_summary(config: Mapping[str, Any]) -> str:
    rows = _summary_rows(config, "", 1)
    if not rows:
        return '<p class="note">No configuration was recorded.</p>'
    return _kv_table(rows)


# --- figure ------------------------------------------------------------------------------------
def _plot_positions(equity: np.ndarray, drawdown: np.ndarray) -> np.ndarray:
    """Positions of the bars to plot: all of them, or per bucket the min/max equity and the
    deepest drawdown (plus the first and last bar)."""
    n = len(equity)
    if n <= MAX_PLOT_POINTS:
        return np.arange(n)
    size = -(-n // (MAX_PLOT_POINTS // 3))
    buckets = -(-n // size)
    offsets = np.arange(buckets) * size

    def pick(values: np.ndarray, reducer: Any) -> np.ndarray:
        padded = np.concatenate((values, np.full(buckets * size - n, values[-1])))
        chosen = np.asarray(reducer(padded.reshape(buckets, size), axis=1)) + offsets
        return np.asarray(np.minimum(chosen, n - 1))

    keep = [np.array([0, n - 1])]
    keep += [pick(equity, np.argmin), pick(equity, np.argmax), pick(drawdown, np.argmin)]
    return np.unique(np.concatenate(keep))


def _trade_markers(
    trades: pd.DataFrame, index: pd.DatetimeIndex, equity: np.ndarray, currency: str
) -> tuple[list[dict[str, Any]], str]:
    """Marker traces for entries (▲) and exits (▼), coloured by win/loss, and a note."""
    needed = {"entry_time", "exit_time", "pnl"}
    if trades.empty or not needed.issubset(trades.columns):
        return [], ""
    pnl = np.asarray(trades["pnl"], dtype=np.float64)
    chosen = np.arange(len(trades))
    note = ""
    if len(trades) > MAX_TRADE_MARKERS:
        order = np.argsort(-np.abs(np.nan_to_num(pnl)), kind="stable")
        chosen = np.sort(order[:MAX_TRADE_MARKERS])
        note = (
            f"Markers show the {MAX_TRADE_MARKERS:,} trades with the largest absolute P&amp;L "
            f"out of {len(trades):,}."
        )
    sub = trades.iloc[chosen]
    win = pnl[chosen] > 0
    stamps = index.to_numpy().astype("datetime64[ns]")

    def text(row: Mapping[Any, Any], leg: str) -> str:
        price = row.get(f"{leg}_price")
        parts = [
            f"<b>{_e(row.get('symbol', ''))}</b> {_e(row.get('side', ''))} "
            f"{_e(_fmt(row.get('quantity')))}",
            f"{leg} {_e(_fmt(price))} at {_e(_fmt(row.get(f'{leg}_time')))}",
            f"P&amp;L {_e(_fmt(row.get('pnl'), money=True))} {_e(currency)}",
        ]
        return "<br>".join(parts)

    records = sub.to_dict("records")
    traces: list[dict[str, Any]] = []
    for leg, symbol in (("entry", "triangle-up"), ("exit", "triangle-down")):
        times = pd.DatetimeIndex(pd.to_datetime(sub[f"{leg}_time"], utc=True))
        when = times.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[ns]")
        pos = np.clip(np.searchsorted(stamps, when, side="right") - 1, 0, len(stamps) - 1)
        labels = [text(r, leg) for r in records]
        for won, colour, outcome in ((True, _WIN, "win"), (False, _LOSS, "loss")):
            mask = win == won
            if not mask.any():
                continue
            traces.append(
                {
                    "mode": "markers",
                    "name": f"{leg.capitalize()} ({outcome})",
                    "legendgroup": f"{leg}-{outcome}",
                    "x": index[pos[mask]],
                    "y": equity[pos[mask]],
                    "hovertext": [t for t, m in zip(labels, mask, strict=True) if m],
                    "hoverinfo": "text",
                    "marker": {
                        "symbol": symbol,
                        "size": 9,
                        "color": colour,
                        "line": {"width": 0.5, "color": "#ffffff"},
                    },
                }
            )
    return traces, note


def _equity_curves(
    result: BacktestResult,
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]:
    """The bar times (UTC, naive), equity, drawdown and the positions to plot."""
    index = _utc_naive(result.equity.index)
    equity = np.asarray(result.equity["equity"], dtype=np.float64)
    curve = np.concatenate(([float(result.initial_cash)], equity))
    peak = np.maximum.accumulate(curve)[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peak > 0, equity / peak - 1.0, 0.0)
    keep = _plot_positions(equity, drawdown) if len(equity) else np.arange(0)
    return index, equity, drawdown, keep


def _bar_at_or_before(index: pd.DatetimeIndex, times: Any) -> np.ndarray:
    """For each time, the position of the last bar at or before it (the first bar if none)."""
    stamps = index.to_numpy().astype("datetime64[ns]")
    when = _utc_naive(pd.DatetimeIndex(pd.to_datetime(times, utc=True)))
    pos = np.searchsorted(stamps, when.to_numpy().astype("datetime64[ns]"), side="right") - 1
    return np.asarray(np.clip(pos, 0, len(stamps) - 1))


def _risk_markers(
    events: pd.DataFrame, index: pd.DatetimeIndex, equity: np.ndarray
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Marker traces, vertical-line shapes and notes for the trading-state changes: halts and
    kills in red, resumes in green, reducing-only in amber; each marker sits on the equity
    curve at the event time (the equity of the last bar at or before it)."""
    if events.empty or not len(equity):
        return [], [], []
    kind = events["kind"].astype(str)
    changes = events[kind.isin(["state", "kill"])]
    if changes.empty:
        return [], [], []
    notes: list[str] = []
    total = len(changes)
    if total > MAX_RISK_MARKERS:
        changes = changes.iloc[:MAX_RISK_MARKERS]
        notes.append(
            f"The first {MAX_RISK_MARKERS:,} of {total:,} trading-state changes are marked."
        )
    times = _utc_naive(pd.DatetimeIndex(pd.to_datetime(changes["time"], utc=True)))
    pos = _bar_at_or_before(index, changes["time"])
    records = changes.to_dict("records")
    groups: dict[str, list[int]] = {"halt": [], "resume": [], "reducing": []}
    for i, row in enumerate(records):
        state = str(row.get("state", ""))
        if str(row.get("kind")) == "kill" or state == "halted":
            groups["halt"].append(i)
        elif state == "active":
            groups["resume"].append(i)
        else:
            groups["reducing"].append(i)

    def text(row: Mapping[Any, Any], when: pd.Timestamp) -> str:
        state = str(row.get("state", ""))
        if str(row.get("kind")) == "kill":
            title = "Kill switch: halted"
        else:
            title = {"halted": "Halted", "active": "Resumed", "reducing": "Reducing-only"}.get(
                state, f"State {state}"
            )
        by = _e(row.get("by", ""))
        rule = "" if _is_missing(row.get("rule")) else str(row.get("rule"))
        if rule:
            by += f" (rule {_e(rule)})"
        parts = [
            f"<b>{_e(title)}</b> {_e(row.get('scope', ''))}",
            f"reason: {_e(row.get('reason', ''))}",
            f"by {by}",
            f"{_e(when.strftime('%Y-%m-%d %H:%M:%S'))} UTC",
        ]
        return "<br>".join(parts)

    labels = [text(row, times[i]) for i, row in enumerate(records)]
    style = {
        "halt": ("Halt / kill", "x", _LOSS),
        "resume": ("Resume", "diamond", _WIN),
        "reducing": ("Reducing-only", "diamond", _REDUCING),
    }
    traces: list[dict[str, Any]] = []
    colours: list[str] = [""] * len(records)
    for group, members in groups.items():
        if not members:
            continue
        name, symbol, colour = style[group]
        for i in members:
            colours[i] = colour
        rows = np.asarray(members)
        traces.append(
            {
                "mode": "markers",
                "name": name,
                "legendgroup": f"risk-{group}",
                "x": times[rows],
                "y": equity[pos[rows]],
                "hovertext": [labels[i] for i in members],
                "hoverinfo": "text",
                "marker": {
                    "symbol": symbol,
                    "size": 12,
                    "color": colour,
                    "line": {"width": 1, "color": "#ffffff"},
                },
            }
        )
    shapes = [
        {
            "type": "line",
            "xref": "x",
            "yref": "y domain",
            "x0": times[i].isoformat(),
            "x1": times[i].isoformat(),
            "y0": 0,
            "y1": 1,
            "layer": "below",
            "line": {"color": colours[i], "width": 1, "dash": "dot"},
        }
        for i in range(min(len(records), MAX_RISK_LINES))
    ]
    if len(records) > MAX_RISK_LINES:
        notes.append(f"Only the first {MAX_RISK_LINES:,} of them get a vertical line.")
    notes.insert(
        0,
        "✕ red: a halt or the kill switch; ◆ green: a resume; ◆ amber: reducing-only. Dotted "
        "lines mark the time; hover a marker for the scope, the reason and who acted.",
    )
    return traces, shapes, notes


def _figure(
    result: BacktestResult,
    curves: tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray],
) -> str:
    import plotly
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    index, equity, drawdown, keep = curves
    x = index[keep]

    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.04
    )
    fig.add_trace(
        go.Scatter(x=x, y=equity[keep], mode="lines", name="Equity", line={"color": "#0969da"}),
        row=1,
        col=1,
    )
    if result.benchmark is not None:
        bench = result.benchmark
        if not bench.index.equals(result.equity.index):
            bench = bench.reindex(result.equity.index)
        prices = np.asarray(bench, dtype=np.float64)
        finite = np.flatnonzero(np.isfinite(prices) & (prices > 0))
        if len(finite):
            scaled = prices / prices[finite[0]] * float(result.initial_cash)
            label = _e(result.benchmark_symbol or "benchmark")
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=scaled[keep],
                    mode="lines",
                    name=f"Benchmark {label} (rescaled)",
                    line={"color": "#8c959f", "dash": "dot"},
                ),
                row=1,
                col=1,
            )
    markers, marker_note = _trade_markers(result.trades, index, equity, result.currency)
    for trace in markers:
        fig.add_trace(go.Scatter(**trace), row=1, col=1)
    risk_traces, risk_shapes, risk_notes = _risk_markers(_risk_events(result), index, equity)
    for trace in risk_traces:
        fig.add_trace(go.Scatter(**trace), row=1, col=1)
    fig.add_trace(
        go.Scatter(
            x=x,
            y=drawdown[keep],
            mode="lines",
            name="Drawdown",
            fill="tozeroy",
            line={"color": _LOSS, "width": 1},
            showlegend=False,
        ),
        row=2,
        col=1,
    )
    fig.update_layout(
        template="plotly_white",
        height=640,
        margin={"l": 70, "r": 20, "t": 40, "b": 40},
        hovermode="closest",
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        shapes=risk_shapes,
    )
    fig.update_yaxes(title_text=f"Equity ({_e(result.currency)})", row=1, col=1)
    fig.update_yaxes(title_text="Drawdown", tickformat=".0%", row=2, col=1)
    fig.update_xaxes(title_text="Time (UTC)", row=2, col=1)
    div = fig.to_html(
        full_html=False,
        include_plotlyjs=True,
        include_mathjax=False,
        div_id=EQUITY_PLOT_ID,
        default_width="100%",
        default_height="640px",
        config={"displaylogo": False, "responsive": True},
    )
    notes = []
    if len(keep) < len(equity):
        notes.append(
            f"Curves are drawn with {len(keep):,} of {len(equity):,} bars (lowest and highest "
            "equity and deepest drawdown per bucket); metrics use every bar."
        )
    if marker_note:
        notes.append(marker_note)
    if markers:
        notes.append("▲ entry, ▼ exit; green for winning trades, red for losing ones.")
    notes.extend(risk_notes)
    notes.append(f"Charts: plotly {_e(plotly.__version__)}, embedded; the file works offline.")
    note_html = "".join(f'<p class="note">{n}</p>' for n in notes)
    return f"{div}\n{note_html}"


# --- rolling VaR -------------------------------------------------------------------------------
def rolling_var(
    pnl: Any,
    *,
    window: int = VAR_WINDOW,
    confidence: float = VAR_CONFIDENCE,
    min_observations: int = VAR_MIN_OBSERVATIONS,
    ends: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rolling one-bar historical and parametric VaR (positive = a loss) of a P&L series.

    For each end position ``t`` (every position of ``pnl``, or those in ``ends``) the window is
    ``pnl[max(0, t − window + 1) : t + 1]`` with ``m`` observations, and the estimates are
    exactly those of :func:`tradeloom.risk.var.historical_var` and
    :func:`~tradeloom.risk.var.parametric_var` (horizon 1) on that window:

    * historical: ``−x_(k)``, the ``k``-th smallest P&L with ``k = ⌈(1 − c)·m⌉`` (at a 1e-9
      tolerance); NaN while ``m < ⌈1/(1 − c)⌉`` (too few for the quantile, which
      ``historical_var`` refuses too) or ``m < min_observations``;
    * parametric: ``−(μ − z·σ)`` with the window's mean, its standard deviation (ddof = 1) and
      ``z = Φ⁻¹(c)``; NaN while ``m < min_observations``.

    Vectorised: full windows are strided views of ``pnl`` evaluated a chunk at a time
    (``np.partition`` for the quantile); the at most ``window − 1`` shorter windows at the
    start are evaluated one by one. Returns ``(historical, parametric)``, aligned with ``ends``.
    """
    x = np.asarray(pnl, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"pnl must be 1-D, got shape {x.shape}")
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence!r}")
    window, min_observations = int(window), max(int(min_observations), 2)
    if window < min_observations:
        raise ValueError(f"window {window} is shorter than min_observations {min_observations}")
    at = np.arange(x.size) if ends is None else np.asarray(ends, dtype=np.intp).reshape(-1)
    if at.size and (at.min() < 0 or at.max() >= x.size):
        raise ValueError("ends must be positions inside pnl")
    historical = np.full(at.size, np.nan)
    parametric = np.full(at.size, np.nan)
    p = 1.0 - confidence
    z = NormalDist().inv_cdf(confidence)
    needed = math.ceil(1.0 / p - _VAR_TOLERANCE)

    def estimate(windows: np.ndarray, m: int, rows: np.ndarray | slice) -> None:
        if m >= needed:
            k = math.ceil(p * m - _VAR_TOLERANCE)
            historical[rows] = -np.partition(windows, k - 1, axis=1)[:, k - 1] + 0.0
        mu = windows.mean(axis=1)
        sigma = windows.std(axis=1, ddof=1)
        parametric[rows] = -(mu - z * sigma) + 0.0

    observations = np.minimum(at + 1, window)
    full = np.flatnonzero(observations == window)
    if full.size:
        views = sliding_window_view(x, window)  # views[i] is pnl[i : i + window]
        for start in range(0, full.size, _VAR_CHUNK):
            rows = full[start : start + _VAR_CHUNK]
            estimate(views[at[rows] - (window - 1)], window, rows)
    for row in np.flatnonzero((observations < window) & (observations >= min_observations)):
        m = int(observations[row])
        estimate(x[None, :m], m, np.array([row]))
    return historical, parametric


def _var_figure(
    result: BacktestResult,
    curves: tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray],
) -> str:
    """The rolling VaR of the equity's bar-to-bar P&L, drawn at the equity curve's plotted
    bars; a one-line note instead when the run is too short."""
    import plotly.graph_objects as go

    index, equity, _, keep = curves
    if len(equity) <= VAR_MIN_OBSERVATIONS:
        return (
            f'<p class="note">No VaR chart: the run has {len(equity):,} bars, and the rolling '
            f"VaR needs {VAR_MIN_OBSERVATIONS + 1} (that is {VAR_MIN_OBSERVATIONS} one-bar "
            "P&amp;Ls).</p>"
        )
    pnl = np.diff(equity)  # pnl[j] is the P&L of bar j + 1: equity.diff()
    bars = keep[keep >= VAR_MIN_OBSERVATIONS]  # bar t has t one-bar P&Ls up to it
    historical, parametric = rolling_var(pnl, ends=bars - 1)
    x = index[bars]
    pct = f"{VAR_CONFIDENCE * 100:g}%"
    currency = _e(result.currency)
    fig = go.Figure()
    shown = np.isfinite(historical)
    if shown.any():
        fig.add_trace(
            go.Scatter(
                x=x[shown],
                y=historical[shown],
                mode="lines",
                name=f"Historical VaR {pct}",
                line={"color": _LOSS, "width": 1.5},
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=parametric,
            mode="lines",
            name=f"Parametric (normal) VaR {pct}",
            line={"color": "#8250df", "width": 1.5, "dash": "dash"},
        )
    )
    fig.update_layout(
        template="plotly_white",
        height=320,
        margin={"l": 70, "r": 20, "t": 40, "b": 40},
        hovermode="x unified",
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
    )
    fig.update_yaxes(title_text=f"VaR ({currency})")
    fig.update_xaxes(title_text="Time (UTC)")
    div = fig.to_html(
        full_html=False,
        include_plotlyjs=False,  # embedded once, with the equity figure above
        include_mathjax=False,
        div_id=VAR_PLOT_ID,
        default_width="100%",
        default_height="320px",
        config={"displaylogo": False, "responsive": True},
    )
    needed = math.ceil(1.0 / (1.0 - VAR_CONFIDENCE) - _VAR_TOLERANCE)
    notes = [
        f"Rolling {VAR_WINDOW}-bar historical and parametric VaR of the equity's one-bar "
        f"P&amp;L, {pct}: the loss in {currency} of one bar that the trailing {VAR_WINDOW} "
        f"bar-to-bar equity changes (fewer at the start) exceed with probability "
        f"{(1 - VAR_CONFIDENCE) * 100:g}%; a positive value is a loss. This is the P&amp;L "
        "the strategy actually had, not a VaR of the holdings at each bar.",
        f"Historical: the empirical quantile as in tradeloom.risk.var.historical_var, drawn "
        f"from {needed} observations on; parametric: normal with the window's mean and "
        f"standard deviation, drawn from {VAR_MIN_OBSERVATIONS} observations on.",
    ]
    if not shown.any():
        notes.append(
            f"No historical VaR: the run has fewer than {needed} one-bar P&amp;Ls, too few for "
            f"the {pct} quantile."
        )
    if len(keep) < len(equity):
        notes.append("Drawn at the same bars as the equity curve.")
    note_html = "".join(f'<p class="note">{n}</p>' for n in notes)
    return f"{div}\n{note_html}"


# --- risk controls -----------------------------------------------------------------------------
def _risk_section(events: pd.DataFrame, currency: str) -> str:
    if events.empty:
        return "<p>No risk events.</p>"
    summary = risk_summary(events)
    kind = events["kind"].astype(str)
    counts = {k: int((kind == k).sum()) for k in ("reject", "state", "kill", "operator")}
    parts = [
        f"<p>{len(events):,} risk events. The full list is in <code>risk_events.csv</code>; "
        "the counts are under <code>risk</code> in <code>metrics.json</code>.</p>",
        _kv_table(
            [
                ("Rejected orders", f"{counts['reject']:,}"),
                ("Halts (incl. kill switch)", f"{len(summary['halts']):,}"),
                ("Kill switch uses", f"{counts['kill']:,}"),
                ("Resumes", f"{summary['resumes']:,}"),
                ("Protective exits and flattening orders", f"{summary['exits']:,}"),
                ("Alerts", f"{summary['alerts']:,}"),
                ("Operator limit changes", f"{counts['operator']:,}"),
            ],
            numeric=True,
        ),
        "<h3>Rejects by rule</h3>",
    ]
    rejects = sorted(summary["rejects"].items(), key=lambda kv: (-kv[1], kv[0]))
    if rejects:
        parts.append("<table><tr><th>Rule</th><th>Rejects</th></tr>")
        parts.extend(
            f'<tr><td>{_e(rule or _NONE)}</td><td class="num">{n:,}</td></tr>'
            for rule, n in rejects
        )
        parts.append("</table>")
    else:
        parts.append("<p>No order was rejected by the risk control.</p>")
    parts.append("<h3>Halts</h3>")
    halts = summary["halts"]
    if halts:
        parts.append(
            '<div class="scroll"><table><tr><th>Time (UTC)</th><th>Scope</th><th>Reason</th>'
            "<th>By</th></tr>"
        )
        parts.extend(
            f"<tr><td>{_e(_fmt(pd.Timestamp(h['time']) if h['time'] else None))}</td>"
            f"<td>{_e(h['scope'])}</td><td>{_e(h['reason'])}</td><td>{_e(h['by'])}</td></tr>"
            for h in halts[:MAX_RISK_EVENT_ROWS]
        )
        parts.append("</table></div>")
        if len(halts) > MAX_RISK_EVENT_ROWS:
            parts.append(
                f'<p class="note">{len(halts):,} halts; the first {MAX_RISK_EVENT_ROWS} are '
                "listed.</p>"
            )
    else:
        parts.append("<p>No scope was halted.</p>")
    parts.append("<h3>Risk events</h3>")
    shown = events.iloc[:MAX_RISK_EVENT_ROWS]
    columns = list(events.columns)
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    rows = []
    for record in shown.to_dict("records"):
        cells = []
        for c in columns:
            value = record[c]
            if c == "time":
                text = _fmt(value, column="time")
            elif c in {"limit", "observed"}:
                text = _fmt(value)
            else:
                text = "" if _is_missing(value) else str(value)
            attr = ' class="num"' if c in {"limit", "observed"} else ""
            cells.append(f"<td{attr}>{_e(text)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    if len(events) > MAX_RISK_EVENT_ROWS:
        parts.append(
            f'<p class="note">{len(events):,} risk events; the first {MAX_RISK_EVENT_ROWS} are '
            "listed.</p>"
        )
    parts.append(
        '<p class="note">Times are UTC; limit and observed are in the rule\'s own unit (units, '
        f"an amount in {_e(currency)}, a percentage, …).</p>"
    )
    parts.append(f'<div class="scroll"><table>\n<tr>{head}</tr>\n' + "\n".join(rows))
    parts.append("</table></div>")
    return "\n".join(parts)


# --- tables ------------------------------------------------------------------------------------
def _fmt(value: Any, *, column: str = "", money: bool = False) -> str:
    """One cell of the trades table as text (not yet escaped)."""
    if _is_missing(value):
        return _NONE
    if column.endswith("_time") or isinstance(value, pd.Timestamp):
        return _timestamp(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating | Decimal):
        number = float(value)
        if column == "return_pct":
            return f"{number * 100:,.2f}%"
        if money or column in {"pnl", "fees"}:
            return f"{number:,.2f}"
        return f"{number:,.10g}"
    return str(value)


_NUMERIC_KINDS = "biuf"


def _trades_table(trades: pd.DataFrame) -> str:
    if trades.empty:
        return "<p>No closed trades.</p>"
    columns = list(trades.columns)
    numeric = {c for c in columns if trades[c].dtype.kind in _NUMERIC_KINDS}
    head = "".join(f"<th>{_e(c)}</th>" for c in ["#", *columns])
    n = len(trades)
    edge = TRADE_TABLE_EDGE_ROWS
    spans = [(0, n)] if n <= 2 * edge else [(0, edge), (n - edge, n)]
    pnl = np.asarray(trades["pnl"], dtype=np.float64) if "pnl" in trades else np.zeros(n)
    rows: list[str] = []
    for k, (lo, hi) in enumerate(spans):
        if k:
            rows.append(
                f'<tr class="gap"><td colspan="{len(columns) + 1}">… {n - 2 * edge:,} '
                "trades not shown …</td></tr>"
            )
        for i, record in enumerate(trades.iloc[lo:hi].to_dict("records"), start=lo):
            outcome = "win" if pnl[i] > 0 else "loss" if pnl[i] < 0 else "even"
            cells = [f'<td class="num">{i + 1:,}</td>']
            for c in columns:
                classes = " ".join(
                    x for x in ("num" if c in numeric else "", "pnl" if c == "pnl" else "") if x
                )
                attr = f' class="{classes}"' if classes else ""
                cells.append(f"<td{attr}>{_e(_fmt(record[c], column=str(c)))}</td>")
            rows.append(f'<tr class="{outcome}">{"".join(cells)}</tr>')
    note = ""
    if n > 2 * edge:
        note = f'<p class="note">{n:,} trades; the first and last {edge} are listed.</p>'
    note += '<p class="note">Times are UTC; P&amp;L is net of fees.</p>'
    body = "\n".join(rows)
    return f'{note}<div class="scroll"><table>\n<tr>{head}</tr>\n{body}\n</table></div>'


def _orders_summary(orders: pd.DataFrame) -> str:
    if orders.empty or "status" not in orders:
        return "<p>No orders.</p>"
    status = orders["status"].map(str)
    counts: dict[str, int] = {}
    for s in status:
        counts[s] = counts.get(s, 0) + 1
    by_status = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = [
        f"<p>{len(orders):,} orders.</p>",
        "<table><tr><th>Status</th><th>Orders</th></tr>",
        *(f'<tr><td>{_e(s)}</td><td class="num">{c:,}</td></tr>' for s, c in by_status),
        "</table>",
    ]
    unfilled = status.str.lower().isin({"rejected", "canceled", "cancelled", "expired"})
    if unfilled.any() and "reason" in orders:
        reasons = orders.loc[unfilled, "reason"].map(lambda r: _NONE if _is_missing(r) else str(r))
        tally: dict[tuple[str, str], int] = {}
        for key in zip(status[unfilled], reasons, strict=True):
            tally[key] = tally.get(key, 0) + 1
        ranked = sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))
        parts.append("<h3>Why orders were not filled</h3>")
        parts.append("<table><tr><th>Status</th><th>Reason</th><th>Orders</th></tr>")
        parts.extend(
            f'<tr><td>{_e(s)}</td><td>{_e(r)}</td><td class="num">{c:,}</td></tr>'
            for (s, r), c in ranked[:MAX_REASON_ROWS]
        )
        parts.append("</table>")
        if len(ranked) > MAX_REASON_ROWS:
            parts.append(
                f'<p class="note">{len(ranked) - MAX_REASON_ROWS:,} more distinct reasons '
                "are not shown.</p>"
            )
    return "\n".join(parts)


def _provenance(result: BacktestResult) -> str:
    rows: list[tuple[str, str]] = [("run id", result.run_id)]
    rows.append(("data fingerprint", result.data_fingerprint or _NONE))
    rows.extend((str(k), _scalar(v)) for k, v in result.provenance.items())
    return _kv_table(rows)

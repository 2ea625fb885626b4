"""The self-contained HTML report of a backtest.

One file that opens offline: plotly.js is embedded inline exactly once (one figure with two
rows: equity over drawdown on a shared time axis), styles are inline, no fonts, images or
scripts are fetched. Every string that comes from data or config is HTML-escaped. The output
is deterministic: the same result gives byte-identical files (no generation timestamp, fixed
div id ``equity-plot``).

Large runs stay readable and small:

* the plotted curves are decimated to at most :data:`MAX_PLOT_POINTS` points (per bucket of
  bars the lowest and highest equity and the deepest drawdown are kept, so peaks and troughs
  survive); metrics are always computed on every bar;
* at most :data:`MAX_TRADE_MARKERS` trades get entry/exit markers (the ones with the largest
  absolute P&L), drawn as SVG so the report needs no WebGL;
* the trades table shows the first and last :data:`TRADE_TABLE_EDGE_ROWS` rows.

Each of these limits is stated in the report when it applies.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from tradeloom.engine.result import BacktestResult

__all__ = [
    "EQUITY_PLOT_ID",
    "MAX_PLOT_POINTS",
    "MAX_TRADE_MARKERS",
    "TRADE_TABLE_EDGE_ROWS",
    "render_html_report",
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

_NONE = "—"
_WIN = "#1a7f37"
_LOSS = "#cf222e"

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
        _section("Equity and drawdown", _figure(result)),
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


def _figure(result: BacktestResult) -> str:
    import plotly
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    index = _utc_naive(result.equity.index)
    equity = np.asarray(result.equity["equity"], dtype=np.float64)
    curve = np.concatenate(([float(result.initial_cash)], equity))
    peak = np.maximum.accumulate(curve)[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peak > 0, equity / peak - 1.0, 0.0)
    keep = _plot_positions(equity, drawdown)
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
    notes.append(f"Charts: plotly {_e(plotly.__version__)}, embedded; the file works offline.")
    note_html = "".join(f'<p class="note">{n}</p>' for n in notes)
    return f"{div}\n{note_html}"


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

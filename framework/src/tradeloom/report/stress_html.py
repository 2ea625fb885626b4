"""The stress-test page: a :class:`~tradeloom.research.stress_run.StressReport` as one
self-contained HTML file.

Like the backtest report (:mod:`tradeloom.report.html`, whose styles and helpers it uses), the
page opens offline: plotly.js is embedded once in ``<head>``, styles are inline, nothing is
fetched, every string from data or config is escaped, and the same report gives the same bytes
(fixed div ids, no generation time).

Per scenario:

* ``resample``: histograms of the paths' max drawdown and final return, dotted lines at the
  percentiles and a solid one at the backtest's own value;
* ``bootstrap``: a fan chart, the 5–95 and 25–75 percentile bands and the median of the
  bootstrapped equity paths, with the backtest's equity;
* ``gap``, ``volatility``, ``liquidity``: the reference and the scenario equity, with the gap
  or the window marked;
* and each one's table (percentiles, or reference vs scenario metrics).

:func:`stress_section` returns the same content as one ``<section id="stress">`` without
plotly.js, for a page that embeds plotly.js itself (a research report); :func:`stress_figures`
returns the figures by div id.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tradeloom.report.html import (
    _CSS,
    _LOSS,
    _assumptions,
    _e,
    _equity_curves,
    _kv_table,
    _plot_positions,
    _utc_naive,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from tradeloom.research.stress_run import (
        BootstrapOutcome,
        InjectedOutcome,
        ResampleOutcome,
        StressReport,
    )

__all__ = [
    "HISTOGRAM_BINS",
    "STRESS_SECTION_ID",
    "render_stress_html",
    "stress_figures",
    "stress_section",
    "write_stress_html",
]

STRESS_SECTION_ID = "stress"
"""The id of the ``<section>`` :func:`stress_section` returns."""
HISTOGRAM_BINS = 60
"""Bars of each resampling histogram."""

_BLUE = "#0969da"
_GREY = "#59636e"
_BAND = "rgba(9, 105, 218, {alpha})"
_HEIGHT = 360
_EXTRA_CSS = """
section.scenario { margin-top: 1.2rem; }
section.scenario h3 { margin-bottom: .3rem; }
table.pct td, table.pct th { text-align: right; }
table.pct td:first-child, table.pct th:first-child { text-align: left; font-weight: 600; }
"""


# --- public API --------------------------------------------------------------------------------
def write_stress_html(report: StressReport, path: str | Path) -> Path:
    """Write the page of ``report`` to ``path`` (parent folders are created); return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(render_stress_html(report))
    return path


def render_stress_html(report: StressReport) -> str:
    """The complete page of ``report`` as one HTML document (a string)."""
    import plotly
    from plotly.offline import get_plotlyjs

    title = _e(f"Stress tests: {report.title}")
    base = report.baseline.metrics
    meta = " · ".join(
        [
            f"{_e(base.start)} → {_e(base.end)}",
            f"{len(report.baseline.equity):,} bars",
            f"seed {report.seed}",
            f"config <code>{_e(report.config_hash[:12])}</code>",
            f"from {_e(', '.join(report.sources) or 'a resolved config')}",
        ]
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{title}</title>",
            f"<style>{_CSS}{_EXTRA_CSS}</style>",
            '<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: "local"};'
            "</script>",
            f'<script charset="utf-8" type="text/javascript">{get_plotlyjs()}</script>',
            "</head>",
            "<body>",
            f'<header>\n<h1>{title}</h1>\n<p class="meta">{meta}</p>\n</header>',
            _assumptions(report.baseline.conventions),
            stress_section(report),
            f'<p class="note">Charts: plotly {_e(plotly.__version__)}, embedded; the file works '
            "offline.</p>",
            "</body>",
            "</html>",
            "",
        ]
    )


def stress_section(report: StressReport) -> str:
    """The stress tests as one ``<section id="stress">`` (heading ``<h2>``, one ``<h3>`` per
    scenario): the baseline, then each scenario's summary, table and figures. plotly.js is
    not included: the page that embeds the section loads it once, before the section."""
    parts = [
        f'<section id="{STRESS_SECTION_ID}">',
        "<h2>Stress tests</h2>",
        f"<p>Baseline: the deployment's backtest, {_e(report.title)}. Seed {report.seed}: the "
        "same seed gives the same numbers. Drawdowns are fractions of the running peak; "
        "percentiles are over the simulated paths.</p>",
        _baseline_table(report),
    ]
    for outcome in report.scenarios:
        parts.append(_scenario_part(outcome, report))
    parts.append("</section>")
    return "\n".join(parts)


def stress_figures(report: StressReport) -> dict[str, go.Figure]:
    """Every figure of the stress section, keyed by its div id
    (``stress-NAME-drawdown``, ``stress-NAME-return``, ``stress-NAME-fan``,
    ``stress-NAME-equity``)."""
    figures: dict[str, go.Figure] = {}
    for outcome in report.scenarios:
        figures.update(_outcome_figures(outcome, report))
    return figures


# --- parts -------------------------------------------------------------------------------------
def _div_id(name: str, kind: str) -> str:
    return f"stress-{name}-{kind}"


def _baseline_table(report: StressReport) -> str:
    from tradeloom.research.stress_run import SUMMARY_METRICS, format_metric

    summary = report.baseline_summary()
    rows = [(label, format_metric(key, summary[key])) for key, label in SUMMARY_METRICS]
    return _kv_table(rows, numeric=True)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table class="pct">\n<tr>{head}</tr>\n{body}\n</table></div>'


def _outcome_figures(outcome: Any, report: StressReport) -> dict[str, go.Figure]:
    from tradeloom.research.stress_run import BootstrapOutcome, InjectedOutcome, ResampleOutcome

    if isinstance(outcome, ResampleOutcome):
        return _resample_figures(outcome)
    if isinstance(outcome, BootstrapOutcome):
        return {_div_id(outcome.name, "fan"): _fan_figure(outcome, report)}
    if isinstance(outcome, InjectedOutcome):
        return {_div_id(outcome.name, "equity"): _injected_figure(outcome, report)}
    return {}


def _scenario_part(outcome: Any, report: StressReport) -> str:
    heading = outcome.name if outcome.name == outcome.type else f"{outcome.name} ({outcome.type})"
    parts = [
        f'<section class="scenario" id="stress-{_e(outcome.name)}">',
        f"<h3>{_e(heading)}</h3>",
        f"<p>{_e(outcome.summary())}.</p>",
    ]
    header, rows = outcome.table()
    if rows:
        parts.append(_table(header, rows))
    parts.extend(_div(fig, div_id) for div_id, fig in _outcome_figures(outcome, report).items())
    parts.extend(f'<p class="note">{_e(n)}</p>' for n in _notes(outcome, report))
    parts.append("</section>")
    return "\n".join(parts)


def _notes(outcome: Any, report: StressReport) -> list[str]:
    from tradeloom.research.stress_run import BootstrapOutcome, InjectedOutcome, ResampleOutcome

    if isinstance(outcome, ResampleOutcome):
        return [
            "Each path replays the closed trades' net P&L on the initial cash; the backtest "
            "column is the trades in the order they happened. Trades are treated as "
            "independent fixed amounts (no compounding, no overlap)."
        ]
    if isinstance(outcome, BootstrapOutcome):
        return [
            "Paths resample the backtest's per-bar returns in blocks and are drawn on the "
            "backtest's time axis, starting from the initial cash."
        ]
    if isinstance(outcome, InjectedOutcome):
        return [
            f"The same deployment ran on the changed bars; it is compared with the "
            f"{outcome.reference_label} run on the unchanged bars. Amounts in "
            f"{report.currency}."
        ]
    return []


def _div(fig: go.Figure, div_id: str) -> str:
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            include_mathjax=False,
            div_id=div_id,
            default_width="100%",
            default_height=f"{_HEIGHT}px",
            config={"displaylogo": False, "responsive": True},
        )
    )


def _layout(fig: go.Figure, **extra: Any) -> None:
    fig.update_layout(
        template="plotly_white",
        height=_HEIGHT,
        margin={"l": 70, "r": 20, "t": 40, "b": 40},
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        **extra,
    )


# --- figures -----------------------------------------------------------------------------------
def _resample_figures(outcome: ResampleOutcome) -> dict[str, go.Figure]:
    r = outcome.result
    figures = {
        _div_id(outcome.name, "drawdown"): _histogram(
            r.max_drawdown,
            r.drawdown_percentiles,
            r.original_max_drawdown,
            "Max drawdown of the path",
        )
    }
    if r.replace:  # a permutation keeps the final return: nothing to draw
        figures[_div_id(outcome.name, "return")] = _histogram(
            r.final_return, r.return_percentiles, outcome.trades_return, "Final return"
        )
    return figures


def _histogram(
    values: np.ndarray, percentiles: dict[int, float], backtest: float, title: str
) -> go.Figure:
    import plotly.graph_objects as go

    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if high <= low:
        low, high = low - 0.005, high + 0.005
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS, range=(low, high))
    fig = go.Figure(
        go.Bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=counts,
            width=float(edges[1] - edges[0]),
            marker={"color": "#8c959f"},
            name="paths",
            hovertemplate="%{x:.2%}: %{y} paths<extra></extra>",
        )
    )
    for i, (p, value) in enumerate(percentiles.items()):
        if np.isfinite(value):  # labels staggered in height: close percentiles stay legible
            fig.add_vline(
                x=value,
                line={"color": _GREY, "dash": "dot", "width": 1},
                annotation_text=f"{p}%",
                annotation_position="top right",
                annotation_y=1.0 - 0.07 * (i % 2),
                annotation_yref="y domain",
                annotation_font={"color": _GREY, "size": 11},
            )
    fig.add_vline(
        x=backtest,
        line={"color": _BLUE, "width": 2},
        annotation_text="backtest",
        annotation_position="top left",
        annotation_y=0.86,
        annotation_yref="y domain",
        annotation_font={"color": _BLUE, "size": 11},
    )
    _layout(fig, bargap=0, showlegend=False, title={"text": title, "x": 0})
    fig.update_xaxes(tickformat=".0%", title_text=title)
    fig.update_yaxes(title_text="Paths")
    return fig


def _fan_figure(outcome: BootstrapOutcome, report: StressReport) -> go.Figure:
    import plotly.graph_objects as go

    x = _utc_naive(outcome.fan_times)
    fan = outcome.fan
    fig = go.Figure()
    for low, high, alpha in ((5, 95, 0.15), (25, 75, 0.3)):
        fig.add_trace(
            go.Scatter(
                x=x, y=fan[low], mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=fan[high],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=_BAND.format(alpha=alpha),
                name=f"{low}–{high}% of paths",
                hoverinfo="skip",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=fan[50],
            mode="lines",
            name="median path",
            line={"color": _BLUE, "dash": "dash", "width": 1.5},
        )
    )
    index, equity, _, keep = _equity_curves(report.baseline)
    fig.add_trace(
        go.Scatter(
            x=index[keep],
            y=equity[keep],
            mode="lines",
            name="backtest",
            line={"color": "#1f2328", "width": 1.5},
        )
    )
    _layout(fig, hovermode="x unified", title={"text": "Bootstrapped equity", "x": 0})
    fig.update_yaxes(title_text=f"Equity ({_e(report.currency)})")
    fig.update_xaxes(title_text="Time (UTC)")
    return fig


def _injected_figure(outcome: InjectedOutcome, report: StressReport) -> go.Figure:
    import plotly.graph_objects as go

    frame = outcome.frame()
    index = _utc_naive(pd.DatetimeIndex(frame["ts"]))
    ref = frame["reference_equity"].to_numpy(dtype=float)
    new = frame["scenario_equity"].to_numpy(dtype=float)
    keep = _keep(ref, new)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=index[keep],
            y=ref[keep],
            mode="lines",
            name=outcome.reference_label,
            line={"color": "#8c959f", "width": 1.5},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=index[keep],
            y=new[keep],
            mode="lines",
            name=f"scenario {outcome.name}",
            line={"color": _LOSS, "width": 1.5},
        )
    )
    applied = outcome.applied
    if "at" in applied:
        at = _utc_naive(pd.DatetimeIndex([applied["at"]]))[0]
        fig.add_vline(x=at, line={"color": _GREY, "dash": "dot"})
    else:
        start = _utc_naive(pd.DatetimeIndex([applied["start"]]))[0]
        end = _utc_naive(pd.DatetimeIndex([applied["end"]]))[0]
        fig.add_vrect(x0=start, x1=end, fillcolor=_GREY, opacity=0.12, line_width=0)
    _layout(fig, hovermode="x unified", title={"text": "Equity", "x": 0})
    fig.update_yaxes(title_text=f"Equity ({_e(report.currency)})")
    fig.update_xaxes(title_text="Time (UTC)")
    return fig


def _keep(*curves: np.ndarray) -> np.ndarray:
    """Positions to draw: the union of each curve's decimation (all bars when short)."""
    picks = []
    for curve in curves:
        filled = pd.Series(curve).ffill().bfill().to_numpy(dtype=float)
        peak = np.maximum.accumulate(filled)
        with np.errstate(divide="ignore", invalid="ignore"):
            drawdown = np.where(peak > 0, filled / peak - 1.0, 0.0)
        picks.append(_plot_positions(filled, drawdown))
    return np.unique(np.concatenate(picks)) if picks else np.arange(0)

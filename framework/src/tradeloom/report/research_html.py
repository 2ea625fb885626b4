"""The research pages: an optimisation or a walk-forward analysis as one self-contained HTML file.

Like the backtest report (:mod:`tradeloom.report.html`) and the stress page
(:mod:`tradeloom.report.stress_html`), whose styles and helpers they use, a page opens offline:
plotly.js is embedded once in ``<head>``, styles are inline, nothing is fetched, every string
from data or config is escaped, and the same result gives the same bytes (fixed div ids, no
generation time).

:func:`optimize_report`, in order: the search and its settings; the overfitting statistics
(PSR, DSR and PBO, each with its verdict, and the histogram of the CSCV logits); the selected
trial or the Pareto front; the first objective over two searched params (a heatmap; a line for
a single param); the Pareto front chart (two or more objectives); the optimisation history;
the equity curves; the top :data:`TOP_TRIALS` trials; the stress tests when given.

:func:`walkforward_report`, in order: the settings; the out-of-sample summary; the fold
timeline; the stitched out-of-sample equity; in-sample vs out-of-sample per fold; parameter
stability; each fold's DSR and PBO; the stress tests when given.

The figure builders (:func:`heatmap_figure`, :func:`pareto_figure`, :func:`fold_timeline_figure`
…) are public, and :func:`optimize_figures` / :func:`walkforward_figures` return every figure of
a page by its div id, so the data behind each chart can be checked or reused.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tradeloom.report.html import (
    _CSS,
    _LOSS,
    _NONE,
    _WIN,
    _e,
    _fmt,
    _is_missing,
    _kv_table,
    _section,
    _utc_naive,
)
from tradeloom.report.stress_html import _EXTRA_CSS as _STRESS_CSS
from tradeloom.report.stress_html import _layout
from tradeloom.research.overfitting import DSR_THRESHOLD, PBO_HIGH, PBO_LOW
from tradeloom.research.space import BUILTIN_OBJECTIVES, Categorical, FloatRange, IntRange
from tradeloom.store.studies import COMPLETE, FAILED

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from tradeloom.research.optimize import OptimizeResult, Overfitting
    from tradeloom.research.stress_run import StressReport
    from tradeloom.research.walkforward import WalkForwardResult

__all__ = [
    "HEATMAP_BINS",
    "MAX_CLOUD_CURVES",
    "MAX_HEATMAP_AXIS",
    "TOP_TRIALS",
    "equity_figure",
    "fold_overfitting_figure",
    "fold_timeline_figure",
    "heatmap_figure",
    "heatmap_frame",
    "heatmap_params",
    "history_figure",
    "is_oos_figure",
    "logits_figure",
    "objective_line_figure",
    "oos_equity_figure",
    "optimize_figures",
    "optimize_report",
    "pareto_figure",
    "stability_figure",
    "walkforward_figures",
    "walkforward_report",
]

TOP_TRIALS = 20
"""Rows of the top-trials table."""
MAX_CLOUD_CURVES = 50
"""At most this many other trials are drawn faintly behind the selected trial's equity."""
CLOUD_POINTS = 250
"""Each of those faint curves is drawn with at most this many points."""
MAX_HEATMAP_AXIS = 30
"""A heatmap axis with more distinct values than this is cut into :data:`HEATMAP_BINS` bins."""
HEATMAP_BINS = 15
LOGIT_BINS = 40
"""Bars of the CSCV logit histogram."""

_BLUE = "#0969da"
_GREY = "#8c959f"
_AMBER = "#bf8700"
_HEIGHT = 360
_PERCENT = {"total_return", "cagr", "max_drawdown"}
_RATIOS = {"sharpe", "sortino", "calmar", "efficiency", "dsr", "pbo", "psr"}
_METRICS = BUILTIN_OBJECTIVES
_EXTRA_CSS = """
table.verdicts td.value { font-weight: 600; white-space: nowrap; }
.good { color: #1a7f37; } .warn { color: #9a6700; } .bad { color: #cf222e; }
tr.selected td { background: #ddf4ff; }
th.sorted::after { content: " ▼"; }
th.num { text-align: right; } td.nowrap { white-space: nowrap; }
"""


# --- public API: pages -------------------------------------------------------------------------
def optimize_report(result: OptimizeResult, stress: StressReport | None = None) -> str:
    """The page of an optimisation (and of its stress tests, when given) as one HTML string."""
    s = result.summary()
    failed = int((result.trials.state == FAILED).sum()) if "state" in result.trials else 0
    meta = [
        f"strategy <code>{_e(result.strategy_id)}</code>",
        f"{_e(s['sampler'])} sampler",
        f"{_e(result.engine)} engine",
        f"{s['trials']:,} trials: {s['complete']:,} complete, {s['feasible']:,} feasible, "
        f"{failed:,} failed",
        f"{result.seconds:,.1f} s on {_e(result.executor)} × {result.workers}",
    ]
    figures = optimize_figures(result)
    sections = [
        _section("Search", _kv_table(_search_rows(result, failed))),
        _overfitting_section(result.overfitting, figures.get("overfitting-logits")),
        _selected_section(result),
        _landscape_section(result, figures),
        _figure_section("Pareto front", figures, "pareto-front", _pareto_note(result)),
        _figure_section("Optimisation history", figures, "history", _history_note(result)),
        _figure_section("Equity", figures, "equity-curves", _equity_note(result)),
        _section(f"Top {TOP_TRIALS} trials", _top_trials(result)),
    ]
    if stress is not None:
        from tradeloom.report.stress_html import stress_section

        sections.append(stress_section(stress))
    return _page(f"Optimisation: {result.study}", meta, sections)


def walkforward_report(result: WalkForwardResult, stress: StressReport | None = None) -> str:
    """The page of a walk-forward analysis (and of its stress tests) as one HTML string."""
    oos = result.oos
    meta = [
        f"strategy <code>{_e(result.strategy_id)}</code>",
        f"{len(result.folds):,} folds",
        f"train {_e(_length(result.settings.train))}, test {_e(_length(result.settings.test))}",
        f"{oos.get('trials', sum(f.n_trials for f in result.folds)):,} trials",
        f"{result.seconds:,.1f} s on {_e(result.executor)} × {result.workers}",
    ]
    figures = walkforward_figures(result)
    sections = [
        _section("Walk-forward", _kv_table(_walkforward_rows(result))),
        _section("Out of sample", _oos_summary(result)),
        _figure_section("Folds", figures, "fold-timeline", _TIMELINE_NOTE),
        _figure_section("Out-of-sample equity", figures, "oos-equity", _STITCH_NOTE),
        _section(
            "In sample vs out of sample",
            _div(figures["is-vs-oos"], "is-vs-oos") + _folds_table(result),
        ),
        _section(
            "Parameter stability",
            _div(figures["param-stability"], "param-stability") + _stability_table(result),
        ),
        _figure_section("Overfitting per fold", figures, "fold-overfitting", _FOLD_OF_NOTE),
    ]
    if stress is not None:
        from tradeloom.report.stress_html import stress_section

        sections.append(stress_section(stress))
    return _page(f"Walk-forward: {result.name}", meta, sections)


def optimize_figures(result: OptimizeResult) -> dict[str, go.Figure]:
    """Every figure of the optimisation page, keyed by its div id (a figure that does not
    apply, such as the Pareto front of one objective, is left out)."""
    figures = {
        "overfitting-logits": logits_figure(result.overfitting),
        "objective-heatmap": heatmap_figure(result),
        "objective-line": objective_line_figure(result),
        "pareto-front": pareto_figure(result),
        "history": history_figure(result),
        "equity-curves": equity_figure(result),
    }
    return {k: v for k, v in figures.items() if v is not None}


def walkforward_figures(result: WalkForwardResult) -> dict[str, go.Figure]:
    """Every figure of the walk-forward page, keyed by its div id."""
    return {
        "fold-timeline": fold_timeline_figure(result),
        "oos-equity": oos_equity_figure(result),
        "is-vs-oos": is_oos_figure(result),
        "param-stability": stability_figure(result),
        "fold-overfitting": fold_overfitting_figure(result),
    }


# --- page scaffolding ---------------------------------------------------------------------------
def _page(title: str, meta: list[str], sections: list[str]) -> str:
    import plotly
    from plotly.offline import get_plotlyjs

    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            f"<style>{_CSS}{_STRESS_CSS}{_EXTRA_CSS}</style>",
            '<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: "local"};'
            "</script>",
            f'<script charset="utf-8" type="text/javascript">{get_plotlyjs()}</script>',
            "</head>",
            "<body>",
            f'<header>\n<h1>{_e(title)}</h1>\n<p class="meta">{" · ".join(meta)}</p>\n</header>',
            *(s for s in sections if s),
            f'<p class="note">Charts: plotly {_e(plotly.__version__)}, embedded; the file works '
            "offline.</p>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _div(fig: go.Figure, div_id: str) -> str:
    height = fig.layout.height or _HEIGHT
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,  # embedded once, in <head>
            include_mathjax=False,
            div_id=div_id,
            default_width="100%",
            default_height=f"{height}px",
            config={"displaylogo": False, "responsive": True},
        )
    )


def _notes(notes: Sequence[str]) -> str:
    return "".join(f'<p class="note">{n}</p>' for n in notes if n)


def _figure_section(
    heading: str, figures: dict[str, go.Figure], div_id: str, notes: Sequence[str]
) -> str:
    if div_id not in figures:
        return ""
    return _section(heading, _div(figures[div_id], div_id) + _notes(notes))


_ALIGN = {"l": "", "r": "num", "w": "nowrap"}


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    align: str,
    *,
    highlight: Sequence[bool] | None = None,
    sorted_column: int | None = None,
) -> str:
    """A table of formatted (not yet escaped) cells. ``align`` has a letter per column: ``r``
    a number (right-aligned), ``w`` text kept on one line, ``l`` text; ``highlight`` marks
    rows; ``sorted_column`` gets the sort arrow."""

    def attr(*classes: str) -> str:
        joined = " ".join(c for c in classes if c)
        return f' class="{joined}"' if joined else ""

    head = "".join(
        f"<th{attr(_ALIGN[a], 'sorted' if i == sorted_column else '')}>{_e(h)}</th>"
        for i, (h, a) in enumerate(zip(header, align, strict=True))
    )
    body = []
    for k, row in enumerate(rows):
        cells = "".join(
            f"<td{attr(_ALIGN[a])}>{_e(c)}</td>" for c, a in zip(row, align, strict=True)
        )
        body.append(f"<tr{attr('selected' if highlight and highlight[k] else '')}>{cells}</tr>")
    rows_html = "\n".join(body)
    return f'<div class="scroll"><table>\n<tr>{head}</tr>\n{rows_html}\n</table></div>'


# --- formatting --------------------------------------------------------------------------------
def _metric(key: str, value: Any) -> str:
    """A metric, objective (``value_<metric>``) or fold column (``is_``/``oos_``) as text:
    returns and drawdowns as percentages, trades whole, ratios with three decimals, ``—``
    when missing."""
    if _is_missing(value) or isinstance(value, bool):
        return _NONE
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return _NONE
    key = _base_key(key)
    if key in _PERCENT:
        return f"{number * 100:,.2f}%"
    if key == "num_trades":
        return f"{round(number):,}"
    if key == "final_equity":
        return f"{number:,.2f}"
    if key in _RATIOS:
        return f"{number:,.3f}"
    return f"{number:,.4g}"


def _base_key(key: str) -> str:
    for prefix in ("value_", "is_", "oos_"):
        key = key.removeprefix(prefix)
    return key


def _hover(key: str) -> str:
    """A plotly number format for the metric ``key``."""
    return ".2%" if _base_key(key) in _PERCENT else ",.4g"


def _axis_format(key: str) -> str:
    return ".0%" if _base_key(key) in _PERCENT else ""


def _day(value: Any) -> str:
    """A timestamp as its date when it is (within a second of) midnight UTC."""
    if _is_missing(value):
        return _NONE
    ts = pd.Timestamp(value)
    ts = ts.tz_convert("UTC") if ts.tz is not None else ts
    second = ts.floor("s")
    return second.strftime("%Y-%m-%d" if second == second.normalize() else "%Y-%m-%d %H:%M")


def _dates(index: pd.Index) -> list[str]:
    """Times (UTC) as short strings for plotly: dates alone when every one is midnight."""
    idx = _utc_naive(index)
    daily = bool((idx == idx.normalize()).all())
    return list(idx.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M:%S"))


def _naive(values: Sequence[Any]) -> pd.DatetimeIndex:
    return _utc_naive(pd.DatetimeIndex(pd.to_datetime(list(values), utc=True)))


def _length(value: int | str | None) -> str:
    if value is None:
        return _NONE
    return f"{value:,} bars" if isinstance(value, int) else str(value)


def _dimension(dim: IntRange | FloatRange | Categorical) -> str:
    if isinstance(dim, Categorical):
        return "one of " + ", ".join(_fmt(c) for c in dim.choices)
    kind = "int" if isinstance(dim, IntRange) else "float"
    text = f"{kind} {_fmt(dim.low)} … {_fmt(dim.high)}"
    if dim.step is not None and not (isinstance(dim, IntRange) and dim.step == 1):
        text += f", step {_fmt(dim.step)}"
    return text + (", log-uniform" if dim.log else "")


def _objective_labels(result: OptimizeResult) -> list[str]:
    directions = result.space.optimize.resolved_directions
    return [f"{o} ({d[:3]})" for o, d in zip(result.objectives, directions, strict=True)]


def _grade(value: float, good: float, fair: float, *, higher: bool = True) -> str:
    """``good`` / ``warn`` / ``bad`` for a statistic against its two thresholds."""
    if not higher:
        value, good, fair = -value, -good, -fair
    return "good" if value >= good else "warn" if value >= fair else "bad"


# --- optimisation: trials -----------------------------------------------------------------------
def _first_objective(result: OptimizeResult) -> tuple[str, str, bool]:
    """The first objective's name, its ``value_`` column, and whether higher is better."""
    name = result.objectives[0]
    return name, f"value_{name}", result.space.optimize.resolved_directions[0] == "maximize"


def _scored(result: OptimizeResult) -> pd.DataFrame:
    """Complete trials with a finite first objective."""
    _, column, _ = _first_objective(result)
    t = result.trials
    if t.empty or column not in t:
        return t.iloc[0:0]
    values = pd.to_numeric(t[column], errors="coerce")
    return t[(t.state == COMPLETE) & np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))]


def _ranked(result: OptimizeResult) -> pd.DataFrame:
    """Scored trials, feasible first, best first on the first objective."""
    _, column, higher = _first_objective(result)
    t = _scored(result)
    if t.empty:
        return t
    key = t[column] if higher else -t[column]
    order = t.assign(_f=~t.feasible.astype(bool), _k=-key)
    return order.sort_values(["_f", "_k", "number"]).drop(columns=["_f", "_k"])


def _row_of(result: OptimizeResult, number: int | None) -> pd.Series | None:
    if number is None:
        return None
    rows = result.trials[result.trials.number == number]
    return None if rows.empty else rows.iloc[0]


def _search_rows(result: OptimizeResult, failed: int) -> list[tuple[str, str]]:
    settings = result.space.optimize
    sampler = settings.sampler
    if sampler != "grid":
        sampler += f" (seed {settings.seed}, batch {settings.batch})"
    rows = [
        ("Study", result.study),
        ("Strategy", result.strategy_id),
        ("Engine", result.engine),
        ("Sampler", sampler),
        ("Objectives", ", ".join(_objective_labels(result))),
        ("Constraints", ", ".join(str(c) for c in settings.constraints) or _NONE),
    ]
    rows += [(f"Searched: {n}", _dimension(d)) for n, d in result.space.dimensions.items()]
    rows += [(f"Fixed: {n}", _fmt(v)) for n, v in result.space.fixed.items()]
    complete = int((result.trials.state == COMPLETE).sum()) if len(result.trials) else 0
    feasible = int(result.trials.feasible.sum()) if len(result.trials) else 0
    rows += [
        (
            "Trials",
            f"{len(result.trials):,} ({complete:,} complete, {feasible:,} feasible, "
            f"{failed:,} failed; {result.evaluated:,} evaluated by this run)",
        ),
        ("Bars", f"{result.bars:,}"),
        ("Time", f"{result.seconds:,.1f} s, executor {result.executor} × {result.workers}"),
        ("CSCV partitions", str(settings.partitions)),
    ]
    return rows


# --- optimisation: overfitting ------------------------------------------------------------------
def _overfitting_section(ov: Overfitting, logits: go.Figure | None) -> str:
    ann = math.sqrt(ov.periods_per_year)
    rows: list[tuple[str, str, str, str]] = []  # name, value, verdict, grade
    if ov.psr is not None:
        rows.append(("PSR", f"{ov.psr:.3f}", ov.psr_verdict, _grade(ov.psr, 0.95, 0.5)))
    if ov.dsr is not None:
        grade = _grade(ov.dsr.dsr, DSR_THRESHOLD, 0.5)
        rows.append(("DSR", f"{ov.dsr.dsr:.3f}", ov.dsr.verdict, grade))
    if ov.pbo is not None:
        grade = _grade(ov.pbo.pbo, PBO_LOW, PBO_HIGH, higher=False)
        rows.append(("PBO", f"{ov.pbo.pbo:.3f}", ov.pbo.verdict, grade))
    which = "" if ov.selected is None else f" (#{ov.selected})"
    parts = [
        '<section id="overfitting">',
        "<h2>Overfitting</h2>",
        f"<p>How much of the selected trial{which} survives the search, from the daily "
        f"returns of {ov.n_trials:,} trials. PSR: the probability that its "
        "Sharpe ratio is above zero, as if it were the only trial. DSR: the same against the "
        "best Sharpe ratio that as many luck-only trials would show. PBO: how often the "
        "in-sample winner ends at or below the out-of-sample median (CSCV).</p>",
    ]
    if rows:
        body = "\n".join(
            f'<tr><th>{name}</th><td class="value {grade}">{_e(value)}</td>'
            f'<td class="{grade}">{_e(verdict)}</td></tr>'
            for name, value, verdict, grade in rows
        )
        parts.append(f'<table class="verdicts">\n{body}\n</table>')
    details = []
    if ov.dsr is not None:
        d = ov.dsr
        details.append(
            "<div><h3>Deflated Sharpe ratio</h3>"
            + _kv_table(
                [
                    ("Sharpe ratio SR (per period)", f"{d.sr:.4f} (annualised {d.sr * ann:.2f})"),
                    (
                        "SR* (best of N luck-only trials)",
                        f"{d.sr_star:.4f} (annualised {d.sr_star * ann:.2f})",
                    ),
                    ("SR − SR*", f"{d.sr - d.sr_star:+.4f}"),
                    ("Number of trials N", _fmt(d.n_trials)),
                    ("Variance of the trial Sharpe ratios (per period)", f"{d.sr_variance:.3g}"),
                    ("Returns", f"{d.n_obs:,}"),
                    ("Skewness, kurtosis", f"{d.skew:.2f}, {d.kurtosis:.2f}"),
                ],
                numeric=True,
            )
            + "</div>"
        )
    if ov.pbo is not None:
        p = ov.pbo
        details.append(
            "<div><h3>Probability of backtest overfitting</h3>"
            + _kv_table(
                [
                    ("PBO", f"{p.pbo:.1%}"),
                    ("Blocks S", f"{p.n_partitions:,}"),
                    ("Combinations C(S, S/2)", f"{p.n_combinations:,}"),
                    ("Trials", f"{p.n_trials:,}"),
                    ("Returns", f"{p.n_obs:,}"),
                ],
                numeric=True,
            )
            + "</div>"
        )
    if details:
        parts.append(f'<div class="grid">{"".join(details)}</div>')
    if logits is not None:
        parts.append(_div(logits, "overfitting-logits"))
        parts.append(
            _notes(
                [
                    "Each CSCV split picks the trial with the best in-sample Sharpe ratio and "
                    "ranks it out of sample: λ = ln(ω / (1 − ω)) with ω its relative rank. "
                    "λ ≤ 0 (shaded) means it ended at or below the median; PBO is that share."
                ]
            )
        )
    parts.append(_notes([_e(n) for n in ov.notes]))
    parts.append("</section>")
    return "\n".join(parts)


def logits_figure(ov: Overfitting) -> go.Figure | None:
    """Histogram of the CSCV logits λ: the splits with λ ≤ 0 (the PBO) in red, a line at 0."""
    import plotly.graph_objects as go

    if ov.pbo is None or not len(ov.pbo.logits):
        return None
    lam = np.asarray(ov.pbo.logits, dtype=float)
    low, high = min(float(lam.min()), 0.0), max(float(lam.max()), 0.0)
    width = (high - low) / LOGIT_BINS if high > low else 0.1
    edges = np.arange(math.floor(low / width), math.ceil(high / width) + 1) * width
    if len(edges) < 2:
        edges = np.array([-width, 0.0, width])
    centres = (edges[:-1] + edges[1:]) / 2
    overfit = lam[lam <= 0]
    overfit = np.where(overfit == 0, -width / 2, overfit)  # λ = 0 counts as overfit: left bin
    fig = go.Figure()
    for values, name, colour in (
        (overfit, "λ ≤ 0: winner at or below the OOS median", _LOSS),
        (lam[lam > 0], "λ > 0: winner above the OOS median", _GREY),
    ):
        counts, _ = np.histogram(values, bins=edges)
        fig.add_trace(
            go.Bar(
                x=centres,
                y=counts,
                width=width,
                name=name,
                marker={"color": colour},
                hovertemplate="λ %{x:.2f}: %{y} splits<extra></extra>",
            )
        )
    fig.add_vrect(x0=edges[0], x1=0, fillcolor=_LOSS, opacity=0.07, line_width=0)
    fig.add_vline(
        x=0,
        line={"color": "#1f2328", "width": 1.5},
        annotation_text=f"PBO {ov.pbo.pbo:.0%}",
        annotation_position="top left",
    )
    _layout(fig, barmode="stack", bargap=0)
    fig.update_xaxes(title_text="λ, logit of the in-sample winner's out-of-sample rank")
    fig.update_yaxes(title_text="Splits")
    return fig


# --- optimisation: the selection ----------------------------------------------------------------
def _selected_section(result: OptimizeResult) -> str:
    params = list(result.space.dimensions)
    if len(result.objectives) == 1:
        row = _row_of(result, result.selected)
        if row is None:
            return _section("Best trial", "<p>No feasible trial: nothing was selected.</p>")
        rows = [(n, _fmt(row[n])) for n in params]
        rows += [(m, _metric(m, row.get(m))) for m in _METRICS if m in row]
        rows.append(("seconds", f"{float(row['seconds']):.3g} s"))
        return _section(f"Best trial #{result.selected}", _kv_table(rows, numeric=True))
    front = result.trials[result.trials.number.isin(result.best)]
    if front.empty:
        return _section("Pareto front", "<p>No feasible trial: the front is empty.</p>")
    _, column, higher = _first_objective(result)
    front = front.sort_values(column, ascending=not higher)
    values = [f"value_{o}" for o in result.objectives]
    metrics = [m for m in _METRICS if m in front and m not in result.objectives]
    header = ["trial", *params, *_objective_labels(result), *metrics]
    rows = [
        [
            f"#{int(r['number'])}",
            *(_fmt(r[n]) for n in params),
            *(_metric(v, r[v]) for v in values),
            *(_metric(m, r[m]) for m in metrics),
        ]
        for _, r in front.iterrows()
    ]
    intro = (
        f"<p>{len(front):,} feasible trial{'s' if len(front) != 1 else ''} that no other trial "
        f"beats on every objective. The selected one, #{_e(_fmt(result.selected))} "
        f"(highlighted), is the best of them on {_e(result.objectives[0])}; the overfitting "
        "statistics are about it.</p>"
    )
    table = _table(
        header,
        rows,
        "l" + "r" * (len(header) - 1),
        highlight=[int(r) == result.selected for r in front.number],
    )
    return _section("Pareto front", intro + table)


def _top_trials(result: OptimizeResult) -> str:
    ranked = _ranked(result)
    if ranked.empty:
        return "<p>No complete trial has a value for the objective.</p>"
    shown = ranked.head(TOP_TRIALS)
    params = list(result.space.dimensions)
    values = [f"value_{o}" for o in result.objectives]
    metrics = [m for m in _METRICS if m in shown and m not in result.objectives]
    header = ["rank", "trial", *params, *_objective_labels(result), *metrics, "feasible"]
    rows = [
        [
            str(k),
            f"#{int(r['number'])}",
            *(_fmt(r[n]) for n in params),
            *(_metric(v, r[v]) for v in values),
            *(_metric(m, r[m]) for m in metrics),
            "yes" if r["feasible"] else "no",
        ]
        for k, (_, r) in enumerate(shown.iterrows(), start=1)
    ]
    feasible = int(ranked.feasible.sum())
    note = (
        f'<p class="note">{len(ranked):,} scored trials ({feasible:,} feasible), ranked feasible '
        f"first, then by {_e(_objective_labels(result)[0])}; the selected trial is highlighted."
        "</p>"
    )
    table = _table(
        header,
        rows,
        "rl" + "r" * (len(header) - 3) + "l",
        highlight=[int(n) == result.selected for n in shown.number],
        sorted_column=2 + len(params),
    )
    errors = result.trials[result.trials.state == FAILED] if len(result.trials) else None
    if errors is not None and len(errors):
        listed = "".join(
            f"<li>#{int(r['number'])}: {_e(r['error'] or 'no message')}</li>"
            for _, r in errors.head(10).iterrows()
        )
        more = f" (the first 10 of {len(errors):,})" if len(errors) > 10 else ""
        table += f"<h3>Failed trials{more}</h3><ul>{listed}</ul>"
    return note + table


# --- optimisation: the objective over the params ------------------------------------------------
def heatmap_params(result: OptimizeResult) -> tuple[str, str] | None:
    """The heatmap's default ``(x, y)``: the first two numeric searched params (categorical
    ones fill in when there are fewer); ``None`` with fewer than two searched params."""
    dims = result.space.dimensions
    numeric = [n for n, d in dims.items() if not isinstance(d, Categorical)]
    chosen = (numeric + [n for n in dims if n not in numeric])[:2]
    return (chosen[0], chosen[1]) if len(chosen) == 2 else None


def _axis_values(values: pd.Series, dim: Any) -> tuple[pd.Series, list[Any], bool]:
    """The heatmap coordinate of each value, the axis (in order), and whether it was binned."""
    if isinstance(dim, Categorical):
        labels = [str(c) for c in dim.choices]
        return values.map(str), labels, False
    distinct = sorted(pd.unique(values))
    if len(distinct) <= MAX_HEATMAP_AXIS:
        return values, list(distinct), False
    return _binned(values, dim), _bin_labels(dim), True


def _bin_edges(dim: Any) -> np.ndarray:
    low, high = float(dim.low), float(dim.high)
    if dim.log:
        return np.geomspace(low, high, HEATMAP_BINS + 1)
    return np.linspace(low, high, HEATMAP_BINS + 1)


def _bin_labels(dim: Any) -> list[str]:
    return [f"{a:.3g}–{b:.3g}" for a, b in itertools.pairwise(_bin_edges(dim))]


def _binned(values: pd.Series, dim: Any) -> pd.Series:
    """Each value's bin label (:func:`_bin_labels`)."""
    edges = _bin_edges(dim)
    pos = np.clip(np.searchsorted(edges, values.to_numpy(dtype=float), side="right") - 1, 0, None)
    pos = np.minimum(pos, HEATMAP_BINS - 1)
    return pd.Series(np.asarray(_bin_labels(dim), dtype=object)[pos], index=values.index)


def _cell(value: Any, dim: Any, axis: Sequence[Any]) -> Any:
    """Where ``value`` sits on a heatmap ``axis`` (its bin when the axis is binned)."""
    if isinstance(dim, Categorical):
        return str(value)
    if value in list(axis):
        return value
    return _binned(pd.Series([value]), dim).iloc[0]


def heatmap_frame(
    result: OptimizeResult, x: str | None = None, y: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]] | None:
    """The first objective over the params ``x`` and ``y`` (default :func:`heatmap_params`)
    of the feasible trials: ``(values, counts, notes)``, rows the ``y`` values and columns the
    ``x`` values in axis order (NaN where no feasible trial). Trials with the same params
    count once, with their mean; with two searched params a cell is the mean of its trials,
    with more it is the best over the other params."""
    default = heatmap_params(result)
    if default is None:
        return None
    x, y = x or default[0], y or default[1]
    dims = result.space.dimensions
    name, column, higher = _first_objective(result)
    trials = _scored(result)
    trials = trials[trials.feasible.astype(bool)]
    if trials.empty:
        return None
    params = list(dims)
    points = trials.groupby(params, sort=False, dropna=False)[column].mean().reset_index()
    xs, x_axis, x_binned = _axis_values(points[x], dims[x])
    ys, y_axis, y_binned = _axis_values(points[y], dims[y])
    points = points.assign(_x=xs.to_numpy(), _y=ys.to_numpy())
    many = len(params) > 2
    cells = points.groupby(["_y", "_x"], sort=False)[column]
    values = (cells.max() if higher else cells.min()) if many else cells.mean()
    grid = values.unstack("_x").reindex(index=y_axis, columns=x_axis)
    counts = cells.size().unstack("_x").reindex(index=y_axis, columns=x_axis).fillna(0)
    grid.index.name, grid.columns.name = y, x
    notes = ["Feasible trials only; a blank cell had no feasible trial."]
    if many:
        others = ", ".join(p for p in params if p not in (x, y))
        best = "highest" if higher else "lowest"
        notes.append(f"Each cell shows the {best} {name} over the other params ({others}).")
    else:
        notes.append(f"Each cell shows the mean {name} of its trials.")
    if x_binned or y_binned:
        binned = " and ".join(p for p, b in ((x, x_binned), (y, y_binned)) if b)
        notes.append(f"{binned} is cut into {HEATMAP_BINS} bins (too many distinct values).")
    return grid, counts, notes


def heatmap_figure(
    result: OptimizeResult, x: str | None = None, y: str | None = None
) -> go.Figure | None:
    """The heatmap of :func:`heatmap_frame`; the selected trial's cell is marked ★."""
    import plotly.graph_objects as go

    frame = heatmap_frame(result, x, y)
    if frame is None:
        return None
    grid, counts, _ = frame
    name, column, higher = _first_objective(result)
    z = grid.to_numpy(dtype=float)
    text = [[_metric(column, v) if np.isfinite(v) else "" for v in row] for row in z]
    chosen = _row_of(result, result.selected)
    if chosen is not None and bool(chosen["feasible"]):
        dims = result.space.dimensions
        at_x = _cell(chosen[grid.columns.name], dims[grid.columns.name], grid.columns)
        at_y = _cell(chosen[grid.index.name], dims[grid.index.name], grid.index)
        i, j = list(grid.index).index(at_y), list(grid.columns).index(at_x)
        text[i][j] = f"★ {text[i][j]}"
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(grid.columns),
            y=list(grid.index),
            text=text,
            customdata=counts.to_numpy(dtype=int),
            texttemplate="%{text}" if z.size <= 400 else None,
            hovertemplate=f"{_e(grid.columns.name)} %{{x}}, {_e(grid.index.name)} %{{y}}: "
            f"{_e(name)} %{{text}} (%{{customdata}} trials)<extra></extra>",
            hoverongaps=False,
            colorscale="RdYlGn" if higher else "RdYlGn_r",
            colorbar={"title": {"text": name}, "tickformat": _axis_format(name)},
        )
    )
    _layout(fig)
    fig.update_layout(height=max(_HEIGHT, 28 * len(grid.index) + 140))
    fig.update_xaxes(type="category", title_text=grid.columns.name)
    fig.update_yaxes(type="category", title_text=grid.index.name)
    return fig


def objective_line_figure(result: OptimizeResult) -> go.Figure | None:
    """With one searched param: the first objective of every feasible trial against it, the
    mean per value as a line, the selected trial starred. ``None`` with more params."""
    import plotly.graph_objects as go

    dims = result.space.dimensions
    if len(dims) != 1:
        return None
    [param] = dims
    name, column, _ = _first_objective(result)
    trials = _scored(result)
    trials = trials[trials.feasible.astype(bool)]
    if trials.empty:
        return None
    categorical = isinstance(dims[param], Categorical)
    xs = trials[param].map(str) if categorical else trials[param]
    means = trials.assign(_x=xs).groupby("_x")[column].mean()
    order = [str(c) for c in dims[param].choices] if categorical else sorted(means.index)
    means = means.reindex([o for o in order if o in means.index])
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=trials[column],
            mode="markers",
            name="trials",
            customdata=trials.number,
            marker={"color": _GREY, "opacity": 0.6},
            hovertemplate=f"trial #%{{customdata}}: %{{y:{_hover(name)}}}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=list(means.index),
            y=means.to_numpy(),
            mode="lines",
            name="mean",
            line={"color": _BLUE},
        )
    )
    row = _row_of(result, result.selected)
    if row is not None:
        fig.add_trace(
            go.Scatter(
                x=[str(row[param]) if categorical else row[param]],
                y=[row[column]],
                mode="markers",
                name=f"selected trial #{result.selected}",
                marker={"symbol": "star", "size": 14, "color": _WIN},
            )
        )
    _layout(fig)
    fig.update_xaxes(title_text=param, type="category" if categorical else None)
    fig.update_yaxes(title_text=name, tickformat=_axis_format(name))
    return fig


def _landscape_section(result: OptimizeResult, figures: dict[str, go.Figure]) -> str:
    name = _first_objective(result)[0]
    frame = heatmap_frame(result) if "objective-heatmap" in figures else None
    if frame is not None:
        grid, _, notes = frame
        heading = f"{name} over {grid.columns.name} and {grid.index.name}"
        body = _div(figures["objective-heatmap"], "objective-heatmap")
        return _section(heading, body + _notes([_e(n) for n in notes]))
    if "objective-line" in figures:
        param = next(iter(result.space.dimensions))
        return _section(f"{name} by {param}", _div(figures["objective-line"], "objective-line"))
    return ""


# --- optimisation: Pareto front, history, equity ------------------------------------------------
def pareto_figure(result: OptimizeResult) -> go.Figure | None:
    """The first two objectives of every scored trial: feasible ones faint, infeasible ones
    crossed, the Pareto front (``result.best``) highlighted and, with two objectives, joined.
    ``None`` with one objective."""
    import plotly.graph_objects as go

    if len(result.objectives) < 2:
        return None
    a, b = result.objectives[:2]
    ca, cb = f"value_{a}", f"value_{b}"
    t = result.trials
    if t.empty:
        return None
    t = t[(t.state == COMPLETE) & t[ca].notna() & t[cb].notna()]
    on_front = t.number.isin(result.best)
    feasible = t.feasible.astype(bool)
    hover = (
        f"trial #%{{customdata}}<br>{_e(a)} %{{x:{_hover(a)}}}<br>{_e(b)} %{{y:{_hover(b)}}}"
        "<extra></extra>"
    )
    fig = go.Figure()
    groups = (
        (t[feasible & ~on_front], "feasible trials", {"color": _GREY, "opacity": 0.45}, "markers"),
        (
            t[~feasible],
            "infeasible trials",
            {"color": _LOSS, "symbol": "x", "opacity": 0.5, "size": 7},
            "markers",
        ),
        (
            t[on_front].sort_values([ca, cb]),
            f"Pareto front ({int(on_front.sum())})",
            {"color": _BLUE, "size": 10, "line": {"width": 1, "color": "#ffffff"}},
            "lines+markers" if len(result.objectives) == 2 else "markers",
        ),
    )
    for frame, name, marker, mode in groups:
        if frame.empty and "front" not in name:
            continue
        fig.add_trace(
            go.Scatter(
                x=frame[ca],
                y=frame[cb],
                mode=mode,
                name=name,
                customdata=frame.number,
                marker=marker,
                line={"color": _BLUE, "width": 1.5} if "lines" in mode else None,
                hovertemplate=hover,
            )
        )
    row = _row_of(result, result.selected)
    if row is not None:
        fig.add_trace(
            go.Scatter(
                x=[row[ca]],
                y=[row[cb]],
                mode="markers",
                name=f"selected trial #{result.selected}",
                marker={"symbol": "circle-open", "size": 20, "color": _WIN, "line": {"width": 3}},
                hoverinfo="name",
            )
        )
    _layout(fig, hovermode="closest")
    fig.update_layout(height=440)
    fig.update_xaxes(title_text=_objective_labels(result)[0], tickformat=_axis_format(a))
    fig.update_yaxes(title_text=_objective_labels(result)[1], tickformat=_axis_format(b))
    return fig


def _pareto_note(result: OptimizeResult) -> list[str]:
    notes = ["Hover a point for its trial number; the front is listed under Pareto front above."]
    if len(result.objectives) > 2:
        notes.append(
            f"The front is non-dominated on all {len(result.objectives)} objectives; the chart "
            "shows the first two, so some front points may look dominated here."
        )
    return notes


def history_figure(result: OptimizeResult) -> go.Figure | None:
    """The first objective by trial number (feasible dots, infeasible crosses) and the running
    best over the feasible trials."""
    import plotly.graph_objects as go

    t = _scored(result).sort_values("number")
    if t.empty:
        return None
    name, column, higher = _first_objective(result)
    ok = t[t.feasible.astype(bool)]
    fig = go.Figure()
    for frame, label, marker in (
        (ok, "feasible trials", {"color": _GREY, "opacity": 0.6, "size": 6}),
        (t[~t.feasible.astype(bool)], "infeasible", {"color": _LOSS, "symbol": "x", "size": 6}),
    ):
        if not frame.empty:
            fig.add_trace(
                go.Scatter(
                    x=frame.number,
                    y=frame[column],
                    mode="markers",
                    name=label,
                    marker=marker,
                    hovertemplate=f"trial #%{{x}}: %{{y:{_hover(name)}}}<extra></extra>",
                )
            )
    if not ok.empty:
        values = ok[column].to_numpy(dtype=float)
        best = np.maximum.accumulate(values) if higher else np.minimum.accumulate(values)
        fig.add_trace(
            go.Scatter(
                x=ok.number,
                y=best,
                mode="lines",
                name="best so far",
                line={"color": _BLUE, "shape": "hv", "width": 2},
            )
        )
    _layout(fig, hovermode="closest")
    fig.update_xaxes(title_text="Trial number")
    fig.update_yaxes(title_text=name, tickformat=_axis_format(name))
    return fig


def _history_note(result: OptimizeResult) -> list[str]:
    name = _first_objective(result)[0]
    note = f"The best so far is over feasible trials, on {_e(name)}."
    if len(result.objectives) > 1:
        note += " With several objectives it follows the first alone; the search trades them off."
    if result.space.optimize.sampler == "grid":
        note += " A grid runs every combination in order: the history shows the grid's order."
    return [note]


def _cloud(result: OptimizeResult) -> list[int]:
    """Up to :data:`MAX_CLOUD_CURVES` other trials with equity, spread over the ranking."""
    ranked = [int(n) for n in _ranked(result).number]
    ranked += [int(c) for c in result.equity.columns if int(c) not in set(ranked)]
    others = [n for n in ranked if n != result.selected and n in result.equity.columns]
    if len(others) <= MAX_CLOUD_CURVES:
        return others
    picks = np.unique(np.linspace(0, len(others) - 1, MAX_CLOUD_CURVES).round().astype(int))
    return [others[i] for i in picks]


def equity_figure(result: OptimizeResult) -> go.Figure | None:
    """The selected trial's equity over a faint cloud of other trials'."""
    import plotly.graph_objects as go

    eq = result.equity
    if eq.empty:
        return None
    x = np.asarray(_dates(eq.index), dtype=object)
    n = len(x)
    thin = np.unique(np.linspace(0, n - 1, min(n, CLOUD_POINTS)).round().astype(int))
    fig = go.Figure()
    for k, number in enumerate(_cloud(result)):
        fig.add_trace(
            go.Scatter(
                x=list(x[thin]),
                y=eq[number].to_numpy(dtype=np.float32)[thin],
                mode="lines",
                name="other trials",
                legendgroup="cloud",
                showlegend=k == 0,
                line={"color": _GREY, "width": 1},
                opacity=0.25,
                hovertemplate=f"trial #{number}: %{{y:,.0f}}<extra></extra>",
            )
        )
    if result.selected in eq.columns:
        fig.add_trace(
            go.Scatter(
                x=list(x),
                y=eq[result.selected].to_numpy(dtype=float).round(2),
                mode="lines",
                name=f"selected trial #{result.selected}",
                line={"color": _BLUE, "width": 2},
                hovertemplate="%{x|%Y-%m-%d}: %{y:,.2f}<extra></extra>",
            )
        )
    _layout(fig, hovermode="closest")
    fig.update_layout(height=420)
    fig.update_yaxes(title_text="Equity")
    fig.update_xaxes(title_text="Time (UTC)")
    return fig


def _equity_note(result: OptimizeResult) -> list[str]:
    others = len(_cloud(result))
    total = max(len(result.equity.columns) - 1, 0)
    spread = f", spread over the ranking, out of {total:,}" if others < total else ""
    return [
        f"Equity at the end of each period. Grey: {others:,} other trials{spread}, drawn with "
        f"at most {CLOUD_POINTS} points each."
    ]


# --- walk-forward -------------------------------------------------------------------------------
_TIMELINE_NOTE = [
    "One row per fold: the training window (blue), where the search ran, and the test window "
    "that follows, green when the selected params gained out of sample, red when they lost, "
    "grey when the fold had no out-of-sample run. Hover for the dates; ends are exclusive."
]
_STITCH_NOTE = [
    "The test windows' returns chained in time order, from the initial cash; each fold runs "
    "until the next fold's test window starts. Dotted lines mark where a fold's test begins."
]
_FOLD_OF_NOTE = [
    f"Each fold's search judged on its own training window: DSR at or above {DSR_THRESHOLD:g} "
    f"(green line) suggests a real edge; PBO at or above {PBO_HIGH:g} (red line) says the "
    "selection was no better than a coin flip."
]


def _walkforward_rows(result: WalkForwardResult) -> list[tuple[str, str]]:
    s = result.settings
    settings = result.space.optimize
    step = _length(s.step) if s.step is not None else f"{_length(s.test)} (the test window)"
    rows = [
        ("Name", result.name),
        ("Strategy", result.strategy_id),
        ("Engine", result.engine),
        ("Sampler", settings.sampler),
        ("Objectives", ", ".join(settings.objectives)),
        ("Constraints", ", ".join(str(c) for c in settings.constraints) or _NONE),
    ]
    rows += [(f"Searched: {n}", _dimension(d)) for n, d in result.space.dimensions.items()]
    rows += [
        ("Train window", _length(s.train)),
        ("Test window", _length(s.test)),
        ("Step", step),
        ("Anchored", "yes: every training window starts at the first bar" if s.anchored else "no"),
        ("Folds", f"{len(result.folds):,}"),
        ("Trials", f"{sum(f.n_trials for f in result.folds):,} over all folds"),
        ("Time", f"{result.seconds:,.1f} s, executor {result.executor} × {result.workers}"),
    ]
    return rows


def _oos_summary(result: WalkForwardResult) -> str:
    oos = result.oos
    if "note" in oos:
        return f"<p>{_e(oos['note'])}.</p>"
    psr = oos.get("psr")
    verdict = oos.get("psr_verdict", "")
    grade = _grade(psr, 0.95, 0.5) if psr is not None else ""
    psr_cell = _NONE if psr is None else f"{psr:.3f}"
    rows = [
        ("Total return", _metric("total_return", oos.get("total_return"))),
        ("CAGR", _metric("cagr", oos.get("cagr"))),
        ("Sharpe ratio (annualised)", _metric("sharpe", oos.get("sharpe"))),
        ("Max drawdown", _metric("max_drawdown", oos.get("max_drawdown"))),
        ("Median walk-forward efficiency", _metric("efficiency", oos.get("efficiency"))),
        ("Folds with out-of-sample equity", f"{oos.get('folds_with_oos', 0):,}"),
        ("Folds", f"{len(result.folds):,}"),
    ]
    table = (
        f'<table class="verdicts"><tr><th>PSR</th><td class="value {grade}">{_e(psr_cell)}'
        f'</td><td class="{grade}">{_e(verdict)}</td></tr></table>'
    )
    return (
        table
        + _kv_table(rows, numeric=True)
        + _notes(
            [
                "Walk-forward efficiency: a fold's out-of-sample CAGR over its in-sample CAGR "
                "(folds whose in-sample CAGR is positive); 1 means the test kept the training "
                "pace, 0 or less that it did not."
            ]
        )
    )


def fold_timeline_figure(result: WalkForwardResult) -> go.Figure:
    """A Gantt-like chart: per fold (one row each, fold 0 on top) a bar over the training
    window (trace ``train``) and one over the test window (trace ``test``); each bar's
    ``base`` is its window's start and its length the window in milliseconds."""
    import plotly.graph_objects as go

    folds = result.folds
    labels = [f"fold {f.index}" for f in folds]
    fig = go.Figure()
    for kind in ("train", "test"):
        starts = _naive([getattr(f, f"{kind}_start") for f in folds])
        ends = _naive([getattr(f, f"{kind}_end") for f in folds])
        bars = [getattr(f, f"{kind}_bars") for f in folds]
        if kind == "train":
            colours: Any = _BLUE
        else:
            returns = [f.oos_metrics.get("total_return") for f in folds]
            colours = [_GREY if r is None else _WIN if r > 0 else _LOSS for r in returns]
        custom = [
            [_day(getattr(f, f"{kind}_start")), _day(getattr(f, f"{kind}_end")), f"{b:,}", extra]
            for f, b, extra in zip(folds, bars, _timeline_extra(result, kind), strict=True)
        ]
        fig.add_trace(
            go.Bar(
                y=labels,
                base=starts,
                x=((ends - starts) / pd.Timedelta(milliseconds=1)).to_numpy(dtype=float),
                orientation="h",
                name=kind,
                marker={"color": colours},
                opacity=0.85,
                customdata=custom,
                hovertemplate=f"%{{y}} {kind}: %{{customdata[0]}} → %{{customdata[1]}} "
                "(%{customdata[2]} bars)%{customdata[3]}<extra></extra>",
            )
        )
    _layout(fig, barmode="overlay", bargap=0.25, hovermode="closest")
    fig.update_layout(height=max(240, 26 * len(folds) + 120))
    fig.update_xaxes(type="date", title_text="Time (UTC)")
    fig.update_yaxes(autorange="reversed")
    return fig


def _timeline_extra(result: WalkForwardResult, kind: str) -> list[str]:
    names = result.param_names
    out = []
    for f in result.folds:
        if kind == "train":
            params = ", ".join(f"{n}={_fmt(f.params.get(n))}" for n in names) if f.params else ""
            out.append(f"<br>selected {params}" if params else "<br>no selection")
        else:
            ret = f.oos_metrics.get("total_return")
            out.append(f"<br>OOS return {_metric('total_return', ret)}" if ret is not None else "")
    return out


def oos_equity_figure(result: WalkForwardResult) -> go.Figure:
    """The stitched out-of-sample equity, a dotted line at each fold's test start."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if not result.stitched.empty:
        fig.add_trace(
            go.Scatter(
                x=_dates(result.stitched.index),
                y=result.stitched.to_numpy(dtype=float).round(2),
                mode="lines",
                name="out-of-sample equity",
                line={"color": _BLUE, "width": 2},
                hovertemplate="%{x|%Y-%m-%d}: %{y:,.2f}<extra></extra>",
            )
        )
    for f in result.folds:
        if f.oos_equity.empty:
            continue
        at = _naive([f.test_start])[0]
        fig.add_vline(
            x=at,
            line={"color": _GREY, "dash": "dot", "width": 1},
            annotation_text=str(f.index),
            annotation_position="top right",
            annotation_font={"color": "#59636e", "size": 10},
        )
    fig.add_hline(y=result.initial_cash, line={"color": _GREY, "width": 1})
    _layout(fig, hovermode="x unified", showlegend=False)
    fig.update_layout(height=400)
    fig.update_yaxes(title_text="Equity")
    fig.update_xaxes(title_text="Time (UTC)")
    return fig


def is_oos_figure(result: WalkForwardResult) -> go.Figure:
    """Per fold, grouped bars of the in-sample and out-of-sample Sharpe ratio (top) and CAGR
    (bottom) of the selected params."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    labels = [str(f.index) for f in result.folds]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for row, key in ((1, "sharpe"), (2, "cagr")):
        for side, colour in (("is", _GREY), ("oos", _BLUE)):
            metrics = "is_metrics" if side == "is" else "oos_metrics"
            values = [_finite(getattr(f, metrics).get(key)) for f in result.folds]
            fig.add_trace(
                go.Bar(
                    x=labels,
                    y=values,
                    name="in sample" if side == "is" else "out of sample",
                    legendgroup=side,
                    showlegend=row == 1,
                    marker={"color": colour},
                    hovertemplate=f"fold %{{x}} {side.upper()} {key}: "
                    f"%{{y:{_hover(key)}}}<extra></extra>",
                ),
                row=row,
                col=1,
            )
    _layout(fig, barmode="group", hovermode="closest")
    fig.update_layout(height=520)
    fig.update_yaxes(title_text="Sharpe ratio", row=1, col=1)
    fig.update_yaxes(title_text="CAGR", tickformat=".0%", row=2, col=1)
    fig.update_xaxes(title_text="Fold", type="category", row=2, col=1)
    return fig


def _finite(value: Any) -> float | None:
    return None if _is_missing(value) or not math.isfinite(float(value)) else float(value)


def stability_figure(result: WalkForwardResult) -> go.Figure:
    """One row per searched param: the value each fold selected, the y axis spanning the
    param's range (its choices for a categorical param)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    dims = result.space.dimensions
    names = list(dims)
    fig = make_subplots(
        rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names, vertical_spacing=0.12
    )
    folds = [f.index for f in result.folds]
    for row, name in enumerate(names, start=1):
        dim = dims[name]
        values = [f.params.get(name) if f.params else None for f in result.folds]
        if isinstance(dim, Categorical):
            values = [None if v is None else str(v) for v in values]
        fig.add_trace(
            go.Scatter(
                x=folds,
                y=values,
                mode="lines+markers",
                name=name,
                showlegend=False,
                line={"color": _BLUE},
                hovertemplate=f"fold %{{x}}: {_e(name)} %{{y}}<extra></extra>",
            ),
            row=row,
            col=1,
        )
        if isinstance(dim, Categorical):
            fig.update_yaxes(
                type="category", categoryarray=[str(c) for c in dim.choices], row=row, col=1
            )
        else:
            pad = (dim.high - dim.low) * 0.05 or 1
            fig.update_yaxes(range=[dim.low - pad, dim.high + pad], row=row, col=1)
    _layout(fig, hovermode="closest")
    fig.update_layout(height=140 + 170 * len(names))
    fig.update_xaxes(title_text="Fold", dtick=1, row=len(names), col=1)
    return fig


def fold_overfitting_figure(result: WalkForwardResult) -> go.Figure:
    """Per fold, the DSR and the PBO of its search, with the verdicts' thresholds."""
    import plotly.graph_objects as go

    labels = [str(f.index) for f in result.folds]
    fig = go.Figure()
    for key, colour in (("dsr", _BLUE), ("pbo", _AMBER)):
        values = []
        for f in result.folds:
            stat = getattr(f.overfitting, key, None) if f.overfitting is not None else None
            values.append(None if stat is None else float(getattr(stat, key)))
        fig.add_trace(
            go.Bar(
                x=labels,
                y=values,
                name=key.upper(),
                marker={"color": colour},
                hovertemplate=f"fold %{{x}} {key.upper()}: %{{y:.3f}}<extra></extra>",
            )
        )
    fig.add_hline(y=DSR_THRESHOLD, line={"color": _WIN, "dash": "dot", "width": 1})
    fig.add_hline(y=PBO_HIGH, line={"color": _LOSS, "dash": "dot", "width": 1})
    _layout(fig, barmode="group", hovermode="closest")
    fig.update_layout(height=320)
    fig.update_yaxes(range=[0, 1], title_text="Probability")
    fig.update_xaxes(type="category", title_text="Fold")
    return fig


def _folds_table(result: WalkForwardResult) -> str:
    frame = result.folds_frame()
    if frame.empty:
        return "<p>No folds.</p>"
    params = result.param_names
    errors = frame["error"].map(lambda e: "" if _is_missing(e) else str(e))
    header = ["fold", "train", "test", "selected", *params]
    header += ["IS Sharpe", "OOS Sharpe", "IS return", "OOS return", "OOS max DD"]
    header += ["WFE", "DSR", "PBO"] + (["note"] if errors.any() else [])
    rows = []
    for (_, r), error in zip(frame.iterrows(), errors, strict=True):
        cells = [
            str(r["fold"]),
            f"{_day(r['train_start'])} → {_day(r['train_end'])}",
            f"{_day(r['test_start'])} → {_day(r['test_end'])}",
            _NONE if _is_missing(r["selected"]) else f"#{int(r['selected'])}",
            *(_fmt(r[p]) for p in params),
            *(_metric(k, r[k]) for k in ("is_sharpe", "oos_sharpe", "is_total_return")),
            *(_metric(k, r[k]) for k in ("oos_total_return", "oos_max_drawdown", "efficiency")),
            _metric("dsr", r["dsr"]),
            _metric("pbo", r["pbo"]),
        ]
        rows.append(cells + ([error] if errors.any() else []))
    align = "rwwr" + "r" * (len(params) + 8) + ("l" if errors.any() else "")
    note = _notes(
        [
            "IS: the selected trial on its training window; OOS: the same params on the test "
            "window; WFE: OOS CAGR / IS CAGR. Window ends are exclusive; the timeline's hover "
            "has each window's number of bars."
        ]
    )
    return note + _table(header, rows, align)


def _stability_table(result: WalkForwardResult) -> str:
    st = result.stability
    if st.empty:
        return "<p>No param was searched.</p>"
    header = ["param", "chosen per fold", "changes", "most common", "mean", "std", "std / range"]
    header.append("verdict")
    rows = []
    for _, r in st.iterrows():
        chosen = [f.params.get(r["param"]) for f in result.folds if f.params is not None]
        rows.append(
            [
                str(r["param"]),
                ", ".join(_fmt(v) for v in chosen) or _NONE,
                f"{int(r['changes']):,}",
                _share(r.get("mode_share")),
                _number(r.get("mean")),
                _number(r.get("std")),
                _share(r.get("range_share")),
                "" if _is_missing(r.get("verdict")) else str(r["verdict"]),
            ]
        )
    note = _notes(
        [
            "Verdict of a numeric param: stable when the chosen values' standard deviation is "
            "under 15% of the searched range, moves under 30%, unstable above; of a categorical "
            "param: stable when one choice wins at least 75% of the folds. Unstable params mean "
            "each window prefers different settings: the edge is not in one place."
        ]
    )
    return _table(header, rows, "llrrrrrl") + note


def _share(value: Any) -> str:
    return _NONE if _is_missing(value) else f"{float(value):.0%}"


def _number(value: Any) -> str:
    return _NONE if _is_missing(value) else f"{float(value):,.4g}"

"""What the outputs and the HTML report say about the risk control: ``risk_events.csv``, the
``"risk"`` key of ``metrics.json``, halt/kill/resume markers on the equity curve, the "Risk
controls" section and the rolling VaR chart (checked against :mod:`tradeloom.risk.var`).

The bars are daily from 2024-01-01 (see ``helpers.bars``); market orders fill at the next bar's
open, and a scheduled kill or resume runs after the strategies of the first bar at or after
its time.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tradeloom
from tradeloom.data import MarketData
from tradeloom.engine.result import (
    EQUITY_COLUMNS,
    ORDER_COLUMNS,
    RISK_EVENT_COLUMNS,
    BacktestResult,
    fills_frame,
    risk_events_frame,
    trades_frame,
)
from tradeloom.report import compute_metrics
from tradeloom.report.html import (
    EQUITY_PLOT_ID,
    MAX_PLOT_POINTS,
    MAX_RISK_EVENT_ROWS,
    VAR_PLOT_ID,
    VAR_WINDOW,
    render_html_report,
    rolling_var,
)
from tradeloom.report.outputs import OUTPUT_FILES, metrics_json, risk_summary, write_outputs
from tradeloom.risk.control import RiskControl, RiskEvent
from tradeloom.risk.rules import MaxOrderQuantity
from tradeloom.risk.var import historical_var, parametric_var

from helpers import Scripted, bars

EVIL = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


# --- building runs -------------------------------------------------------------------------------
def walk(n: int, seed: int = 3) -> pd.DataFrame:
    """``n`` daily bars of a random walk around 100 (closes never near zero)."""
    rng = np.random.default_rng(seed)
    close = 100.0 + np.cumsum(rng.normal(0.0, 1.0, n)).round(2)
    close = np.maximum(close, 20.0)
    rows = [(c, c + 1.0, c - 1.0, c) for c in close]
    return bars(rows)


def ns(frame: pd.DataFrame, i: int) -> int:
    return int(frame.index.as_unit("ns").asi8[i])


def max_quantity() -> MaxOrderQuantity:
    rule = MaxOrderQuantity(max_quantity=1)
    rule.name = "max-order-quantity"  # what the runner does with the registered name
    return rule


def rejects_run() -> tuple[BacktestResult, pd.DataFrame]:
    """Orders of 5, 1 and 3 units on bars 0-2 against a 1-unit limit: two rejects."""
    frame = walk(40)
    s = Scripted(
        {0: lambda c: c.buy("X", 5), 1: lambda c: c.buy("X", 1), 2: lambda c: c.buy("X", 3)}
    )
    result = tradeloom.run_backtest(MarketData({"X": frame}), [("s", s)], risk=[max_quantity()])
    return result, frame


def kill_run(reason: str = f"test kill {EVIL}", n: int = 60) -> tuple[BacktestResult, pd.DataFrame]:
    """Buys one unit every other bar; the kill switch on bar 5, an operator resume on bar 10."""
    frame = walk(n)
    control = RiskControl([max_quantity()])
    control.schedule(ns(frame, 5), lambda c: c.kill(reason))
    control.schedule(ns(frame, 10), lambda c: c.resume())
    s = Scripted({i: (lambda c: c.buy("X", 1)) for i in range(0, n, 2)})
    result = tradeloom.run_backtest(MarketData({"X": frame}), [("s", s)], risk=control)
    return result, frame


def synthetic(n: int, events: Sequence[RiskEvent] = (), seed: int = 11) -> BacktestResult:
    """A result built by hand: ``n`` hourly bars of a noisy equity curve and ``events``."""
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="ts")
    rng = np.random.default_rng(seed)
    equity_values = 100_000.0 + np.cumsum(rng.normal(2.0, 150.0, n))
    equity = pd.DataFrame(
        {
            "cash": equity_values,
            "position_value": 0.0,
            "equity": equity_values,
            "gross_exposure": 0.0,
        },
        index=index,
        columns=EQUITY_COLUMNS,
    )
    trades, fills = trades_frame(()), fills_frame(())
    return BacktestResult(
        run_id="run-risk",
        equity=equity,
        trades=trades,
        orders=pd.DataFrame(columns=ORDER_COLUMNS),
        fills=fills,
        metrics=compute_metrics(equity, trades, fills, initial_cash=100_000.0),
        initial_cash=100_000.0,
        currency="EUR",
        conventions=["Market orders fill at the next bar's open"],
        risk_events=risk_events_frame(events),
    )


def figure_data(text: str, div_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The traces and the layout passed to ``Plotly.newPlot`` for the div ``div_id``."""
    match = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*', text)
    assert match is not None, f"no figure {div_id}"
    decoder = json.JSONDecoder()
    traces, end = decoder.raw_decode(text, match.end())
    layout, _ = decoder.raw_decode(text, text.index("{", end))
    return traces, layout


def values(array: Any) -> np.ndarray:
    """A plotly array: a list, or a typed array ``{"dtype", "bdata"}`` (plotly >= 6)."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


def stamps(xs: list[str]) -> list[pd.Timestamp]:
    """Plotly's date strings (its precision varies) as timestamps."""
    return [pd.Timestamp(x) for x in xs]


def trace(traces: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [t for t in traces if t.get("name") == name]
    return found


# --- risk_events.csv and metrics.json ------------------------------------------------------------
def test_risk_events_csv_lists_every_reject(tmp_path: Path) -> None:
    result, _ = rejects_run()
    paths = write_outputs(result, tmp_path)
    assert "risk_events.csv" in OUTPUT_FILES
    lines = paths["risk_events.csv"].read_text(encoding="utf-8").splitlines()
    assert lines == [
        ",".join(RISK_EVENT_COLUMNS),
        "2024-01-01 00:00:00+00:00,reject,strategy:s,,max-order-quantity,"
        "order quantity over the limit,1.0,5.0,s-1,rule",
        "2024-01-03 00:00:00+00:00,reject,strategy:s,,max-order-quantity,"
        "order quantity over the limit,1.0,3.0,s-3,rule",
    ]
    # The 1-unit order went through; the two others were refused.
    status = dict(zip(result.orders["client_order_id"], result.orders["status"], strict=True))
    assert status == {"s-1": "rejected", "s-2": "filled", "s-3": "rejected"}


def test_metrics_json_counts_rejects(tmp_path: Path) -> None:
    result, _ = rejects_run()
    data = json.loads(write_outputs(result, tmp_path)["metrics.json"].read_text())
    assert data["risk"] == {
        "rejects": {"max-order-quantity": 2},
        "halts": [],
        "resumes": 0,
        "exits": 0,
        "alerts": 0,
    }


def test_metrics_json_lists_halts_and_resumes() -> None:
    result, _ = kill_run()
    risk = json.loads(metrics_json(result))["risk"]
    # The kill on bar 5 (2024-01-06) refuses the orders of bars 6, 8 and 10 (the resume runs
    # after the strategies of bar 10).
    assert risk == {
        "rejects": {"trading-state": 3},
        "halts": [
            {
                "time": "2024-01-06T00:00:00+00:00",
                "scope": "global",
                "reason": f"test kill {EVIL}",
                "by": "operator",
            }
        ],
        "resumes": 1,
        "exits": 0,
        "alerts": 0,
    }


def test_risk_summary_counts_each_kind() -> None:
    day = 86_400 * 10**9
    events = risk_events_frame(
        [
            RiskEvent(0, "reject", "strategy:a", "too big", "max-order-quantity", 1.0, 5.0, "a-1"),
            RiskEvent(day, "state", "strategy:a", "loss limit", "daily-loss", state="halted"),
            RiskEvent(day, "exit", "strategy:a", "flatten", "flatten", by="runner"),
            RiskEvent(day, "alert", "global", "throttled", "throttle"),
            RiskEvent(2 * day, "state", "instrument:X", "stale", state="reducing"),
            RiskEvent(3 * day, "state", "strategy:a", "ok", state="active", by="operator"),
            RiskEvent(3 * day, "operator", "global", "limits changed", "daily-loss", by="operator"),
            RiskEvent(4 * day, "kill", "global", "panic", state="halted", by="operator"),
            RiskEvent(4 * day, "reject", "strategy:a", "halted", "trading-state"),
            RiskEvent(5 * day, "reject", "strategy:a", "too big", "max-order-quantity", 1.0, 2.0),
        ]
    )
    summary = risk_summary(events)
    assert summary == {
        "rejects": {"max-order-quantity": 2, "trading-state": 1},
        "halts": [
            {
                "time": "1970-01-02T00:00:00+00:00",
                "scope": "strategy:a",
                "reason": "loss limit",
                "by": "rule",
            },
            {
                "time": "1970-01-05T00:00:00+00:00",
                "scope": "global",
                "reason": "panic",
                "by": "operator",
            },
        ],
        "resumes": 1,
        "exits": 1,
        "alerts": 1,
    }
    assert risk_summary(risk_events_frame(())) == {
        "rejects": {},
        "halts": [],
        "resumes": 0,
        "exits": 0,
        "alerts": 0,
    }


def test_outputs_are_deterministic(tmp_path: Path) -> None:
    first = write_outputs(kill_run()[0], tmp_path / "a")
    second = write_outputs(kill_run()[0], tmp_path / "b")
    for name in ("risk_events.csv", "metrics.json"):
        assert first[name].read_bytes() == second[name].read_bytes(), name
    rows = list(csv.DictReader(io.StringIO(first["risk_events.csv"].read_text())))
    assert [(r["kind"], r["state"], r["by"]) for r in rows] == [
        ("kill", "halted", "operator"),
        ("reject", "", "rule"),
        ("reject", "", "rule"),
        ("reject", "", "rule"),
        ("state", "active", "operator"),
    ]
    assert rows[0]["reason"] == f"test kill {EVIL}"  # CSV keeps the text as it was


def test_a_run_without_risk_events(tmp_path: Path) -> None:
    frame = walk(40)
    result = tradeloom.run_backtest(
        MarketData({"X": frame}), [("s", Scripted({0: lambda c: c.buy("X", 1)}))]
    )
    paths = write_outputs(result, tmp_path)
    assert paths["risk_events.csv"].read_text() == ",".join(RISK_EVENT_COLUMNS) + "\n"
    assert json.loads(paths["metrics.json"].read_text())["risk"] == risk_summary(result.risk_events)
    text = paths["report.html"].read_text()
    assert "<p>No risk events.</p>" in text
    traces, layout = figure_data(text, EQUITY_PLOT_ID)
    assert not [t for t in traces if t.get("name") in {"Halt / kill", "Resume"}]
    assert not layout.get("shapes")


# --- the HTML report: markers and the risk controls section ---------------------------------------
@pytest.fixture(scope="module")
def killed() -> tuple[BacktestResult, pd.DataFrame, str]:
    result, frame = kill_run()
    return result, frame, render_html_report(result)


def test_halt_and_resume_are_marked_on_the_equity_curve(
    killed: tuple[BacktestResult, pd.DataFrame, str],
) -> None:
    result, _, text = killed
    traces, layout = figure_data(text, EQUITY_PLOT_ID)
    equity = result.equity["equity"]
    halt, resume = trace(traces, "Halt / kill"), trace(traces, "Resume")
    assert stamps(halt["x"]) == [pd.Timestamp("2024-01-06")]
    assert stamps(resume["x"]) == [pd.Timestamp("2024-01-11")]
    assert values(halt["y"]).tolist() == [equity.iloc[5]]
    assert values(resume["y"]).tolist() == [equity.iloc[10]]
    assert halt["marker"]["color"] == "#cf222e" and resume["marker"]["color"] == "#1a7f37"
    (hover,) = halt["hovertext"]
    assert "Kill switch: halted" in hover and "global" in hover and "by operator" in hover
    assert f"reason: test kill {ESCAPED}" in hover
    assert "operator resume" in resume["hovertext"][0]
    lines = [
        (pd.Timestamp(s["x0"]), s["x1"] == s["x0"], s["line"]["color"]) for s in layout["shapes"]
    ]
    assert lines == [
        (pd.Timestamp("2024-01-06"), True, "#cf222e"),
        (pd.Timestamp("2024-01-11"), True, "#1a7f37"),
    ]
    assert all(s["yref"] == "y domain" for s in layout["shapes"])  # the equity row only


def test_risk_controls_section(killed: tuple[BacktestResult, pd.DataFrame, str]) -> None:
    _, _, text = killed
    section = text[text.index("<h2>Risk controls</h2>") : text.index("<h2>Trades</h2>")]
    assert "<p>5 risk events." in section
    assert '<tr><th>Halts (incl. kill switch)</th><td class="num">1</td></tr>' in section
    assert '<tr><th>Resumes</th><td class="num">1</td></tr>' in section
    assert (
        '<tr><th>Protective exits and flattening orders</th><td class="num">0</td></tr>' in section
    )
    assert '<tr><td>trading-state</td><td class="num">3</td></tr>' in section
    assert (
        f"<tr><td>2024-01-06 00:00:00</td><td>global</td><td>test kill {ESCAPED}</td>"
        "<td>operator</td></tr>"
    ) in section
    assert section.count("<td>reject</td>") == 3
    assert "<td>2024-01-11 00:00:00</td><td>state</td><td>global</td><td>active</td>" in section


def test_reasons_are_escaped(killed: tuple[BacktestResult, pd.DataFrame, str]) -> None:
    _, _, text = killed
    assert EVIL not in text
    assert "<script>alert" not in text
    assert text.count(ESCAPED) >= 3  # halts table, events table, orders summary
    # The hover text is HTML-escaped, then JSON-escaped by plotly inside the <script>.
    assert "reason: test kill &lt;script&gt;alert(1)&lt;\\u002fscript&gt;" in text
    assert text.count("* plotly.js v") == 1


def test_report_is_deterministic(killed: tuple[BacktestResult, pd.DataFrame, str]) -> None:
    result, _, text = killed
    assert render_html_report(result) == text
    again, _ = kill_run()
    assert render_html_report(again).replace(again.run_id, "RUN") == text.replace(
        result.run_id, "RUN"
    )


def test_long_event_lists_are_capped() -> None:
    hour = 3_600 * 10**9
    start = int(pd.Timestamp("2024-01-01", tz="UTC").value)
    events = [
        RiskEvent(
            start + i * hour, "reject", "strategy:s", "too big", "max-order-quantity", 1.0, 2.0
        )
        for i in range(120)
    ]
    text = render_html_report(synthetic(200, events))
    section = text[text.index("<h2>Risk controls</h2>") :]
    assert f"120 risk events; the first {MAX_RISK_EVENT_ROWS} are listed." in section
    assert section.count("<td>reject</td>") == MAX_RISK_EVENT_ROWS
    assert "<p>No scope was halted.</p>" in section


def test_markers_survive_decimation() -> None:
    """On a decimated curve the marker still sits at the event time, on the equity of the last
    bar at or before it (even between bars)."""
    n = 3 * MAX_PLOT_POINTS
    result = synthetic(n, [])
    index = result.equity.index
    halt_at = index[12_345] + pd.Timedelta(minutes=30)  # between two bars
    events = [
        RiskEvent(
            int(halt_at.value),
            "state",
            "strategy:s",
            f"loss {EVIL}",
            "daily-loss",
            5e3,
            6e3,
            state="halted",
        ),
        RiskEvent(
            int(index[20_001].value), "state", "strategy:s", "ok", state="active", by="operator"
        ),
    ]
    result.risk_events = risk_events_frame(events)
    text = render_html_report(result)
    assert "Curves are drawn with" in text
    traces, _ = figure_data(text, EQUITY_PLOT_ID)
    halt, resume = trace(traces, "Halt / kill"), trace(traces, "Resume")
    assert stamps(halt["x"]) == [halt_at.tz_localize(None)]
    assert values(halt["y"]).tolist() == [result.equity["equity"].iloc[12_345]]
    assert values(resume["y"]).tolist() == [result.equity["equity"].iloc[20_001]]
    assert "by rule (rule daily-loss)" in halt["hovertext"][0]
    assert f"reason: loss {ESCAPED}" in halt["hovertext"][0]


# --- VaR over time -----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [40, 150, 400])
def test_rolling_var_agrees_with_risk_var_on_the_last_window(n: int) -> None:
    pnl = np.diff(np.asarray(synthetic(n + 1).equity["equity"]))
    historical, parametric = rolling_var(pnl)
    last = pnl[-VAR_WINDOW:]
    assert parametric[-1] == pytest.approx(parametric_var(last, 0.99).var, abs=1e-9)
    if n >= 100:
        assert historical[-1] == pytest.approx(historical_var(last, 0.99).var, abs=1e-9)
    else:
        assert np.isnan(historical).all()  # historical_var refuses fewer than 100 samples
        with pytest.raises(ValueError):
            historical_var(last, 0.99)


def test_rolling_var_agrees_on_every_window() -> None:
    pnl = np.diff(np.asarray(synthetic(700).equity["equity"]))
    historical, parametric = rolling_var(pnl)
    assert np.isnan(parametric[:29]).all() and np.isnan(historical[:99]).all()
    for t in (29, 99, 100, 101, 200, 201, 248, 249, 250, 500, len(pnl) - 1):
        window = pnl[max(0, t - VAR_WINDOW + 1) : t + 1]
        assert parametric[t] == pytest.approx(parametric_var(window).var, abs=1e-9)
        if len(window) >= 100:
            assert historical[t] == pytest.approx(historical_var(window).var, abs=1e-9)
    ends = np.array([30, 99, 250, 600])
    sub_h, sub_p = rolling_var(pnl, ends=ends)
    np.testing.assert_array_equal(sub_h, historical[ends])
    np.testing.assert_array_equal(sub_p, parametric[ends])


def test_var_chart_plots_the_rolling_var_of_the_equity() -> None:
    result = synthetic(400)
    text = render_html_report(result)
    traces, layout = figure_data(text, VAR_PLOT_ID)
    pnl = result.equity["equity"].diff().dropna().to_numpy()
    hist, par = trace(traces, "Historical VaR 99%"), trace(traces, "Parametric (normal) VaR 99%")
    last = pnl[-VAR_WINDOW:]
    assert values(hist["y"])[-1] == pytest.approx(historical_var(last, 0.99).var, abs=1e-9)
    assert values(par["y"])[-1] == pytest.approx(parametric_var(last, 0.99).var, abs=1e-9)
    index = result.equity.index.tz_localize(None)
    assert pd.Timestamp(par["x"][0]) == index[30]  # from 30 one-bar P&Ls on
    assert pd.Timestamp(hist["x"][0]) == index[100]  # from 100 on, as historical_var needs
    assert pd.Timestamp(par["x"][-1]) == index[-1]
    assert "EUR" in layout["yaxis"]["title"]["text"]
    assert (
        "Rolling 250-bar historical and parametric VaR of the equity's one-bar P&amp;L, 99%" in text
    )
    assert text.count("* plotly.js v") == 1


def test_var_chart_is_decimated_like_the_equity() -> None:
    n = 2 * MAX_PLOT_POINTS + 7
    result = synthetic(n)
    text = render_html_report(result)
    equity_traces, _ = figure_data(text, EQUITY_PLOT_ID)
    var_traces, _ = figure_data(text, VAR_PLOT_ID)
    drawn = trace(equity_traces, "Equity")["x"]
    par = trace(var_traces, "Parametric (normal) VaR 99%")
    assert len(drawn) <= MAX_PLOT_POINTS
    assert set(stamps(par["x"])) <= set(stamps(drawn))
    assert pd.Timestamp(par["x"][-1]) == pd.Timestamp(drawn[-1])
    pnl = result.equity["equity"].diff().dropna().to_numpy()
    assert values(par["y"])[-1] == pytest.approx(parametric_var(pnl[-VAR_WINDOW:]).var, abs=1e-9)


@pytest.mark.parametrize(("n", "chart"), [(30, False), (31, True)])
def test_var_chart_needs_31_bars(n: int, chart: bool) -> None:
    text = render_html_report(synthetic(n))
    section = text[text.index("<h2>VaR over time</h2>") : text.index("<h2>Risk controls</h2>")]
    if chart:
        traces, _ = figure_data(text, VAR_PLOT_ID)
        assert len(values(trace(traces, "Parametric (normal) VaR 99%")["y"])) == 1
        assert "No historical VaR" in section
    else:
        assert f'id="{VAR_PLOT_ID}"' not in text
        assert f"No VaR chart: the run has {n} bars" in section
        assert section.count('<p class="note">') == 1

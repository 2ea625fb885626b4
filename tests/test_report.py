"""The HTML report: self-contained, escaped, deterministic, and it renders in a browser."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradeloom.engine.result import (
    EQUITY_COLUMNS,
    FILL_COLUMNS,
    ORDER_COLUMNS,
    TRADE_COLUMNS,
    BacktestResult,
)
from tradeloom.report import compute_metrics, write_html_report
from tradeloom.report.html import MAX_TRADE_MARKERS, render_html_report

from browser import chromium_path, console_errors, render_dom

EVIL = "<script>alert(1)</script>"
CONVENTIONS = [
    "Market orders fill at the next bar's open",
    "Fees: 0.1 % of notional; slippage 5 bps against the trader",
]


def make_trades(n: int, index: pd.DatetimeIndex, symbol: str = "SPY") -> pd.DataFrame:
    rng = np.random.default_rng(7)
    entry = rng.integers(0, len(index) - 2, n)
    held = rng.integers(1, 3, n)
    pnl = rng.normal(5.0, 40.0, n).round(2)
    entry_price = rng.uniform(90, 110, n).round(2)
    return pd.DataFrame(
        {
            "symbol": symbol,
            "side": np.where(pnl > 0, "long", "short"),
            "quantity": 10.0,
            "entry_time": index[entry],
            "entry_price": entry_price,
            "exit_time": index[np.minimum(entry + held, len(index) - 1)],
            "exit_price": (entry_price + pnl / 10).round(2),
            "pnl": pnl,
            "fees": 0.5,
            "return_pct": pnl / (entry_price * 10),
            "bars_held": held,
            "strategy_id": "sma",
        },
        columns=TRADE_COLUMNS,
    )


def make_result(
    *, n_bars: int = 60, n_trades: int = 6, title: str = "SMA cross on SPY"
) -> BacktestResult:
    index = pd.date_range("2024-01-01", periods=n_bars, freq="B", tz="UTC", name="ts")
    steps = np.sin(np.arange(n_bars) / 5.0) * 0.01 + 0.001
    equity_values = 100_000 * np.cumprod(1 + steps)
    exposure = np.where(np.arange(n_bars) % 3 == 0, 0.0, 50_000.0)
    equity = pd.DataFrame(
        {
            "cash": equity_values - exposure,
            "position_value": exposure,
            "equity": equity_values,
            "gross_exposure": exposure,
        },
        index=index,
        columns=EQUITY_COLUMNS,
    )
    trades = make_trades(n_trades, index)
    fills = pd.DataFrame(
        [
            ["f-1", "o-1", "sma", "SPY", "buy", 10.0, 100.0, 0.5, index[1]],
            ["f-2", "o-2", "sma", "SPY", "sell", 10.0, 104.0, 0.5, index[5]],
        ],
        columns=FILL_COLUMNS,
    )
    orders = pd.DataFrame(
        [
            ["o-1", "sma", "SPY", "buy", "market", 10.0, None, None, "gtc", "filled", 10.0,
             100.0, index[0], index[1], ""],
            ["o-2", "sma", "SPY", "sell", "market", 10.0, None, None, "gtc", "filled", 10.0,
             104.0, index[4], index[5], ""],
            ["o-3", "sma", "SPY", "buy", "market", 1e6, None, None, "gtc", "rejected", 0.0,
             None, index[6], index[6], f"insufficient cash {EVIL}"],
            ["o-4", "sma", "SPY", "buy", "limit", 10.0, 90.0, None, "day", "expired", 0.0,
             None, index[7], index[8], "end of day"],
        ],
        columns=ORDER_COLUMNS,
    )  # fmt: skip
    benchmark = pd.Series(400 * np.cumprod(1 + steps * 0.5 + 0.0005), index=index)
    metrics = compute_metrics(equity, trades, fills, initial_cash=100_000.0, benchmark=benchmark)
    return BacktestResult(
        run_id="run-0001",
        equity=equity,
        trades=trades,
        orders=orders,
        fills=fills,
        metrics=metrics,
        initial_cash=100_000.0,
        currency="USD",
        conventions=CONVENTIONS,
        config={
            "name": title,
            "mode": "backtest",
            "strategies": [{"type": "sma-cross", "params": {"fast": 10, "slow": 30}}],
            "data": {"type": "csv", "params": {"path": "data/spy.csv"}},
            "broker": {"type": "simulated", "params": {"slippage_bps": 5.0}},
            "notes": EVIL,
        },
        title=title,
        benchmark=benchmark,
        benchmark_symbol="SPY",
        data_fingerprint="sha256:abc123",
        provenance={"tradeloom": "0.1.0", "python": "3.11", "strategy": EVIL},
    )


class _Links(HTMLParser):
    """Collects tags and every src/href attribute outside script bodies."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in {"src", "href", "srcset", "action", "poster"}:
                self.links.append((tag, name, value or ""))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_html_report(make_result(title=f"SMA {EVIL}"), path)
    return path, path.read_text(encoding="utf-8")


def test_report_is_self_contained(report: tuple[Path, str]) -> None:
    _, text = report
    assert "<script src=" not in text.lower()
    parser = _Links()
    parser.feed(text)
    external = [link for link in parser.links if re.match(r"(https?:)?//", link[2].strip())]
    assert external == []
    assert "link" not in parser.tags  # no stylesheet or font links
    assert "@import" not in text and "url(http" not in text
    # plotly.js is embedded exactly once
    assert text.count("* plotly.js v") == 1
    assert "cdn.plot.ly" not in text.split("* plotly.js v")[0]


def test_report_escapes_user_strings(report: tuple[Path, str]) -> None:
    _, text = report
    assert EVIL not in text
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<title>SMA {escaped}</title>" in text
    assert f"<h1>SMA {escaped}</h1>" in text
    assert f"insufficient cash {escaped}" in text  # reject reason
    assert text.count(escaped) >= 5  # title, h1, reason, config summary + <pre>, provenance


def test_report_content(report: tuple[Path, str]) -> None:
    _, text = report
    assert 'id="equity-plot"' in text
    assert "<h2>Assumptions</h2>" in text
    for line in CONVENTIONS:
        assert f"<li>{line.replace(chr(39), '&#x27;')}</li>" in text
    assert "run-0001" in text
    assert "<th>Sharpe ratio</th>" in text and "<th>Beta</th>" in text
    assert "sma-cross(fast=10, slow=30)" in text  # config summary
    assert "sha256:abc123" in text
    assert "<td>rejected</td><td>insufficient cash" in text
    assert '<td>expired</td><td>end of day</td><td class="num">1</td>' in text
    assert "&quot;slippage_bps&quot;: 5.0" in text  # resolved config in <pre>
    assert "Benchmark SPY (rescaled)" in text
    # Assumptions come before the charts.
    assert text.index("<h2>Assumptions</h2>") < text.index('id="equity-plot"')


def test_report_is_deterministic(tmp_path: Path) -> None:
    a = write_html_report(make_result(), tmp_path / "a.html")
    b = write_html_report(make_result(), tmp_path / "b.html")
    assert a.read_bytes() == b.read_bytes()
    assert a.stat().st_size < 6_000_000


def test_long_runs_are_capped() -> None:
    result = make_result(n_bars=30_000, n_trades=1_500)
    text = render_html_report(result)
    assert f"the {MAX_TRADE_MARKERS:,} trades with the largest absolute P&amp;L" in text
    assert "1,500 trades; the first and last 50 are listed." in text
    assert "1,400 trades not shown" in text
    assert "Curves are drawn with" in text and "of 30,000 bars" in text
    assert len(text) < 8_000_000


def test_empty_run_renders() -> None:
    result = make_result(n_trades=0)
    result.orders = result.orders.iloc[:0]
    result.benchmark = None
    result.benchmark_symbol = None
    result.conventions = []
    text = render_html_report(result)
    assert "No closed trades." in text
    assert "No orders." in text
    assert "No simulation conventions were recorded" in text


# --- in a real browser -------------------------------------------------------------------------
needs_chromium = pytest.mark.skipif(chromium_path() is None, reason="headless Chromium missing")


def _plot_fragment(dom: str) -> str:
    start = dom.index('id="equity-plot"')
    end = dom.find("<section", start)
    return dom[dom.rfind("<", 0, start) : end if end != -1 else len(dom)]


@pytest.mark.browser
@needs_chromium
def test_report_renders_in_chromium(report: tuple[Path, str]) -> None:
    path, _ = report
    dom, errors = render_dom(path)
    assert errors == []
    plot = _plot_fragment(dom)
    opening_tag = plot[: plot.index(">")]
    assert "js-plotly-plot" in opening_tag
    assert 'class="main-svg"' in plot
    assert plot.count('class="point"') >= 6  # trade markers drawn as SVG paths
    assert "Drawdown" in dom and "Equity" in plot


@pytest.mark.browser
@needs_chromium
def test_console_error_detector_can_fail(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><p id='x'>ok</p>"
        "<script>console.log('just a log'); console.error('deliberate failure');</script>"
        "<script>missingFunction();</script>"
        "<img src='missing.png'></body></html>",
        encoding="utf-8",
    )
    dom, errors = render_dom(page)
    assert '<p id="x">ok</p>' in dom
    assert "data-tradeloom-probe" not in dom
    assert any("deliberate failure" in e for e in errors)
    assert any(e.startswith("Uncaught ReferenceError") for e in errors)
    assert any("failed to load IMG" in e and "missing.png" in e for e in errors)
    assert not any("just a log" in e for e in errors)

    clean = tmp_path / "clean.html"
    clean.write_text("<!DOCTYPE html><p>fine</p><script>console.log('hi')</script>", "utf-8")
    assert render_dom(clean)[1] == []


def test_console_line_parser() -> None:
    stderr = (
        "[1:1:1126/1.0:ERROR:dbus/bus.cc:405] Failed to connect to the bus\n"
        '[1:1:1126/1.1:INFO:CONSOLE:1] "[console.error] boom\nsecond line", source: file:///a (1)\n'
        '[1:1:1126/1.2:INFO:CONSOLE(3)] "Uncaught TypeError: x", source: file:///a (3)\n'
        '[1:1:1126/1.3:INFO:CONSOLE:4] "fine", source: file:///a (4)\n'
    )
    assert console_errors(stderr) == ["[console.error] boom\nsecond line", "Uncaught TypeError: x"]


def test_decimation_keeps_extremes() -> None:
    from tradeloom.report.html import MAX_PLOT_POINTS, _plot_positions

    n = 100_003
    equity = 100.0 + np.sin(np.arange(n) / 1000.0) * 10 + np.arange(n) * 1e-4
    equity[77_777] = 50.0  # a one-bar crash
    peak = np.maximum.accumulate(equity)
    keep = _plot_positions(equity, equity / peak - 1)
    assert len(keep) <= MAX_PLOT_POINTS
    assert {0, n - 1, 77_777, int(np.argmax(equity))} <= set(keep.tolist())
    assert np.all(np.diff(keep) > 0)

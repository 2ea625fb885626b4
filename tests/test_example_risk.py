"""The shipped risk example: a realistic rule set whose drawdown halt fires and holds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import tradeloom

EXAMPLE = Path(__file__).parent.parent / "examples" / "risk-controls.toml"


@pytest.fixture(scope="module")
def result() -> tradeloom.BacktestResult:
    return tradeloom.backtest(EXAMPLE)


def test_the_drawdown_halt_fires_once_over_the_limit(result: tradeloom.BacktestResult) -> None:
    events = result.risk_events
    halts = events[(events["kind"] == "state") & (events["state"] == "halted")]
    assert len(halts) == 1
    halt = halts.iloc[0]
    assert halt["rule"] == "max-drawdown"
    assert halt["scope"] == "global"
    assert halt["limit"] == 10.0
    assert halt["observed"] > 10.0
    # The observed drawdown is the equity curve's at the halt bar (peak to that mark).
    equity = result.equity["equity"]
    at = equity.index.get_loc(halt["time"])
    peak = equity.iloc[: at + 1].max()
    assert halt["observed"] == pytest.approx((peak - equity.iloc[at]) / peak * 100, rel=1e-9)
    # No earlier mark was over the limit.
    running = equity.iloc[:at].cummax()
    assert ((running - equity.iloc[:at]) / running * 100 <= 10.0 + 1e-9).all()


def test_after_the_halt_nothing_from_the_strategy_is_accepted(
    result: tradeloom.BacktestResult,
) -> None:
    events = result.risk_events
    halt_time = events[events["state"] == "halted"]["time"].iloc[0]
    orders = result.orders
    strategy_orders = orders[orders["strategy_id"] != "risk"]
    later = strategy_orders[pd.to_datetime(strategy_orders["created_time"]) > halt_time]
    assert len(later) > 0  # the strategy kept trying
    assert (later["status"] == "rejected").all()
    assert later["reason"].str.startswith("risk rule trading-state: global is halted").all()
    # The halt flattened the book: runner exits filled, and the account ends flat.
    flatten = events[(events["kind"] == "exit") & (events["rule"] == "flatten")]
    assert len(flatten) >= 1
    exits = orders[orders["client_order_id"].isin(flatten["client_order_id"])]
    assert (exits["status"] == "filled").all()
    last = result.equity.iloc[-1]
    assert last["position_value"] == 0.0
    assert last["equity"] == pytest.approx(last["cash"])


def test_the_report_and_metrics_show_the_halt(
    result: tradeloom.BacktestResult, tmp_path: Path
) -> None:
    from tradeloom.report.outputs import write_outputs

    paths = write_outputs(result, tmp_path)
    events = pd.read_csv(paths["risk_events.csv"])
    assert (events["state"] == "halted").sum() == 1
    html = paths["report.html"].read_text(encoding="utf-8")
    assert "drawdown % over the limit" in html

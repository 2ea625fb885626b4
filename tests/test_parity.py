"""Parity between the event and the vector engine on bundled real data, and the parity check
itself: it reports zero differences when the engines agree and finds them when they do not."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest
import typer

from tradeloom.api import run_backtest
from tradeloom.cli.parity_cmd import parity_command
from tradeloom.config import load_deployment
from tradeloom.data import MarketData
from tradeloom.data.datasets import DatasetSource
from tradeloom.errors import ConfigError, RunError
from tradeloom.execution import PercentFees, PerUnitFees, SimulatedBroker
from tradeloom.parity import MISSING, compare_results, compare_trades, run_parity
from tradeloom.plugins import PluginHost
from tradeloom.strategy import Strategy
from tradeloom.vector import run_signals
from tradeloom_strategies import DonchianBreakout, RsiMeanReversion, SmaCrossover

STOCKS = ["AAPL", "FB", "GOOG", "IBM", "MSFT"]  # FB and GOOG start later: gaps at the start


@pytest.fixture(scope="module")
def stocks() -> MarketData:
    source = DatasetSource(name="us-stocks-daily", symbols=STOCKS, adjusted=True)
    return source.load(pd.Timestamp("2003-01-01", tz="UTC"), pd.Timestamp("2013-03-01", tz="UTC"))


@pytest.fixture(scope="module")
def btc() -> MarketData:
    return DatasetSource(name="btcusd-1h").load()


COSTS = SimulatedBroker.Params(fees=PercentFees(rate=0.001, minimum=1.0), slippage_bps=5)

CASES = {
    "sma-long-only-quantity": (
        "stocks", lambda: SmaCrossover(fast=10, slow=40, quantity=10), SimulatedBroker.Params(),
    ),
    "sma-long-only-fraction-costs": (
        "stocks", lambda: SmaCrossover(fast=5, slow=20, fraction=0.95), COSTS,
    ),
    "sma-long-short-quantity-costs": (
        "stocks", lambda: SmaCrossover(fast=10, slow=40, quantity=20, direction="long_short"),
        COSTS,
    ),
    "sma-long-short-fraction-costs": (
        "stocks", lambda: SmaCrossover(fast=20, slow=100, fraction=0.9, direction="long_short"),
        COSTS,
    ),
    "donchian-long-short": (
        "stocks", lambda: DonchianBreakout(entry=20, exit=10, direction="long_short"),
        SimulatedBroker.Params(
            fees=PerUnitFees(per_unit=0.01, minimum=1.0, maximum_pct=0.005), slippage_bps=3
        ),
    ),
    "rsi-long-short": (
        "stocks", lambda: RsiMeanReversion(period=14, direction="long_short"), COSTS,
    ),
    "sma-btc-hourly": (
        "btc", lambda: SmaCrossover(fast=24, slow=96, fraction=1.0, direction="long_short"),
        SimulatedBroker.Params(fees=PercentFees(rate=0.002), slippage_bps=10),
    ),
    "rsi-btc-hourly-all-in": (
        "btc", lambda: RsiMeanReversion(period=14, fraction=1.0), COSTS,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_engines_agree_on_real_data(case: str, request: pytest.FixtureRequest) -> None:
    dataset, make, params = CASES[case]
    market: MarketData = request.getfixturevalue(dataset)
    event = run_backtest(market, [("s", make())], broker=SimulatedBroker(params))
    vector = run_signals(market, make(), broker_params=params, strategy_id="s")
    report = compare_results(event, vector)
    assert report.ok, report.summary()
    assert report.n_differences == 0 and report.differences == []
    assert report.matched == report.trades_a == report.trades_b > 20
    assert report.fills_a == report.fills_b == len(vector.fills)
    # not only the trades: every order (with its reason), fill and equity value is the same
    for name in ("orders", "fills", "equity"):
        pd.testing.assert_frame_equal(getattr(event, name), getattr(vector, name), check_exact=True)


def test_the_check_fails_when_one_engine_fills_differently(stocks: MarketData) -> None:
    strategy = lambda: SmaCrossover(fast=10, slow=40, quantity=10)  # noqa: E731
    event = run_backtest(stocks, [("s", strategy())])  # next open
    vector = run_signals(
        stocks, strategy(), broker_params=SimulatedBroker.Params(fill_at="close"), strategy_id="s"
    )
    report = compare_results(event, vector, max_differences=5)
    assert not report.ok
    assert report.trades_a == report.trades_b  # the same signals ...
    assert report.matched < report.trades_a  # ... filled at other prices
    assert len(report.differences) == 5 and report.n_differences > 5
    first = report.differences[0]
    assert first.column in {"entry_time", "entry_price", "exit_time", "exit_price", "pnl"}
    assert first.a != first.b
    assert report.equity_matches is False
    assert report.summary().startswith("parity FAILS")


def test_compare_trades_lists_cells_and_missing_rows() -> None:
    a = pd.DataFrame({"symbol": ["X", "X", "Y"], "pnl": [1.0, 2.0, 3.0], "bars_held": [1, 2, 3]})
    b = pd.DataFrame({"symbol": ["X", "Z"], "pnl": [1.0 + 1e-12, 2.5], "bars_held": [1, 2]})
    report = compare_trades(a, b, rtol=1e-9, fills=(6, 4), final_equity=(10.0, 10.0))
    assert report.matched == 1
    assert [(d.row, d.column, d.a, d.b) for d in report.differences] == [
        (1, "symbol", "X", "Z"),
        (1, "pnl", 2.0, 2.5),
        (2, MISSING, "Y", None),
    ]
    assert report.n_differences == 3
    assert report.fills_match is False and report.equity_matches is True
    assert not report.ok
    same = compare_trades(a, a.copy())
    assert same.ok and same.matched == 3 and same.fills_match is None


# --- deployments and the CLI --------------------------------------------------------------------


def deployment(tmp_path: Path, strategy: str, extra: str = "") -> Path:
    path = tmp_path / "deploy.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [data]
            type = "dataset"
            params = {{ name = "us-stocks-daily", symbols = ["AAPL", "IBM", "MSFT"], adjusted = true }}

            {strategy}

            [broker]
            type = "simulated"
            params = {{ slippage_bps = 2, fees = {{ model = "percent", rate = 0.0005, minimum = 1.0 }} }}

            [run]
            start = "2005-01-01"
            end = "2013-03-01"
            initial_cash = 100000
            {extra}
            """
        )
    )
    return path


SMA = '[strategy]\nid = "sma"\ntype = "sma-crossover"\nparams = { fast = 20, slow = 100, fraction = 0.9 }'


def test_run_parity_on_a_deployment(tmp_path: Path) -> None:
    host = PluginHost()
    resolved = load_deployment([deployment(tmp_path, SMA)], [], host=host)
    report = run_parity(resolved, host)
    assert report.ok, report.summary()
    assert report.labels == ("event", "vector") and report.trades_a > 10


def test_run_parity_refuses_what_it_cannot_compare(tmp_path: Path) -> None:
    host = PluginHost()
    xs = '[strategy]\ntype = "xs-momentum"\nparams = { lookback = 60 }'
    with pytest.raises(ConfigError, match=r"strategy 'xs-momentum' .* does not implement signals"):
        run_parity(load_deployment([deployment(tmp_path, xs)], [], host=host), host)
    risky = SMA + '\n[[risk]]\ntype = "max-order-quantity"\nparams = { max_quantity = 1000 }'
    with pytest.raises(ConfigError, match="applies no risk rules"):
        run_parity(load_deployment([deployment(tmp_path, risky)], [], host=host), host)
    two = (
        '[[strategies]]\ntype = "sma-crossover"\n'
        '[[strategies]]\ntype = "rsi-mean-reversion"\nid = "rsi"'
    )
    with pytest.raises(ConfigError, match="one strategy at a time"):
        run_parity(load_deployment([deployment(tmp_path, two)], [], host=host), host)


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test app."""

    app.command("parity")(parity_command)
    return app


def test_parity_command_prints_the_comparison(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = typer.main.get_command(cli())
    path = deployment(tmp_path, SMA)
    command.main(
        args=["parity", str(path), "--set", "strategy.params.fast=30"],
        prog_name="tradeloom",
        standalone_mode=False,
    )
    out = capsys.readouterr().out
    assert "event engine vs vector engine" in out
    assert "parity holds" in out and "DIFFERENT" not in out


def test_parity_command_fails_with_one_line_when_trades_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tradeloom.parity as parity
    import tradeloom.vector as vector

    real = vector.run_signals

    def close_fills(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        kwargs["broker_params"] = SimulatedBroker.Params(fill_at="close")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(vector, "run_signals", close_fills)
    assert parity.run_parity  # the check imports run_signals when it runs
    command = typer.main.get_command(cli())
    with pytest.raises(RunError, match=r"^parity FAILS: .* trades match") as info:
        command.main(
            args=["parity", str(deployment(tmp_path, SMA))],
            prog_name="tradeloom",
            standalone_mode=False,
        )
    assert "\n" not in str(info.value)
    assert "DIFFERENT" in capsys.readouterr().out


def test_a_strategy_class_without_signals_is_named(stocks: MarketData) -> None:
    class OnlyEvents(Strategy):
        pass

    with pytest.raises(ConfigError, match=r"'onlyevents' \(OnlyEvents\) has no signals"):
        run_signals(stocks, OnlyEvents(), fallback=False)

"""The first-party components run the contract suites of ``tradeloom.testing``, exactly as a
third-party plugin's tests do: the four strategies of ``tradeloom-strategies``, the built-in
data sources, the simulated broker and built-in risk rules."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import tradeloom
from tradeloom.data import DatasetSource, MarketData
from tradeloom.testing import (
    BrokerContract,
    DataSourceContract,
    RiskRuleContract,
    StrategyContract,
)
from tradeloom.testing import plugin as tradeloom_plugin
from tradeloom_strategies import SmaCrossover

# The kit's fixtures, for runs where the pytest11 entry point is not installed yet.
tradeloom_market = tradeloom_plugin.tradeloom_market
tradeloom_deployment = tradeloom_plugin.tradeloom_deployment
tradeloom_host = tradeloom_plugin.tradeloom_host

# --- strategies -----------------------------------------------------------------------------------


class TestSmaCrossover(StrategyContract):
    strategy_type = "sma-crossover"
    params = {"fast": 5, "slow": 20}


class TestSmaCrossoverLongShortByClass(StrategyContract):
    strategy_cls = SmaCrossover
    params = {"fast": 10, "slow": 30, "quantity": 50, "direction": "long_short"}
    symbols = ["IBM", "MSFT"]


class TestDonchianBreakout(StrategyContract):
    strategy_type = "donchian-breakout"
    params = {"entry": 20, "exit": 10, "direction": "long_short"}


class TestRsiMeanReversion(StrategyContract):
    strategy_type = "rsi-mean-reversion"


class TestCrossSectionalMomentum(StrategyContract):
    strategy_type = "xs-momentum"
    params = {"lookback": 60, "rebalance_every": 21, "top_n": 2}
    symbols = ["AAPL", "IBM", "MSFT"]


# --- data sources ---------------------------------------------------------------------------------


def _bars(symbols: list[str], end: str = "2001-12-31") -> MarketData:
    return DatasetSource(name="us-stocks-daily", symbols=symbols).load(
        end=pd.Timestamp(end, tz="UTC")
    )


def _long_table(market: MarketData) -> pd.DataFrame:
    """One row per symbol and time, sorted by time (what a file source reads)."""
    parts = []
    for symbol, frame in market.frames.items():
        table = frame.reset_index()
        table.insert(0, "symbol", symbol)
        parts.append(table)
    return pd.concat(parts).sort_values(["ts", "symbol"], kind="stable")


class TestDatasetSource(DataSourceContract):
    source_type = "dataset"
    params = {"name": "us-stocks-daily", "symbols": ["GOOG", "IBM"]}


class TestDatasetSourceHourly(DataSourceContract):
    source_type = "dataset"
    params = {"name": "btcusd-1h"}
    start = "2018-01-01"
    end = "2018-01-03 12:00"


class TestCsvSource(DataSourceContract):
    source_type = "csv"

    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        path = tmp_path / "bars.csv"
        _long_table(_bars(["IBM", "MSFT"])).to_csv(path, index=False)
        self.params = {"path": str(path)}


class TestParquetSource(DataSourceContract):
    source_type = "parquet"

    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        path = tmp_path / "bars.parquet"
        _long_table(_bars(["AAPL", "IBM"])).to_parquet(path, index=False)
        self.params = {"path": str(path)}


# --- brokers --------------------------------------------------------------------------------------


class TestSimulatedBroker(BrokerContract):
    broker_type = "simulated"


class TestSimulatedBrokerWithCosts(BrokerContract):
    broker_type = "simulated"
    params = {"fees": {"model": "percent", "rate": 0.001}, "slippage_bps": 5}


# --- risk rules -----------------------------------------------------------------------------------


class TestMaxOrderQuantity(RiskRuleContract):
    rule_type = "max-order-quantity"
    params = {"max_quantity": 100}
    allowed_order = {"side": "buy", "quantity": 100}
    refused_order = {"side": "buy", "quantity": 101}


class TestMaxOrderNotional(RiskRuleContract):
    rule_type = "max-order-notional"
    params = {"max_notional": 10_000}
    allowed_order = {"side": "sell", "quantity": 100}
    refused_order = {"side": "buy", "quantity": 50, "limit_price": 201.0}


class TestMaxPosition(RiskRuleContract):
    rule_type = "max-position"
    params = {"max_quantity": 100}
    positions = {"IBM": 60.0}
    allowed_order = {"side": "buy", "quantity": 40}
    refused_order = {"side": "buy", "quantity": 41}


class TestPriceCollar(RiskRuleContract):
    rule_type = "price-collar"
    params = {"max_deviation_pct": 5}
    allowed_order = {"side": "buy", "quantity": 10, "limit_price": 95.5}
    refused_order = {"side": "sell", "quantity": 10, "stop_price": 94.0}


class TestRestrictedInstruments(RiskRuleContract):
    rule_type = "restricted-instruments"
    params = {"symbols": ["GME"]}
    last_prices = {"IBM": 100.0, "GME": 20.0}
    allowed_order = {"symbol": "IBM", "quantity": 1}
    refused_order = {"symbol": "GME", "quantity": 1}


class TestDuplicateOrderGuard(RiskRuleContract):
    rule_type = "duplicate-order-guard"
    params = {"window_seconds": 60}
    prior_orders = [{"client_order_id": "first", "quantity": 10}]
    allowed_order = {"quantity": 11}
    refused_order = {"quantity": 10}


class TestMaxGrossExposure(RiskRuleContract):
    rule_type = "max-gross-exposure"
    params = {"max_gross": 50_000}
    positions = {"IBM": 300.0}
    allowed_order = {"side": "sell", "quantity": 300}
    refused_order = {"side": "buy", "quantity": 201}


# --- the fixtures ---------------------------------------------------------------------------------


def test_market_fixture_holds_ibm_2010(tradeloom_market: MarketData) -> None:
    assert tradeloom_market.symbols == ["IBM"]
    index = tradeloom_market.frames["IBM"].index
    assert len(index) == 252
    assert index[0] == pd.Timestamp("2010-01-04", tz="UTC")
    assert index[-1] == pd.Timestamp("2010-12-31", tz="UTC")


def test_deployment_fixture_backtests(tradeloom_deployment: Path) -> None:
    assert tradeloom_deployment.name == "deploy.toml"
    result = tradeloom.backtest(tradeloom_deployment)
    assert result.metrics.start.startswith("2010-01-04")
    assert len(result.orders) > 0
    assert set(result.fills["quantity"]) == {10.0}


def test_host_fixture_lists_the_first_party_components(tradeloom_host: object) -> None:
    from tradeloom.components import Kind

    names = tradeloom_host.registry.names(Kind.STRATEGY)  # type: ignore[attr-defined]
    assert {"sma-crossover", "donchian-breakout", "rsi-mean-reversion", "xs-momentum"} <= set(names)

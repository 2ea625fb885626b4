"""FX in a deployment: ``[fx]`` and ``run.currencies`` handed from the config to the engine, the
checks ``run_backtest`` makes before the first bar plays, and the vector engine's refusal
(parity). The conversion itself (ledger, broker, engine) is tested with the engine."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tradeloom.api
from tradeloom.api import run_backtest
from tradeloom.cli.main import main
from tradeloom.config import load_deployment
from tradeloom.data import MarketData
from tradeloom.data.datasets import DatasetSource
from tradeloom.data.files import CsvSource
from tradeloom.errors import ConfigError, DataError
from tradeloom.parity import refuse_foreign_currencies, run_parity
from tradeloom.plugins import PluginHost
from tradeloom.portfolio.fx import FxRates

from helpers import Scripted, bars

DEPLOY = """
[data]
type = "dataset"
params = { name = "sp500-20-adjclose", symbols = ["AAPL"] }

[strategy]
type = "sma-crossover"
params = { fast = 5, slow = 20 }

[run]
start = "2017-03-01"
end = "2017-06-30"
currency = "EUR"
"""

FX = """
[fx]
type = "dataset"
params = { name = "eurusd-1h" }
"""

AAPL_IN_USD = '\n[run.currencies]\nAAPL = "USD"\n'

ROWS = [(100.0, 101.0, 99.0, 100.0), (100.0, 102.0, 99.0, 101.0), (101.0, 103.0, 100.0, 102.0)]


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost()


@pytest.fixture(scope="module")
def eurusd() -> MarketData:
    return DatasetSource(name="eurusd-1h").load()


def write(tmp_path: Path, text: str, name: str = "deploy.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def ns(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").as_unit("ns").value


def market(start: str = "2017-03-01") -> MarketData:
    """Two symbols of daily bars (stamped 00:00 UTC)."""
    return MarketData({"AAA": bars(ROWS, start), "BBB": bars(ROWS, start)})


def fx_daily(start: str, *rates: float, symbol: str = "EURUSD") -> MarketData:
    """Daily FX bars stamped 12:00 UTC, closing at ``rates``."""
    rows = [(r, r, r, r) for r in rates]
    return MarketData({symbol: bars(rows, f"{start} 12:00")}, description=f"hand-made {symbol}")


@pytest.fixture()
def engine_kwargs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Records the ``fx`` / ``currencies`` keywords ``run_backtest`` hands the engine, then runs
    the real engine without them: only the plumbing is tested here, not the conversion."""
    real = tradeloom.api.BacktestEngine
    seen: list[dict[str, Any]] = []

    def engine(*args: Any, **kwargs: Any) -> Any:
        seen.append({k: kwargs.pop(k) for k in ("fx", "currencies") if k in kwargs})
        return real(*args, **kwargs)

    monkeypatch.setattr(tradeloom.api, "BacktestEngine", engine)
    return seen


# --- the deployment ------------------------------------------------------------------------------
def test_fx_source_and_currencies_resolve_in_a_deployment(host: PluginHost, tmp_path: Path) -> None:
    resolved = load_deployment([write(tmp_path, DEPLOY + FX + AAPL_IN_USD)], host=host)
    assert resolved.fx is not None
    assert (resolved.fx.path, resolved.fx.spec.name) == ("fx", "dataset")
    assert resolved.to_dict()["fx"]["params"]["name"] == "eurusd-1h"
    assert resolved.run.currencies == {"AAPL": "USD"}
    assert isinstance(resolved.fx.build(), DatasetSource)
    plain = load_deployment([write(tmp_path, DEPLOY, "plain.toml")], host=host)
    assert plain.fx is None and plain.run.currencies == {}
    assert "fx" not in plain.to_dict() and plain.to_dict()["run"]["currencies"] == {}


def test_a_foreign_currency_without_fx_is_a_config_error(host: PluginHost, tmp_path: Path) -> None:
    path = write(tmp_path, DEPLOY + AAPL_IN_USD)
    with pytest.raises(ConfigError) as info:
        load_deployment([path], host=host)
    assert info.value.path == "run.currencies"
    assert "(AAPL in USD)" in str(info.value)
    assert "add an [fx] data source whose symbols are the pairs USDEUR" in str(info.value)
    assert main(["backtest", str(path)]) == 2
    # The account's own currency needs no rates.
    same = load_deployment([path], ["run.currencies.AAPL=EUR"], host=host)
    assert same.fx is None and same.run.currencies == {"AAPL": "EUR"}


def test_fx_params_errors_name_the_fx_slot(host: PluginHost, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_deployment([write(tmp_path, DEPLOY + FX)], ["fx.params.name=eurusd-1d"], host=host)
    assert info.value.path == "fx.params.name"
    assert str(info.value).startswith("fx.params.name: Input should be ")


def test_run_deployment_hands_fx_and_currencies_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(tradeloom.api, "run_backtest", lambda *a, **kw: calls.append(kw))
    tradeloom.api.backtest(write(tmp_path, DEPLOY + FX + AAPL_IN_USD))
    (call,) = calls
    assert isinstance(call["fx"], DatasetSource) and call["fx"].params.name == "eurusd-1h"
    assert call["currencies"] == {"AAPL": "USD"}
    assert call["currency"] == "EUR"
    calls.clear()
    tradeloom.api.backtest(write(tmp_path, DEPLOY, "plain.toml"))
    assert calls[0]["fx"] is None and calls[0]["currencies"] == {}


# --- what run_backtest hands the engine ------------------------------------------------------------
def test_the_engine_gets_the_rates_and_only_the_foreign_symbols(
    engine_kwargs: list[dict[str, Any]], eurusd: MarketData
) -> None:
    result = run_backtest(
        market(),
        Scripted({}),
        currency="USD",
        currencies={"AAA": "EUR", "BBB": "USD"},
        fx=DatasetSource(name="eurusd-1h"),
        start="2017-03-01",
        end="2017-03-10",
    )
    ((kwargs),) = engine_kwargs
    assert kwargs["currencies"] == {"AAA": "EUR"}
    rates = kwargs["fx"]
    assert isinstance(rates, FxRates) and rates.account_currency == "USD"
    assert rates.pairs == ["EURUSD"]
    full = FxRates.from_market("USD", eurusd, ["EURUSD"])
    # Loaded without a start: the rates before run.start are there ...
    assert rates.rate("EUR", ns("2017-01-02 00:00")) == full.rate("EUR", ns("2017-01-02 00:00"))
    # ... and up to run.end only: later times get the last rate at or before the end.
    assert rates.rate("EUR", ns("2017-12-01")) == full.rate("EUR", ns("2017-03-10"))
    assert rates.rate("EUR", ns("2017-12-01")) != full.rate("EUR", ns("2017-12-01"))
    assert result.provenance["currencies"] == {"AAA": "EUR"}
    assert result.provenance["fx"] == (
        "dataset 'eurusd-1h': 1 symbol(s) (EURUSD), 1179 bars from 2017-01-01T22:00:00+00:00 to "
        "2017-03-10T00:00:00+00:00"
    )


def test_the_rate_at_the_first_bar_may_come_from_before_run_start(
    engine_kwargs: list[dict[str, Any]],
) -> None:
    """The first bar is 2017-01-05 00:00; the last rate before it is stamped 2017-01-04 12:00,
    before run.start: loading the FX data from run.start would have lost it."""
    fx = fx_daily("2017-01-02", 1.04, 1.05, 1.06, 1.07)
    result = run_backtest(
        market("2017-01-04"), Scripted({}), currencies={"AAA": "EUR"}, fx=fx, start="2017-01-05"
    )
    assert engine_kwargs[0]["fx"].rate("EUR", ns("2017-01-05")) == 1.06
    assert result.provenance["fx"] == "hand-made EURUSD"


def test_rates_given_as_fx_rates_are_used_as_they_are(
    engine_kwargs: list[dict[str, Any]],
) -> None:
    rates = FxRates("USD", {"EURUSD": fx_daily("2017-02-01", 1.1).close("EURUSD")})
    result = run_backtest(market(), Scripted({}), currencies={"AAA": "EUR"}, fx=rates)
    assert engine_kwargs[0] == {"fx": rates, "currencies": {"AAA": "EUR"}}
    assert result.provenance["fx"] == "FxRates('USD') with pairs EURUSD"
    with pytest.raises(ConfigError) as info:
        run_backtest(market(), Scripted({}), currency="GBP", currencies={"AAA": "EUR"}, fx=rates)
    assert info.value.path == "fx"
    assert "convert into USD, but the account currency is GBP" in str(info.value)


def test_currencies_in_the_account_currency_need_nothing(
    engine_kwargs: list[dict[str, Any]],
) -> None:
    result = run_backtest(market(), Scripted({}), currency="EUR", currencies={"AAA": "EUR"})
    assert engine_kwargs == [{}]
    assert "currencies" not in result.provenance and "fx" not in result.provenance


# --- what run_backtest refuses before the first bar ---------------------------------------------
def test_a_symbol_not_in_the_data_is_named(eurusd: MarketData) -> None:
    for currencies in ({"AAA": "EUR", "ZZZ": "EUR"}, {"ZZZ": "USD"}):
        with pytest.raises(ConfigError) as info:
            run_backtest(market(), Scripted({}), currencies=currencies, fx=eurusd)
        assert info.value.path == "run.currencies"
        assert "symbol(s) ZZZ not in the data, which holds AAA, BBB" in str(info.value)


def test_a_symbol_not_in_the_data_is_named_from_a_deployment(tmp_path: Path) -> None:
    path = write(tmp_path, DEPLOY + FX + '[run.currencies]\nMSFT = "USD"\n')
    with pytest.raises(ConfigError, match=r"^run\.currencies: symbol\(s\) MSFT not in the data"):
        tradeloom.api.backtest(path)


def test_no_rate_at_the_first_bar_is_a_config_error(eurusd: MarketData) -> None:
    with pytest.raises(ConfigError) as info:
        run_backtest(market("2016-12-30"), Scripted({}), currencies={"AAA": "EUR"}, fx=eurusd)
    assert info.value.path == "fx"
    assert str(info.value).startswith(
        "fx: no EURUSD rate at or before 2016-12-30T00:00:00+00:00: the series starts at "
        "2017-01-01T22:00:00+00:00"
    )


def test_no_rate_at_the_first_bar_from_a_deployment(tmp_path: Path) -> None:
    path = write(tmp_path, DEPLOY + FX + AAPL_IN_USD)
    with pytest.raises(ConfigError, match=r"^fx: no EURUSD rate at or before 2016-12-01"):
        tradeloom.api.backtest(path, overrides=["run.start=2016-12-01"])
    assert main(["backtest", str(path), "--set", "run.start=2016-12-01"]) == 2


def test_a_missing_pair_is_a_config_error() -> None:
    fx = fx_daily("2017-02-01", 1.25, symbol="GBPUSD")
    with pytest.raises(ConfigError) as info:
        run_backtest(market(), Scripted({}), currencies={"AAA": "EUR"}, fx=fx)
    assert info.value.path == "fx"
    assert "no FX rate for EUR in USD: looked for the pair EURUSD" in str(info.value)
    assert "pairs held: GBPUSD" in str(info.value)


def test_fx_symbols_that_are_not_pairs_are_a_config_error() -> None:
    fx = fx_daily("2017-02-01", 1.1, symbol="EUR/USD")
    with pytest.raises(ConfigError) as info:
        run_backtest(market(), Scripted({}), currencies={"AAA": "EUR"}, fx=fx)
    assert info.value.path == "fx"
    assert "FX pair name 'EUR/USD' is not BASEQUOTE" in str(info.value)


def test_a_foreign_currency_without_fx_is_refused_by_the_api() -> None:
    with pytest.raises(ConfigError) as info:
        run_backtest(market(), Scripted({}), currencies={"AAA": "EUR"})
    assert info.value.path == "run.currencies"
    assert "need FX rates, but none were given (AAA in EUR)" in str(info.value)


def test_a_bad_currency_code_is_refused_by_the_api(eurusd: MarketData) -> None:
    with pytest.raises(ConfigError) as info:
        run_backtest(market(), Scripted({}), currencies={"AAA": "eur"}, fx=eurusd)
    assert info.value.path == "run.currencies.AAA"


def test_fx_load_errors_name_the_fx_slot(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        run_backtest(
            market(),
            Scripted({}),
            currencies={"AAA": "EUR"},
            fx=CsvSource(path=str(tmp_path / "missing.csv")),
        )
    assert str(info.value).startswith("fx.params.path (CsvSource): ")
    with pytest.raises(DataError) as info:
        run_backtest(
            market("2016-01-04"),
            Scripted({}),
            currencies={"AAA": "EUR"},
            fx=DatasetSource(name="eurusd-1h"),
            end="2016-01-06",
        )
    assert str(info.value).startswith("fx (DatasetSource): dataset 'eurusd-1h': no bars")
    with pytest.raises(DataError, match=r"^fx: no bars between the start and 2016-01-06"):
        run_backtest(
            market("2016-01-04"),
            Scripted({}),
            currencies={"AAA": "EUR"},
            fx=fx_daily("2017-02-01", 1.1),
            end="2016-01-06",
        )


# --- the vector engine converts nothing ---------------------------------------------------------
def test_parity_refuses_foreign_currencies(host: PluginHost, tmp_path: Path) -> None:
    config = write(tmp_path, DEPLOY + FX + AAPL_IN_USD)
    resolved = load_deployment([config], host=host)
    with pytest.raises(ConfigError) as info:
        run_parity(resolved, host)
    assert info.value.path == "run.currencies"
    message = str(info.value)
    assert "values every symbol in the account currency (EUR)" in message
    assert "which quotes AAPL in USD" in message
    assert "--set run.currencies={}" in message
    assert main(["parity", str(config)]) == 2
    # In the account currency, or with the mapping emptied as the message says: nothing to refuse.
    refuse_foreign_currencies(load_deployment([config], ["run.currencies.AAPL=EUR"], host=host))
    refuse_foreign_currencies(load_deployment([config], ["run.currencies={}"], host=host))

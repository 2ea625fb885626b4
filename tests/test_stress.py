"""Stress tests (tradeloom.research.stress): trade resampling, block bootstrap, scenarios.

The trade resampling is checked against a 3-trade case whose 6 orderings are worked out by hand;
the block bootstrap by locating every block of every path in the input; the scenarios bar by
bar against the original frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradeloom.research.stress import (
    PERCENTILES,
    StressInputError,
    block_bootstrap,
    bootstrap_stats,
    gap,
    liquidity,
    trade_resampling,
    volatility,
)

# --------------------------------------------------------------------------------------------
# Trade resampling
# --------------------------------------------------------------------------------------------


def test_permutation_keeps_final_equity_and_moves_drawdown():
    rng = np.random.default_rng(1)
    pnls = rng.normal(5.0, 50.0, size=40)
    res = trade_resampling(pnls, 1_000.0, n_paths=2_500, seed=3)
    assert res.final_equity.shape == (2_500,)
    np.testing.assert_allclose(res.final_equity, 1_000.0 + pnls.sum(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.final_return, pnls.sum() / 1_000.0, atol=1e-12)
    assert res.max_drawdown.std() > 0
    assert res.drawdown_percentiles[5] < res.drawdown_percentiles[95]
    assert len(np.unique(np.round(res.max_drawdown, 12))) > 100
    assert 0.0 <= res.original_drawdown_percentile <= 100.0


def test_three_trades_hand_enumerated():
    # P&L (10, 10, -30) on 100. The 6 orderings (the two +10 are distinct trades):
    #   (+10, +10, -30) twice: 110, 120, 90  -> DD = 30/120 = 0.25
    #   (+10, -30, +10) twice: 110, 80, 90   -> DD = 30/110
    #   (-30, +10, +10) twice: 70, 80, 90    -> DD = 30/100 = 0.30
    # so each drawdown has probability 2/6 and every path ends at 90 (-10 %).
    n = 60_000
    res = trade_resampling([10.0, 10.0, -30.0], 100.0, n_paths=n, seed=7)
    values = {0.25: 2 / 6, 30 / 110: 2 / 6, 0.30: 2 / 6}
    total = 0
    for dd, prob in values.items():
        count = np.count_nonzero(np.isclose(res.max_drawdown, dd, rtol=0, atol=1e-12))
        total += count
        assert abs(count / n - prob) < 4 * np.sqrt(prob * (1 - prob) / n)
    assert total == n
    # Sorted distribution: 0.25 up to 1/3, 30/110 up to 2/3, 0.30 after.
    expected = {5: 0.25, 25: 0.25, 50: 30 / 110, 75: 0.30, 95: 0.30}
    for p in PERCENTILES:
        assert res.drawdown_percentiles[p] == pytest.approx(expected[p], abs=1e-12)
        assert res.return_percentiles[p] == pytest.approx(-0.1, abs=1e-12)
    assert res.original_max_drawdown == pytest.approx(0.25)
    # No path below 0.25, a third tied with it: percentile ~ (0 + 1/3 / 2) * 100.
    assert res.original_drawdown_percentile == pytest.approx(100 / 6, abs=1.0)
    assert res.p_loss == 1.0
    assert (
        trade_resampling([10.0, 10.0, -30.0], 100.0, n_paths=50, loss_threshold=0.05).p_loss == 1.0
    )
    assert (
        trade_resampling([10.0, 10.0, -30.0], 100.0, n_paths=50, loss_threshold=0.2).p_loss == 0.0
    )


def test_orders_are_equally_likely():
    # Each of the 6 orderings has probability 1/6; here the drawdown separates 4 classes:
    # (10, 5, -20) on 100: orders -> DD
    #   (10, 5, -20), (5, 10, -20): 20/115 ; (10, -20, 5): 20/110 ; (5, -20, 10): 20/105 ;
    #   (-20, 10, 5), (-20, 5, 10): 20/100
    n = 60_000
    res = trade_resampling([10.0, 5.0, -20.0], 100.0, n_paths=n, seed=11)
    for dd, prob in {20 / 115: 2 / 6, 20 / 110: 1 / 6, 20 / 105: 1 / 6, 0.2: 2 / 6}.items():
        freq = np.mean(np.isclose(res.max_drawdown, dd, rtol=0, atol=1e-12))
        assert abs(freq - prob) < 4 * np.sqrt(prob * (1 - prob) / n)
    assert res.original_max_drawdown == pytest.approx(20 / 115)


def test_bootstrap_with_replacement_changes_final_equity():
    pnls = [50.0, -20.0, 30.0, -40.0, 10.0]
    res = trade_resampling(pnls, 1_000.0, n_paths=2_000, seed=0, replace=True)
    assert res.final_equity.std() > 0
    assert res.return_percentiles[5] < res.return_percentiles[95]
    # Mean final P&L ~ n * mean(pnl) = 30
    assert abs(res.final_equity.mean() - 1_030.0) < 5.0
    assert 0.0 < res.p_loss < 1.0
    assert np.array_equal(res.loss, res.final_return < 0)


def test_resampling_seed_reproducible_and_chunked():
    pnls = np.random.default_rng(2).normal(0, 10, size=30)
    a = trade_resampling(pnls, 500.0, n_paths=2_345, seed=42)
    b = trade_resampling(pnls, 500.0, n_paths=2_345, seed=42)
    c = trade_resampling(pnls, 500.0, n_paths=2_345, seed=43)
    g = trade_resampling(pnls, 500.0, n_paths=2_345, seed=np.random.default_rng(42))
    assert np.array_equal(a.max_drawdown, b.max_drawdown)
    assert a.drawdown_percentiles == b.drawdown_percentiles
    assert np.array_equal(a.max_drawdown, g.max_drawdown)
    assert not np.array_equal(a.max_drawdown, c.max_drawdown)
    r1 = trade_resampling(pnls, 500.0, n_paths=300, seed=5, replace=True)
    r2 = trade_resampling(pnls, 500.0, n_paths=300, seed=5, replace=True)
    r3 = trade_resampling(pnls, 500.0, n_paths=300, seed=6, replace=True)
    assert np.array_equal(r1.final_equity, r2.final_equity)
    assert not np.array_equal(r1.final_equity, r3.final_equity)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"trade_pnls": []}, "trade_pnls"),
        ({"trade_pnls": [1.0, np.nan]}, "trade_pnls"),
        ({"initial_equity": 0.0}, "initial_equity"),
        ({"n_paths": 0}, "n_paths"),
        ({"loss_threshold": -0.1}, "loss_threshold"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_resampling_bad_arguments(kwargs, field):
    args = {"trade_pnls": [1.0, -2.0], "initial_equity": 100.0} | kwargs
    with pytest.raises(ValueError, match=field) as info:
        trade_resampling(**args)
    assert isinstance(info.value, StressInputError)
    assert info.value.field == field


# --------------------------------------------------------------------------------------------
# Block bootstrap
# --------------------------------------------------------------------------------------------


def _locate(values: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Index in ``source`` (unique values) of each value."""
    order = np.argsort(source)
    pos = np.searchsorted(source[order], values)
    idx = order[np.clip(pos, 0, source.size - 1)]
    assert np.array_equal(source[idx], values), "a value is not from the input"
    return idx


def test_moving_block_paths_are_contiguous_blocks():
    returns = np.random.default_rng(0).normal(0, 0.01, size=200)  # unique values
    block = 7
    paths = block_bootstrap(returns, block=block, n_paths=300, seed=1, length=95)
    assert paths.shape == (300, 95)
    for path in paths:
        idx = _locate(path, returns)
        for b0 in range(0, 95, block):
            chunk = idx[b0 : b0 + block]
            assert np.array_equal(chunk, np.arange(chunk[0], chunk[0] + chunk.size))
            assert chunk[0] + block <= returns.size  # a full block fits, no wrap-around
    default = block_bootstrap(returns, block=block, n_paths=4, seed=1)
    assert default.shape == (4, 200)


def test_stationary_paths_wrap_and_mean_block_length():
    n = 1_000
    returns = np.random.default_rng(3).normal(0, 0.01, size=n)
    block = 20
    paths = block_bootstrap(
        returns, block=block, n_paths=200, seed=2, length=3_000, stationary=True
    )
    assert paths.shape == (200, 3_000)
    lengths = []
    for path in paths:
        idx = _locate(path, returns)
        breaks = np.flatnonzero(idx[1:] != (idx[:-1] + 1) % n) + 1
        # every run between breaks is contiguous (mod n) by construction of the breaks; the
        # run lengths, last (truncated) run left out, estimate the mean block length
        edges = np.concatenate(([0], breaks))
        lengths.extend(np.diff(edges)[1:] if edges.size > 1 else [])
    lengths = np.asarray(lengths)
    assert lengths.size > 20_000
    # geometric(1/20): mean 20, sd ~19.5; a new block landing exactly at the next index merges
    # two runs (probability 1/n), a negligible upward bias
    assert abs(lengths.mean() - block) < 0.6


def test_block_bootstrap_seed_and_errors():
    r = np.linspace(-0.01, 0.01, 50)
    for stationary in (False, True):
        a = block_bootstrap(r, block=5, n_paths=20, seed=9, stationary=stationary)
        b = block_bootstrap(r, block=5, n_paths=20, seed=9, stationary=stationary)
        c = block_bootstrap(r, block=5, n_paths=20, seed=10, stationary=stationary)
        assert np.array_equal(a, b)
        assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="block"):
        block_bootstrap(r, block=51)
    with pytest.raises(ValueError, match="block"):
        block_bootstrap(r, block=0)
    with pytest.raises(ValueError, match="length"):
        block_bootstrap(r, length=0)
    with pytest.raises(ValueError, match="returns"):
        block_bootstrap([[0.1]])


def test_bootstrap_stats():
    paths = np.array([[0.1, -0.5, 0.2], [0.01, 0.01, 0.01], [0.0, 0.0, 0.0]])
    stats = bootstrap_stats(paths, periods_per_year=252)
    np.testing.assert_allclose(stats.total_returns, [1.1 * 0.5 * 1.2 - 1, 1.01**3 - 1, 0.0])
    # path 0: equity 1.1, 0.55, 0.66 -> DD 0.5; path 1 rises; path 2 flat
    np.testing.assert_allclose(stats.max_drawdowns, [0.5, 0.0, 0.0], atol=1e-15)
    r0 = paths[0]
    assert stats.sharpes[0] == pytest.approx(r0.mean() / r0.std(ddof=1) * np.sqrt(252))
    assert np.isnan(stats.sharpes[1]) and np.isnan(stats.sharpes[2])  # zero spread
    assert stats.sharpe[50] == pytest.approx(stats.sharpes[0])
    assert stats.total_return[50] == pytest.approx(0.0)
    assert set(stats.max_drawdown) == set(PERCENTILES)
    # end to end with the bootstrap
    r = np.random.default_rng(4).normal(0.0005, 0.01, size=500)
    s = bootstrap_stats(block_bootstrap(r, n_paths=500, seed=0), 252)
    assert s.total_return[5] < s.total_return[50] < s.total_return[95]
    assert 0 < s.max_drawdown[5] <= s.max_drawdown[95] < 1
    with pytest.raises(ValueError, match="periods_per_year"):
        bootstrap_stats(paths, 0)


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------


def _bars(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
    volume = rng.integers(1_000, 5_000, n).astype(float)
    index = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC", name="ts")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def _assert_consistent(frame: pd.DataFrame) -> None:
    assert (frame["high"] >= np.maximum(frame["open"], frame["close"]) * (1 - 1e-12)).all()
    assert (frame["low"] <= np.minimum(frame["open"], frame["close"]) * (1 + 1e-12)).all()
    assert (frame[["open", "high", "low", "close"]] > 0).all().all()


def test_gap():
    frame = _bars()
    before = frame.copy()
    at = frame.index[30]
    out = gap(frame, at, -0.2)
    pd.testing.assert_frame_equal(frame, before)
    pd.testing.assert_frame_equal(out.iloc[:30], frame.iloc[:30])
    prices = ["open", "high", "low", "close"]
    np.testing.assert_array_equal(
        out.iloc[30:][prices].to_numpy(), frame.iloc[30:][prices].to_numpy() * 0.8
    )
    np.testing.assert_array_equal(out["volume"].to_numpy(), frame["volume"].to_numpy())
    _assert_consistent(out)
    # a timestamp between bars gaps from the next bar on; naive timestamps are read as UTC
    out2 = gap(frame, "2024-01-30 12:00", -0.2)
    pd.testing.assert_frame_equal(out2, out)
    for bad_at in ("2023-01-01", "2030-01-01"):
        with pytest.raises(ValueError, match="at"):
            gap(frame, bad_at, -0.1)
    with pytest.raises(ValueError, match="pct"):
        gap(frame, at, -1.0)
    with pytest.raises(ValueError, match="frame"):
        gap(frame.drop(columns="volume"), at, -0.1)


def test_volatility():
    frame = _bars()
    before = frame.copy()
    start, end, k = frame.index[20], frame.index[35], 3.0
    out = volatility(frame, start, end, k)
    pd.testing.assert_frame_equal(frame, before)
    pd.testing.assert_frame_equal(out.iloc[:20], frame.iloc[:20])
    old_r = np.diff(np.log(frame["close"].to_numpy()))  # old_r[t-1] = return into bar t
    new_r = np.diff(np.log(out["close"].to_numpy()))
    inside = np.zeros(len(frame), dtype=bool)
    inside[20:36] = True
    np.testing.assert_allclose(new_r[inside[1:]], k * old_r[inside[1:]], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(new_r[~inside[1:]], old_r[~inside[1:]], rtol=1e-10, atol=1e-14)
    # continuous after the window: every later bar is the original times one constant
    ratio = (
        out.iloc[36:][["open", "high", "low", "close"]]
        / frame.iloc[36:][["open", "high", "low", "close"]]
    )
    np.testing.assert_allclose(ratio.to_numpy(), ratio.to_numpy()[0, 0], rtol=1e-12)
    # intrabar ranges scaled with k in log space
    for col in ("open", "high", "low"):
        np.testing.assert_allclose(
            np.log(out[col] / out["close"]).to_numpy()[inside],
            k * np.log(frame[col] / frame["close"]).to_numpy()[inside],
            atol=1e-12,
        )
    np.testing.assert_array_equal(out["volume"].to_numpy(), frame["volume"].to_numpy())
    _assert_consistent(out)
    _assert_consistent(volatility(frame, start, end, 0.3))
    with pytest.raises(ValueError, match="k"):
        volatility(frame, start, end, 0.0)
    with pytest.raises(ValueError, match="end"):
        volatility(frame, end, start, 2.0)
    with pytest.raises(ValueError, match="start"):
        volatility(frame, "2030-01-01", "2030-02-01", 2.0)


def test_liquidity():
    frame = _bars()
    before = frame.copy()
    out = liquidity(frame, frame.index[10], frame.index[19], 0.1)
    pd.testing.assert_frame_equal(frame, before)
    inside = np.zeros(len(frame), dtype=bool)
    inside[10:20] = True
    np.testing.assert_allclose(
        out["volume"].to_numpy()[inside], frame["volume"].to_numpy()[inside] * 0.1
    )
    np.testing.assert_array_equal(
        out["volume"].to_numpy()[~inside], frame["volume"].to_numpy()[~inside]
    )
    pd.testing.assert_frame_equal(
        out[["open", "high", "low", "close"]], frame[["open", "high", "low", "close"]]
    )
    with pytest.raises(ValueError, match="fraction"):
        liquidity(frame, frame.index[10], frame.index[19], -0.5)
    with pytest.raises(ValueError, match="frame"):
        liquidity(frame["close"], frame.index[10], frame.index[19], 0.5)

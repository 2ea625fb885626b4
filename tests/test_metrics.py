"""Metrics on tiny, hand-computed equity curves.

Expected values are written as the arithmetic one does on paper for these few numbers, never
by calling the code under test or re-implementing it with numpy.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradeloom.errors import DataError
from tradeloom.report import Metrics, compute_metrics, infer_periods_per_year

# Monday 1 January 2024 to Friday 5 January 2024.
WEEK = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC", name="ts")
EMPTY_TRADES = pd.DataFrame({"pnl": [], "return_pct": []})
EMPTY_FILLS = pd.DataFrame({"quantity": [], "price": []})


def curve(values: list[float], index: pd.DatetimeIndex | None = None, exposure=None):
    """An equity frame with the engine's columns."""
    index = WEEK[: len(values)] if index is None else index
    gross = [0.0] * len(values) if exposure is None else exposure
    return pd.DataFrame(
        {"cash": values, "position_value": 0.0, "equity": values, "gross_exposure": gross},
        index=index,
    )


def metrics(values, *, trades=EMPTY_TRADES, fills=EMPTY_FILLS, initial=100.0, **kwargs):
    return compute_metrics(curve(values), trades, fills, initial_cash=initial, **kwargs)


# Returns against initial cash 100: 0, +10 %, -10 %, +10 %, +10 %.
UP_DOWN = [100.0, 110.0, 99.0, 108.9, 119.79]


class TestReturnStatistics:
    def test_total_return_and_cagr(self):
        m = metrics(UP_DOWN, periods_per_year=252)
        assert m.total_return == pytest.approx(0.1979)
        # 4 calendar days from the first to the last bar.
        assert m.cagr == pytest.approx(1.1979 ** (365.25 / 4) - 1)
        assert m.initial_equity == 100.0
        assert m.final_equity == pytest.approx(119.79)
        assert m.start == "2024-01-01T00:00:00+00:00"
        assert m.end == "2024-01-05T00:00:00+00:00"

    def test_volatility_sharpe_sortino(self):
        m = metrics(UP_DOWN, periods_per_year=252)
        # mean = 0.2 / 5 = 0.04; squared deviations 0.0016 + 3 * 0.0036 + 0.0196 = 0.032;
        # sample variance 0.032 / 4 = 0.008.
        assert m.annual_volatility == pytest.approx(math.sqrt(0.008 * 252))
        assert m.sharpe == pytest.approx(0.04 / math.sqrt(0.008) * math.sqrt(252))
        # Downside deviation: sqrt(mean([0, 0, 0.01, 0, 0])) = sqrt(0.002).
        assert m.sortino == pytest.approx(0.04 / math.sqrt(0.002) * math.sqrt(252))

    def test_first_return_is_relative_to_initial_cash(self):
        # 100 -> 105 on the first bar is a 5 % return; one return only: no volatility.
        m = metrics([105.0, 105.0], periods_per_year=252)
        # returns 0.05, 0: mean 0.025, sample std sqrt(2 * 0.025**2) = 0.025 * sqrt(2)
        assert m.sharpe == pytest.approx(0.025 / (0.025 * math.sqrt(2)) * math.sqrt(252))
        assert m.total_return == pytest.approx(0.05)

    def test_periods_per_year_is_inferred(self):
        m = metrics(UP_DOWN)
        assert m.periods_per_year == 252.0
        assert m.annual_volatility == pytest.approx(math.sqrt(0.008 * 252))
        crypto = compute_metrics(
            curve(UP_DOWN, pd.date_range("2024-01-05", periods=5, freq="D", tz="UTC")),
            EMPTY_TRADES,
            EMPTY_FILLS,
            initial_cash=100.0,
        )
        assert crypto.periods_per_year == 365.0
        assert crypto.annual_volatility == pytest.approx(math.sqrt(0.008 * 365))


class TestDrawdown:
    def test_depth_duration_and_calmar(self):
        m = metrics(UP_DOWN, periods_per_year=252)
        # Peak 110 at bar 1, trough 99 at bar 2, recovered by 119.79 at bar 4.
        assert m.max_drawdown == pytest.approx(-0.1)
        assert m.max_drawdown_duration_bars == 3
        assert m.max_drawdown_duration_days == 3.0
        assert m.calmar == pytest.approx((1.1979 ** (365.25 / 4) - 1) / 0.1)

    def test_unrecovered_drawdown_runs_to_the_end(self):
        m = metrics([100.0, 120.0, 90.0, 100.0])
        assert m.max_drawdown == pytest.approx(90 / 120 - 1)
        assert m.max_drawdown_duration_bars == 2  # peak at bar 1, last bar is bar 3
        assert m.max_drawdown_duration_days == 2.0

    def test_drawdown_from_initial_cash(self):
        # Below the initial cash from the first bar; recovered at the third bar.
        m = metrics([95.0, 98.0, 101.0])
        assert m.max_drawdown == pytest.approx(-0.05)
        assert m.max_drawdown_duration_bars == 3
        assert m.max_drawdown_duration_days == 2.0  # timed from the first bar

    def test_longest_is_not_the_deepest(self):
        index = pd.DatetimeIndex(
            [
                "2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04",
                "2024-01-08", "2024-01-09", "2024-01-10",
            ],
            tz="UTC",
        )  # fmt: skip
        values = [100.0, 90.0, 100.0, 99.0, 99.5, 99.8, 100.5]
        m = compute_metrics(curve(values, index), EMPTY_TRADES, EMPTY_FILLS, initial_cash=100.0)
        assert m.max_drawdown == pytest.approx(-0.1)  # the first, short dip
        # The second dip: peak 100 on Jan 3, recovered on Jan 10: 4 bars, 7 days.
        assert m.max_drawdown_duration_bars == 4
        assert m.max_drawdown_duration_days == 7.0

    def test_no_drawdown(self):
        m = metrics([100.0, 101.0, 103.0])
        assert m.max_drawdown == 0.0
        assert m.max_drawdown_duration_bars == 0
        assert m.max_drawdown_duration_days == 0.0
        assert m.calmar is None


class TestTradesAndActivity:
    TRADES = pd.DataFrame({"pnl": [10.0, -5.0, 20.0, 0.0], "return_pct": [0.1, -0.05, 0.2, 0.0]})
    FILLS = pd.DataFrame({"quantity": [1.0, -1.0, 2.0], "price": [100.0, 110.0, 50.0]})

    def test_trade_statistics(self):
        m = metrics(UP_DOWN, trades=self.TRADES, fills=self.FILLS)
        assert m.num_trades == 4
        assert m.num_fills == 3
        assert m.win_rate == 0.5  # the break-even trade is not a win
        assert m.profit_factor == pytest.approx(30 / 5)
        assert m.avg_trade == pytest.approx(25 / 4)
        assert m.avg_trade_return == pytest.approx(0.25 / 4)

    def test_exposure(self):
        frame = curve(UP_DOWN, exposure=[0.0, 50.0, 60.0, 0.0, 10.0])
        m = compute_metrics(frame, EMPTY_TRADES, EMPTY_FILLS, initial_cash=100.0)
        assert m.exposure == pytest.approx(3 / 5)

    def test_turnover(self):
        m = metrics(UP_DOWN, fills=self.FILLS, periods_per_year=252)
        notional = 100 + 110 + 100
        mean_equity = (100 + 110 + 99 + 108.9 + 119.79) / 5
        assert m.turnover == pytest.approx(notional / mean_equity * 252 / 5)

    def test_decimal_values_are_accepted(self):
        from decimal import Decimal

        fills = pd.DataFrame({"quantity": [Decimal("2")], "price": [Decimal("50.5")]})
        trades = pd.DataFrame({"pnl": [Decimal("1.5")], "return_pct": [Decimal("0.01")]})
        m = metrics(UP_DOWN, trades=trades, fills=fills, periods_per_year=252)
        assert m.turnover == pytest.approx(101 / (537.69 / 5) * 252 / 5)
        assert m.avg_trade == 1.5


class TestBenchmark:
    def bench(self, prices):
        return pd.Series(prices, index=WEEK[: len(prices)])

    def test_benchmark_twice_as_volatile_gives_beta_half(self):
        # Strategy returns after the first bar: +10 %, -10 %, +10 %, +10 %; benchmark twice that.
        m = metrics(UP_DOWN, benchmark=self.bench([50.0, 60.0, 48.0, 57.6, 69.12]))
        assert m.beta == pytest.approx(0.5)
        assert m.alpha == pytest.approx(0.0, abs=1e-12)
        assert m.benchmark_return == pytest.approx(69.12 / 50 - 1)

    def test_benchmark_half_as_volatile_gives_beta_two(self):
        m = metrics(UP_DOWN, benchmark=self.bench([200.0, 210.0, 199.5, 209.475, 219.94875]))
        assert m.beta == pytest.approx(2.0)
        assert m.alpha == pytest.approx(0.0, abs=1e-12)

    def test_alpha_is_annualised_intercept(self):
        bench_returns = [0.01, -0.02, 0.03, 0.0]
        prices, values = [100.0], [100.0]
        for b in bench_returns:
            prices.append(prices[-1] * (1 + b))
            values.append(values[-1] * (1 + 0.001 + 1.5 * b))
        m = metrics(values, benchmark=self.bench(prices), periods_per_year=252)
        assert m.beta == pytest.approx(1.5)
        assert m.alpha == pytest.approx(0.001 * 252)

    def test_flat_benchmark_has_no_beta(self):
        m = metrics(UP_DOWN, benchmark=self.bench([10.0] * 5))
        assert m.benchmark_return == 0.0
        assert m.beta is None
        assert m.alpha is None

    def test_no_benchmark(self):
        m = metrics(UP_DOWN)
        assert (m.benchmark_return, m.alpha, m.beta) == (None, None, None)


class TestUndefinedValues:
    def test_flat_curve(self):
        m = metrics([100.0] * 5)
        assert m.total_return == 0.0
        assert m.annual_volatility == 0.0
        assert m.sharpe is None
        assert m.sortino is None
        assert m.calmar is None
        assert m.win_rate is None
        assert m.profit_factor is None
        assert m.avg_trade is None
        assert m.avg_trade_return is None
        assert m.turnover == 0.0
        assert m.exposure == 0.0

    def test_constant_growth_has_no_sharpe(self):
        m = metrics([101.0, 102.01, 103.0301, 104.060401])
        assert m.sharpe is None  # zero volatility (within tolerance)
        assert m.sortino is None  # no losing bar

    def test_no_losing_trade_has_no_profit_factor(self):
        trades = pd.DataFrame({"pnl": [1.0, 2.0], "return_pct": [0.01, 0.02]})
        m = metrics(UP_DOWN, trades=trades)
        assert m.profit_factor is None
        assert m.win_rate == 1.0

    def test_single_bar(self):
        m = metrics([110.0])
        assert m.total_return == pytest.approx(0.1)
        assert m.cagr is None  # no elapsed time
        assert m.annual_volatility is None  # one return
        assert m.sharpe is None
        assert m.periods_per_year == 252.0

    def test_negative_equity(self):
        m = metrics([100.0, -20.0, 10.0])
        assert m.cagr == pytest.approx(0.1 ** (365.25 / 2) - 1)  # final 10 > 0: defined
        assert m.annual_volatility is None  # a return on a negative base is meaningless
        assert m.sharpe is None
        assert m.max_drawdown == pytest.approx(-1.2)
        wiped = metrics([100.0, 0.0])
        assert wiped.cagr == -1.0
        assert metrics([100.0, -1.0]).cagr is None

    def test_empty_curve_and_bad_cash_raise(self):
        with pytest.raises(DataError, match="empty"):
            compute_metrics(curve([])[:0], EMPTY_TRADES, EMPTY_FILLS, initial_cash=100.0)
        with pytest.raises(DataError, match="initial cash"):
            metrics(UP_DOWN, initial=0.0)


class TestSerialisation:
    def test_json_is_byte_identical_and_finite(self):
        trades = pd.DataFrame({"pnl": [1.0, 2.0], "return_pct": [0.01, 0.02]})
        first = metrics(UP_DOWN, trades=trades).to_json()
        second = metrics(UP_DOWN, trades=trades).to_json()
        assert first == second
        for token in ("NaN", "Infinity"):
            assert token not in first
        data = json.loads(first)
        assert list(data) == sorted(data)
        assert data["profit_factor"] is None
        assert data["total_return"] == 0.1979  # rounded to 12 significant digits
        assert set(data) == set(Metrics.model_fields)

    def test_display_rows(self):
        rows = dict(metrics(UP_DOWN, periods_per_year=252).display_rows())
        assert rows["Total return"] == "19.79%"
        assert rows["Max drawdown"] == "-10.00%"
        assert rows["Longest drawdown"] == "3 bars (3.0 days)"
        assert rows["Final equity"] == "119.79"
        assert rows["Profit factor"] == "—"
        assert rows["Beta"] == "—"
        assert rows["Bars per year"] == "252"

    def test_frozen_and_documented(self):
        m = metrics(UP_DOWN)
        with pytest.raises(ValueError):
            m.total_return = 1.0  # type: ignore[misc]
        undocumented = [k for k, f in Metrics.model_fields.items() if not f.description]
        assert undocumented == []

    def test_importing_metrics_does_not_import_plotly(self):
        code = "import sys, tradeloom.report; print('plotly' in sys.modules)"
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "False"


class TestPeriodsPerYear:
    def test_daily_weekdays(self):
        assert infer_periods_per_year(pd.bdate_range("2024-01-01", periods=40, tz="UTC")) == 252

    def test_daily_crypto(self):
        assert infer_periods_per_year(pd.date_range("2024-01-01", periods=40, tz="UTC")) == 365

    def test_naive_index_is_utc(self):
        assert infer_periods_per_year(pd.bdate_range("2024-01-01", periods=40)) == 252

    def test_hourly_fx(self):
        # FX trades from Sunday 22:00 to Friday 22:00 UTC: Sunday bars, no Saturday bars.
        hours = pd.date_range("2024-01-07 22:00", "2024-01-19 21:00", freq="h", tz="UTC")
        closed = (hours.day_of_week == 5) | ((hours.day_of_week == 4) & (hours.hour >= 22))
        closed |= (hours.day_of_week == 6) & (hours.hour < 22)
        assert infer_periods_per_year(hours[~closed]) == 24 * 252

    def test_one_minute_equity_session(self):
        days = pd.bdate_range("2024-01-01", periods=5, tz="UTC")
        stamps = [
            day + pd.Timedelta(hours=14, minutes=30) + pd.Timedelta(minutes=m)
            for day in days
            for m in range(390)
        ]
        assert infer_periods_per_year(pd.DatetimeIndex(stamps)) == 390 * 252

    def test_one_minute_crypto(self):
        minutes = pd.date_range("2024-01-05", periods=3 * 1440, freq="min", tz="UTC")
        assert infer_periods_per_year(minutes) == 1440 * 365

    def test_weekly_and_monthly(self):
        assert infer_periods_per_year(pd.date_range("2024-01-05", periods=20, freq="W-FRI")) == 52
        assert infer_periods_per_year(pd.date_range("2020-01-31", periods=24, freq="ME")) == 12

    def test_needs_two_timestamps(self):
        with pytest.raises(DataError, match="two distinct"):
            infer_periods_per_year(pd.DatetimeIndex(["2024-01-01"]))


@given(
    values=st.lists(st.floats(min_value=1e-3, max_value=1e9), min_size=1, max_size=80),
    pnl=st.lists(st.floats(min_value=-1e6, max_value=1e6), max_size=20),
    bench=st.lists(st.floats(min_value=1.0, max_value=1e4), min_size=80, max_size=80),
)
def test_metrics_are_finite_or_none(values, pnl, bench):
    index = pd.date_range("2024-01-01", periods=len(values), freq="D", tz="UTC")
    trades = pd.DataFrame({"pnl": pnl, "return_pct": [p / 1e6 for p in pnl]})
    m = compute_metrics(
        curve(values, index),
        trades,
        EMPTY_FILLS,
        initial_cash=100.0,
        benchmark=pd.Series(bench[: len(values)], index=index),
    )
    for name, value in m.model_dump().items():
        if isinstance(value, float):
            assert math.isfinite(value), name
    assert -1.0 <= m.max_drawdown <= 0.0
    assert 0 <= m.max_drawdown_duration_bars <= len(values)
    assert (m.max_drawdown == 0.0) == (m.max_drawdown_duration_bars == 0)
    json.loads(m.to_json())

"""The vector engine: hand-computed fills, and the same orders, fills, trades and equity as the
event engine, on scripted signals, random signals and the SMA crossover.

Every scripted test runs :class:`Table` through both engines: its ``signals`` feed the vector
engine and its ``on_bar`` applies the same signals through the ``Context`` (the rule table of
:class:`tradeloom.vector.Signals`), so each hand-computed expectation is checked on both sides
and the two sides are checked against each other, frame by frame, exactly.
"""

from __future__ import annotations

import math
import subprocess
import sys
import types
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest

from tradeloom.api import run_backtest
from tradeloom.data import MarketData
from tradeloom.engine.result import BacktestResult
from tradeloom.errors import ConfigError, RunError
from tradeloom.execution import NoFees, PercentFees, PerUnitFees, SimulatedBroker
from tradeloom.model import Bar
from tradeloom.strategy import Context, Strategy
from tradeloom.vector import SignalData, Signals, Sizing, run_signals, signal_data, sweep
from tradeloom_strategies import DonchianBreakout, RsiMeanReversion, SmaCrossover
from tradeloom_strategies.sizing import is_flat, position_size

from helpers import GAP_ROWS, bars

ROWS = GAP_ROWS
FIELDS = ("long_entry", "long_exit", "short_entry", "short_exit")
Script = Mapping[tuple[str, int], str]


class Table(Strategy):
    """Signals given by hand as ``{(symbol, own bar index): "long_entry short_exit ..."}``.

    ``signals`` returns them for the vector engine; ``on_bar`` applies them through the
    Context with the rule table of :class:`Signals` and ``position_size``, as a first-party
    strategy would, for the event engine.
    """

    def __init__(
        self,
        script: Script,
        *,
        quantity: float | None = None,
        fraction: float | None = None,
        long_short: bool = False,
        retarget: bool = False,
    ) -> None:
        super().__init__()
        self.script = {key: set(value.split()) for key, value in script.items()}
        self.sizing = Sizing(quantity=quantity, fraction=fraction)
        self.long_short = long_short
        self.retarget = retarget

    def signals(self, data: SignalData) -> Signals:
        out = Signals.empty(data, self.sizing, long_short=self.long_short, retarget=self.retarget)
        for (symbol, i), names in self.script.items():
            row, col = data.rows(symbol)[i], data.column(symbol)
            for name in names:
                getattr(out, name)[row, col] = True
        return out

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        names = self.script.get((bar.symbol, ctx.bar_count(bar.symbol) - 1), set())
        held = ctx.position(bar.symbol).quantity
        target = None
        if is_flat(held):
            if "long_entry" in names:
                target = self._size(ctx, bar.symbol, True)
            elif self.long_short and "short_entry" in names:
                target = -self._size(ctx, bar.symbol, False)
        elif held > 0:
            if self.long_short and "short_entry" in names:
                target = -self._size(ctx, bar.symbol, False)
            elif self.retarget and "long_entry" in names:
                target = self._size(ctx, bar.symbol, True)
            elif "long_exit" in names:
                target = 0.0
        else:
            if "long_entry" in names:
                target = self._size(ctx, bar.symbol, True)
            elif self.retarget and "short_entry" in names:
                target = -self._size(ctx, bar.symbol, False)
            elif "short_exit" in names:
                target = 0.0
        if target is not None:
            ctx.order_target(bar.symbol, target)

    def _size(self, ctx: Context, symbol: str, long: bool) -> float:
        sizing = types.SimpleNamespace(quantity=self.sizing.quantity, fraction=self.sizing.fraction)
        return position_size(ctx, symbol, sizing, long=long)  # type: ignore[arg-type]


def both(
    frames: dict[str, pd.DataFrame] | pd.DataFrame,
    make: type[Strategy] | object,
    *,
    cash: float = 10_000.0,
    broker: SimulatedBroker.Params | None = None,
) -> BacktestResult:
    """Run a fresh strategy from ``make()`` through both engines; assert every frame is
    identical; return the vector result."""
    if isinstance(frames, pd.DataFrame):
        frames = {"X": frames}
    market = MarketData(frames)
    params = broker or SimulatedBroker.Params()
    event = run_backtest(market, [("s", make())], broker=SimulatedBroker(params), initial_cash=cash)
    vector = run_signals(market, make(), broker_params=params, initial_cash=cash, strategy_id="s")
    assert vector.provenance["engine"] == "vector"
    for name in ("orders", "fills", "trades", "equity"):
        pd.testing.assert_frame_equal(getattr(event, name), getattr(vector, name), check_exact=True)
    assert vector.metrics == event.metrics
    assert vector.conventions == event.conventions
    return vector


def table(script: Script, **kwargs: object) -> object:
    return lambda: Table(script, **kwargs)  # type: ignore[arg-type]


def fills_of(result: BacktestResult) -> list[tuple[str, float, float]]:
    return list(zip(result.fills.side, result.fills.quantity, result.fills.price, strict=True))


def at(i: int) -> pd.Timestamp:
    return bars(ROWS).index[i]


# --- hand-computed fills -----------------------------------------------------------------------


def test_long_round_trip_fills_at_next_opens_and_marks_at_closes() -> None:
    r = both(bars(ROWS), table({("X", 0): "long_entry", ("X", 2): "long_exit"}, quantity=10))
    assert fills_of(r) == [("buy", 10, 102.0), ("sell", 10, 110.0)]
    assert list(r.fills.time) == [at(1), at(3)]
    (trade,) = r.trades.itertuples()
    assert (trade.side, trade.quantity, trade.entry_price, trade.exit_price) == (
        "long", 10, 102.0, 110.0,
    )  # fmt: skip
    assert trade.pnl == pytest.approx(80.0) and trade.bars_held == 2
    assert list(r.equity.cash) == pytest.approx([10_000, 8_980, 8_980, 10_080, 10_080])
    assert list(r.equity.equity) == pytest.approx([10_000, 10_010, 10_030, 10_080, 10_080])
    assert list(r.orders.client_order_id) == ["s-1", "s-2"]
    assert list(r.orders.created_time) == [at(0), at(2)]
    assert list(r.orders.status) == ["filled", "filled"]


def test_percent_fees_with_minimum_and_slippage_against_the_trader() -> None:
    params = SimulatedBroker.Params(fees=PercentFees(rate=0.001, minimum=1.0), slippage_bps=10)
    r = both(
        bars(ROWS),
        table({("X", 0): "long_entry", ("X", 2): "long_exit"}, quantity=10),
        broker=params,
    )
    assert fills_of(r) == [
        ("buy", 10, pytest.approx(102.102)),
        ("sell", 10, pytest.approx(109.89)),
    ]
    assert list(r.fills.fee) == pytest.approx([1.02102, 1.0989])
    assert r.trades.pnl[0] == pytest.approx((109.89 - 102.102) * 10 - 1.02102 - 1.0989)
    assert r.trades.fees[0] == pytest.approx(2.11992)
    assert r.equity.cash.iloc[-1] == pytest.approx(10_000 + 1_098.9 - 1_021.02 - 2.11992)
    # one unit: 0.102 of fee is below the minimum of 1
    r = both(bars(ROWS), table({("X", 0): "long_entry"}, quantity=1), broker=params)
    assert list(r.fills.fee) == [1.0]


def test_per_unit_fees_with_minimum_and_cap() -> None:
    params = SimulatedBroker.Params(
        fees=PerUnitFees(per_unit=0.05, minimum=1.0, maximum_pct=0.0005)
    )
    r = both(
        bars(ROWS),
        table({("X", 0): "long_entry", ("X", 2): "long_exit"}, quantity=10),
        broker=params,
    )
    # max(10 × 0.05, 1) = 1, capped at 0.05 % of 1,020 and 1,100
    assert list(r.fills.fee) == pytest.approx([0.51, 0.55])


def test_short_round_trip() -> None:
    r = both(
        bars(ROWS),
        table(
            {("X", 0): "short_entry", ("X", 2): "short_exit", ("X", 3): "short_exit"},
            quantity=10,
            long_short=True,
        ),
        broker=SimulatedBroker.Params(fees=PercentFees(rate=0.001)),
    )
    assert fills_of(r) == [("sell", 10, 102.0), ("buy", 10, 110.0)]
    (trade,) = r.trades.itertuples()
    assert trade.side == "short"
    assert trade.pnl == pytest.approx(-80.0 - 1.02 - 1.10)
    assert trade.fees == pytest.approx(2.12)
    # short at the b2 close (105): equity = cash + (-10 × 105)
    assert r.equity.equity.iloc[2] == pytest.approx(10_000 + 1_020 - 1.02 - 1_050)


def test_short_entry_is_ignored_when_long_only() -> None:
    r = both(bars(ROWS), table({("X", 0): "short_entry"}, quantity=10))
    assert len(r.orders) == 0


def test_buy_the_account_cannot_pay_for_is_rejected_with_reason() -> None:
    r = both(bars(ROWS), table({("X", 0): "long_entry"}, quantity=11), cash=1_000.0)
    (order,) = r.orders.itertuples()
    assert order.status == "rejected"
    assert order.reason == "insufficient cash: order needs 1,100.00, available 1,000.00"
    assert len(r.fills) == 0 and r.equity.cash.iloc[-1] == 1_000.0


def test_gap_that_makes_a_buy_unaffordable_cancels_it_at_fill() -> None:
    # estimated at the b2 close: 9.2 × 105 = 966 <= 1,000; at the b3 open: 9.2 × 110 = 1,012
    r = both(bars(ROWS), table({("X", 2): "long_entry"}, quantity=9.2), cash=1_000.0)
    (order,) = r.orders.itertuples()
    assert order.status == "canceled"
    assert order.reason == "insufficient cash at fill: needs 1,012.00, cash 1,000.00"
    assert order.updated_time == at(3)
    assert len(r.fills) == 0


def test_covering_a_short_is_never_refused_for_cash() -> None:
    # 10 % slippage, never beyond the bar's range: short at max(102 × 0.9, low 101) = 101,
    # cover at min(110 × 1.1, high 112) = 112: 1,120 > the 1,110 of cash
    r = both(
        bars(ROWS),
        table({("X", 0): "short_entry", ("X", 2): "short_exit"}, quantity=10, long_short=True),
        cash=100.0,
        broker=SimulatedBroker.Params(slippage_bps=1000),
    )
    assert fills_of(r) == [("sell", 10, pytest.approx(101.0)), ("buy", 10, pytest.approx(112.0))]
    assert r.equity.cash.iloc[-1] == pytest.approx(100 + 1_010 - 1_120)


def test_flip_is_one_order_closing_one_trade_and_opening_the_other_side() -> None:
    r = both(
        bars(ROWS),
        table(
            {("X", 0): "long_entry", ("X", 1): "short_entry", ("X", 3): "long_entry"},
            quantity=10,
            long_short=True,
        ),
        broker=SimulatedBroker.Params(fees=PercentFees(rate=0.001)),
    )
    assert fills_of(r) == [("buy", 10, 102.0), ("sell", 20, 103.0), ("buy", 20, 95.0)]
    long, short = r.trades.itertuples()
    assert (long.side, long.quantity, long.entry_price, long.exit_price) == (
        "long", 10, 102.0, 103.0,
    )  # fmt: skip
    # entry fee 1.02, half of the flip's 2.06 fee closes the long
    assert long.pnl == pytest.approx(10.0 - 1.02 - 1.03) and long.bars_held == 1
    assert (short.side, short.entry_price, short.exit_price) == ("short", 103.0, 95.0)
    assert short.pnl == pytest.approx(80.0 - 1.03 - 0.95) and short.bars_held == 2
    assert r.equity.equity.iloc[-1] == pytest.approx(
        10_000 - 1_020 + 2_060 - 1_900 - 1.02 - 2.06 - 1.90 + 10 * 96
    )


def test_signal_on_the_last_bar_never_fills() -> None:
    r = both(bars(ROWS), table({("X", 4): "long_entry"}, quantity=10))
    (order,) = r.orders.itertuples()
    assert order.status == "canceled"
    assert order.reason == "backtest ended before the order could fill"
    assert order.updated_time == at(4)


def test_same_bar_close_fills_are_an_explicit_opt_in() -> None:
    r = both(
        bars(ROWS),
        table({("X", 0): "long_entry", ("X", 2): "long_exit"}, quantity=10),
        broker=SimulatedBroker.Params(fill_at="close"),
    )
    assert fills_of(r) == [("buy", 10, 100.0), ("sell", 10, 105.0)]
    assert r.trades.bars_held[0] == 2
    assert any("OPTIMISTIC" in line for line in r.conventions)


def test_fraction_sizing_uses_equity_and_whole_units() -> None:
    # 0.5 × 10,000 / 100 (the b0 close) = 50 units, filled at 102
    r = both(bars(ROWS), table({("X", 0): "long_entry"}, fraction=0.5))
    assert fills_of(r) == [("buy", 50, 102.0)]


def test_retarget_resizes_a_held_position() -> None:
    # b2: equity 4,900 + 50 × 105 = 10,150; target min(0.5 × 10,150, 0.5 × 4,900) / 105 → 23
    r = both(
        bars(ROWS),
        table({("X", 0): "long_entry", ("X", 2): "long_entry"}, fraction=0.5, retarget=True,
              long_short=True),
    )  # fmt: skip
    assert fills_of(r) == [("buy", 50, 102.0), ("sell", 27, 110.0)]
    assert r.trades.quantity[0] == 27


def test_short_selling_can_be_disabled() -> None:
    r = both(
        bars(ROWS),
        table({("X", 0): "short_entry"}, quantity=10, long_short=True),
        broker=SimulatedBroker.Params(allow_short=False),
    )
    (order,) = r.orders.itertuples()
    assert order.status == "rejected"
    assert (
        order.reason
        == "short selling is disabled: selling 10 X with 0 held and 0 already being sold"
    )


def test_symbols_with_gaps_count_their_own_bars() -> None:
    x = bars(ROWS)
    y = bars([(50.0, 51.0, 49.0, 50.0), (55.0, 56.0, 54.0, 55.0), (60.0, 61.0, 59.0, 60.0)])
    y.index = x.index[[1, 3, 4]]
    r = both(
        {"X": x, "Y": y},
        table({("Y", 0): "long_entry", ("Y", 1): "long_exit", ("X", 0): "long_entry"}, quantity=10),
    )
    y_trade = r.trades[r.trades.symbol == "Y"].iloc[0]
    # bought at Y's next bar (b3 open 55), sold at the one after (b4 open 60): one own bar apart
    assert (y_trade.entry_price, y_trade.exit_price, y_trade.bars_held) == (55.0, 60.0, 1)
    assert y_trade.entry_time == at(3)
    # b2: Y's buy is still working (no Y bar) and X is marked at 105
    assert r.equity.equity.iloc[2] == pytest.approx(10_000 - 1_020 + 1_050)


# --- the engines agree on random signals ---------------------------------------------------------


def _random_case(
    seed: int,
) -> tuple[dict[str, pd.DataFrame], object, SimulatedBroker.Params, float]:
    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(1, 4)), int(rng.integers(20, 80))
    index = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC", name="ts")
    frames = {}
    for j in range(m):
        keep = rng.random(n) >= (0.3 * rng.random() if j else 0.0)
        if j:
            keep[: int(rng.integers(0, n // 3))] = False
        keep[-1] = keep[-1] or j == 0
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
        open_ = close * np.exp(rng.normal(0, 0.02, n))
        frame = pd.DataFrame(
            {
                "open": open_,
                "high": np.maximum(open_, close) * 1.01,
                "low": np.minimum(open_, close) * 0.99,
                "close": close,
                "volume": 1000.0,
            },
            index=index,
        )
        frames[f"S{j}"] = frame[keep] if keep.sum() >= 2 else frame
    p = rng.random(4) * 0.3
    script = {}
    for symbol, frame in frames.items():
        for i in range(len(frame)):
            names = [f for f, q in zip(FIELDS, p, strict=True) if rng.random() < q]
            if names:
                script[(symbol, i)] = " ".join(names)
    sizing = (
        {"quantity": float(rng.integers(1, 30))}
        if rng.random() < 0.4
        else {"fraction": float(rng.choice([0.3, 0.9, 1.0]))}
    )
    make = table(
        script, **sizing, long_short=bool(rng.random() < 0.6), retarget=bool(rng.random() < 0.4)
    )
    fees = [
        NoFees(),
        PercentFees(rate=0.002, minimum=1.0),
        PerUnitFees(per_unit=0.05, minimum=0.5, maximum_pct=0.003),
    ][int(rng.integers(0, 3))]
    params = SimulatedBroker.Params(
        fill_at="close" if rng.random() < 0.3 else "next_open",
        fees=fees,
        slippage_bps=float(rng.choice([0.0, 5.0, 50.0])),
        allow_short=bool(rng.random() < 0.8),
    )
    return frames, make, params, float(rng.choice([500.0, 3_000.0, 100_000.0]))


def test_engines_agree_on_random_signals_costs_and_gaps() -> None:
    reasons: set[str] = set()
    for seed in range(60):
        frames, make, params, cash = _random_case(seed)
        r = both(frames, make, cash=cash, broker=params)
        reasons.update(reason.split(":")[0] for reason in r.orders.reason)
    # the cases reach every outcome an order can have
    assert reasons >= {
        "",
        "insufficient cash",
        "insufficient cash at fill",
        "short selling is disabled",
        "backtest ended before the order could fill",
    }


# --- the SMA crossover -------------------------------------------------------------------------


def random_walk(n: int, seed: int = 42) -> pd.DataFrame:
    """One-minute bars of a geometric random walk from 100 with small open gaps, on a tick."""
    rng = np.random.default_rng(seed)
    close = np.round(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0005, n))), 5)
    open_ = np.round(np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, 0.0001, n)), 5)
    index = pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC", name="ts")
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + 0.001,
            "low": np.minimum(open_, close) - 0.001,
            "close": close,
            "volume": 1.0,
        },
        index=index,
    )


@pytest.fixture(scope="module")
def walk() -> pd.DataFrame:
    return random_walk(20_000)


def test_sma_crossover_vector_equals_event_on_a_random_walk(walk: pd.DataFrame) -> None:
    r = both(walk, lambda: SmaCrossover(fast=10, slow=30, quantity=10), cash=100_000.0)
    assert len(r.trades) > 300
    pnl = ((r.trades.exit_price - r.trades.entry_price) * r.trades.quantity).sum()
    assert r.trades.pnl.sum() == pytest.approx(pnl)


def test_sma_long_short_fraction_with_costs_equals_event(walk: pd.DataFrame) -> None:
    params = SimulatedBroker.Params(fees=PercentFees(rate=0.0005, minimum=1.0), slippage_bps=2)
    r = both(
        walk,
        lambda: SmaCrossover(fast=20, slow=50, fraction=0.9, direction="long_short"),
        cash=100_000.0,
        broker=params,
    )
    assert set(r.trades.side) == {"long", "short"}


def test_first_party_strategies_decline_nothing(walk: pd.DataFrame) -> None:
    data = signal_data(MarketData({"X": walk.iloc[:500]}))
    for strategy in (SmaCrossover(), DonchianBreakout(), RsiMeanReversion()):
        assert isinstance(strategy.signals(data), Signals)  # type: ignore[attr-defined]


# --- sweeps ------------------------------------------------------------------------------------


def test_sweep_rows_and_best_row_equal_a_direct_run(walk: pd.DataFrame) -> None:
    market = MarketData({"X": walk})
    grid = {"fast": [5, 10, 20, 40], "slow": [20, 40, 80], "quantity": [10]}
    table_ = sweep(market, SmaCrossover, grid, metric="sharpe")
    assert len(table_) == 12
    assert list(table_.columns) == [
        "fast", "slow", "quantity", "num_trades", "total_return", "sharpe", "sortino",
        "max_drawdown", "final_equity", "error",
    ]  # fmt: skip
    invalid = table_[table_.error.notna()]
    assert sorted(zip(invalid.fast, invalid.slow, strict=True)) == [(20, 20), (40, 20), (40, 40)]
    assert invalid.sharpe.isna().all()
    valid = table_[table_.error.isna()]
    assert list(valid.sharpe) == sorted(valid.sharpe, reverse=True)
    best = table_.iloc[0]
    direct = run_signals(
        market, SmaCrossover(fast=int(best.fast), slow=int(best.slow), quantity=10)
    )
    m = direct.metrics
    assert best.num_trades == m.num_trades
    assert best.final_equity == m.final_equity
    assert best.total_return == pytest.approx(m.total_return, rel=1e-12)
    assert best.sharpe == pytest.approx(m.sharpe, rel=1e-9)
    assert best.sortino == pytest.approx(m.sortino, rel=1e-9)
    assert best.max_drawdown == pytest.approx(m.max_drawdown, rel=1e-12)


@pytest.mark.parametrize("path", ["fused", "signals", "event"])
def test_evaluate_params_keeps_the_equity_at_the_end_of_every_day(
    walk: pd.DataFrame, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Research keeps each combination's daily equity: the kernels' bucket output equals the
    direct run's equity curve sampled at each day's last bar, on every evaluation path."""
    from tradeloom.vector.sweeps import Buckets, evaluate_params

    market = MarketData({"X": walk.iloc[:6_000]})
    if path != "fused":
        monkeypatch.setattr(SmaCrossover, "fused_sweep", None, raising=False)
    if path == "event":
        monkeypatch.setattr(SmaCrossover, "signals", lambda self, data: None)
    ts = market.frames["X"].index.as_unit("ns").asi8
    buckets = Buckets.daily(ts)
    days = pd.DatetimeIndex(ts, tz="UTC").floor("D")
    assert len(buckets) == days.nunique() > 3
    params = [SmaCrossover.Params(fast=f, slow=s, quantity=10) for f, s in [(5, 20), (10, 40)]]
    stats, daily = evaluate_params(market, SmaCrossover, params, buckets=buckets)
    assert daily.shape == (2, len(buckets))
    for row, p in enumerate(params):
        direct = run_signals(market, SmaCrossover(p))
        curve = direct.equity["equity"]
        expected = curve.groupby(curve.index.floor("D")).last().to_numpy()
        np.testing.assert_array_equal(daily[row], expected)
        assert stats[row, 0] == direct.metrics.num_trades
        assert stats[row, 3] == pytest.approx(direct.metrics.sortino, rel=1e-9)


def test_sweep_without_a_fused_path_simulates_each_signal_set(walk: pd.DataFrame) -> None:
    market = MarketData({"X": walk.iloc[:5_000]})
    params = SimulatedBroker.Params(fees=PercentFees(rate=0.001), slippage_bps=1)
    grid = {"entry": [20, 60], "exit": [10, 30], "fraction": [0.5]}
    table_ = sweep(market, DonchianBreakout, grid, metric="final_equity", broker_params=params)
    assert len(table_) == 4 and table_.error.isna().all()
    for row in table_.itertuples():
        direct = run_signals(
            market, DonchianBreakout(entry=row.entry, exit=row.exit, fraction=0.5),
            broker_params=params,
        )  # fmt: skip
        assert row.final_equity == direct.metrics.final_equity
        assert row.num_trades == direct.metrics.num_trades


def test_sweep_rejects_unknown_params_and_metrics(walk: pd.DataFrame) -> None:
    market = MarketData({"X": walk.iloc[:100]})
    with pytest.raises(ConfigError, match="no param 'fsat'"):
        sweep(market, SmaCrossover, {"fsat": [1]})
    with pytest.raises(ConfigError, match="unknown sweep metric"):
        sweep(market, SmaCrossover, {"fast": [5]}, metric="cagr")


# --- the contract ------------------------------------------------------------------------------


class NoSignals(Strategy):
    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if ctx.bar_count(bar.symbol) == 1:
            ctx.order_target(bar.symbol, 5)


class Declines(NoSignals):
    def signals(self, data: SignalData) -> Signals | None:
        return None


class Broken(NoSignals):
    def __init__(self, produce: object) -> None:
        super().__init__()
        self.produce = produce

    def signals(self, data: SignalData) -> Signals:
        return self.produce(data)  # type: ignore[operator]


@pytest.mark.parametrize("strategy", [NoSignals(), Declines()], ids=["missing", "declines"])
def test_a_strategy_without_signals_falls_back_to_the_event_engine(strategy: Strategy) -> None:
    r = run_signals(MarketData({"X": bars(ROWS)}), strategy, initial_cash=1_000.0)
    assert r.provenance["engine"] == "event"
    assert fills_of(r) == [("buy", 5, 102.0)]
    with pytest.raises(ConfigError, match="the vector engine cannot run it"):
        run_signals(MarketData({"X": bars(ROWS)}), strategy, fallback=False)


def test_malformed_signals_fail_with_the_strategy_named() -> None:
    market = MarketData({"X": bars(ROWS)})

    def wrong_shape(data: SignalData) -> Signals:
        s = Signals.empty(data, Sizing(quantity=1))
        return Signals(np.zeros(3, bool), *s.arrays()[1:], sizing=s.sizing)

    with pytest.raises(ConfigError, match=r"'broken' \(Broken\): signals\(\).long_entry has shape"):
        run_signals(market, Broken(wrong_shape))
    with pytest.raises(RunError, match="raised in signals: ZeroDivisionError"):
        run_signals(market, Broken(lambda data: 1 / 0))
    with pytest.raises(RunError, match="must return Signals or None"):
        run_signals(market, Broken(lambda data: "yes"))
    with pytest.raises(ConfigError, match="exactly one of quantity and fraction"):
        Sizing(quantity=1, fraction=0.5)


def test_signal_data_merges_symbols_and_compacts_each_one() -> None:
    x = bars(ROWS)
    y = bars(ROWS[:2])
    y.index = x.index[[1, 3]]
    data = signal_data(MarketData({"Y": y, "X": x}))
    assert data.symbols == ["X", "Y"] and data.shape == (5, 2)
    assert list(data.ts) == list(x.index.as_unit("ns").asi8)
    assert np.isnan(data.close[[0, 2, 4], 1]).all()
    assert list(data.rows("Y")) == [1, 3]
    assert list(data.own("Y")) == [100.0, 103.0]
    assert list(data.expand("Y", [True, False])) == [False, True, False, False, False]
    with pytest.raises(ValueError):
        data.close[0, 0] = 1.0  # read-only


def test_fsum_kernel_is_exactly_math_fsum() -> None:
    from tradeloom.vector.fsum import fsum_nb

    rng = np.random.default_rng(7)
    cases = [rng.normal(100, 5, 30), np.round(rng.normal(100, 5, 40), 2)]
    cases += [rng.normal(0, 1, 25) * 10.0 ** rng.integers(-20, 20, 25) for _ in range(200)]
    cases += [np.array([2.0**53, 1.0, 2.0**-60]), np.array([2.0**53, 1.0, -(2.0**-60)])]
    for values in cases:
        assert fsum_nb(values, np.empty(len(values))) == math.fsum(values)


def test_importing_compiles_nothing() -> None:
    code = (
        "import sys, tradeloom, tradeloom_strategies, tradeloom.vector\n"
        "assert 'numba' not in sys.modules, 'numba imported'\n"
        "from tradeloom.vector import kernels\n"
        "assert not kernels.simulate_nb.signatures\n"
        "assert not kernels.simulate_batch_nb.signatures\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

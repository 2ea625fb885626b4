"""Splits and dividends applied while a backtest plays raw prices.

The acceptance case is real: AAPL from the bundled ``us-stocks-daily`` dataset, whose OHLC is
unadjusted (2:1 splits on 2000-06-21 and 2005-02-28) and whose first dividend is 2012-08-09.
A buy-and-hold on the raw prices with the splits applied must earn what it earns on the
adjusted prices; without them it is visibly wrong. Dividends are checked on hand-made bars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradeloom.api import run_backtest
from tradeloom.data import DatasetSource, MarketData, ParquetSource
from tradeloom.data.actions import CorporateAction
from tradeloom.engine.backtest import BacktestEngine
from tradeloom.execution import SimulatedBroker
from tradeloom.model import OrderStatus
from tradeloom.risk import RiskGate
from tradeloom.strategy import Context, Strategy

from helpers import GAP_ROWS, Scripted, bars

START, END = "2000-03-01", "2012-06-29"


class BuyAndHold(Strategy):
    """Half the cash into the first symbol at the first bar (fractional units); records the
    one-bar return of the close that ``ctx.history`` shows at every bar."""

    def __init__(self) -> None:
        super().__init__()
        self.bought = False
        self.moves: dict[pd.Timestamp, float] = {}

    def on_bar(self, ctx: Context, bar) -> None:  # type: ignore[no-untyped-def]
        closes = ctx.history(bar.symbol, 2)
        if len(closes) == 2:
            self.moves[ctx.now] = closes[1] / closes[0] - 1.0
        if not self.bought:
            ctx.buy(bar.symbol, ctx.cash * 0.5 / bar.close)
            self.bought = True


def aapl(**params: object) -> DatasetSource:
    return DatasetSource(name="us-stocks-daily", symbols=["AAPL"], **params)


def total_return(result) -> float:  # type: ignore[no-untyped-def]
    return result.equity["equity"].iloc[-1] / result.initial_cash - 1.0


def test_aapl_buy_and_hold_with_splits_applied_earns_the_adjusted_return() -> None:
    raw_with_splits = BuyAndHold()
    applied = run_backtest(
        aapl(corporate_actions="adj_close"), raw_with_splits, start=START, end=END
    )
    adjusted = run_backtest(aapl(adjusted=True), BuyAndHold(), start=START, end=END)
    raw = run_backtest(aapl(), BuyAndHold(), start=START, end=END)

    assert total_return(applied) == pytest.approx(total_return(adjusted), rel=1e-6)
    assert total_return(applied) > 8.0  # half the account in AAPL: +850 % over 12 years
    # Without split handling the position is still the pre-split count of shares, valued at a
    # price cut by 4: the run loses most of its gain and looks like a -75 % crash in 2000/2005.
    assert total_return(raw) < total_return(applied) / 3
    flows = applied.equity["equity"]
    split_day = pd.Timestamp("2000-06-21", tz="UTC")
    before = flows[flows.index < split_day].iloc[-1]
    assert flows.loc[split_day] == pytest.approx(before, rel=0.06)  # a normal day, not -50 %

    # ... and the strategy's own view of history is split-adjusted as well: on the ex-date the
    # one-day return it reads equals the adjusted close's, not -50 %.
    adj = DatasetSource(name="us-stocks-daily", symbols=["AAPL"], adjusted=True).load()
    adj_close = adj.frames["AAPL"]["close"]
    for day in ("2000-06-21", "2005-02-28"):
        ts = pd.Timestamp(day, tz="UTC")
        i = adj_close.index.get_loc(ts)
        expected = adj_close.iloc[i] / adj_close.iloc[i - 1] - 1.0
        assert raw_with_splits.moves[ts] == pytest.approx(expected, abs=1e-9)
        assert abs(raw_with_splits.moves[ts]) < 0.1


def test_splits_are_reported_and_trade_counts_match() -> None:
    result = run_backtest(aapl(corporate_actions="adj_close"), BuyAndHold(), start=START, end=END)
    # 2 splits of 2:1 multiply the position by 4 and divide its cost by 4: still 1 open lot.
    assert result.trades.empty
    assert result.fills["quantity"].iloc[0] * 4 == pytest.approx(
        result.equity["position_value"].iloc[-1]
        / DatasetSource(name="us-stocks-daily", symbols=["AAPL"])
        .load()
        .frames["AAPL"]
        .loc[:END, "close"]
        .iloc[-1]
    )


# --- hand-made bars ----------------------------------------------------------------------------


def engine_run(frame: pd.DataFrame, actions: list[CorporateAction], strategy: Strategy, **kwargs):  # type: ignore[no-untyped-def]
    broker = SimulatedBroker()
    engine = BacktestEngine(
        MarketData({"X": frame}, actions=actions), [("s", strategy)], broker, RiskGate([]),
        initial_cash=10_000.0, currency="USD", **kwargs,
    )  # fmt: skip
    return engine.run(), broker


def ts_of(frame: pd.DataFrame, i: int) -> int:
    return int(frame.index.as_unit("ns").asi8[i])


def test_a_cash_dividend_is_credited_on_the_ex_date() -> None:
    frame = bars(GAP_ROWS)
    dividend = CorporateAction("X", ts_of(frame, 2), "dividend", amount=1.5)
    s = Scripted({0: lambda c: c.buy("X", 10)})  # 10 at b1's open, 102: cash 8,980
    out, broker = engine_run(frame, [dividend], s)
    assert out.cash.tolist() == [10_000, 8_980, 8_995, 8_995, 8_995]  # +10 × 1.5 on b2
    (flow,) = broker.ledger.cash_flows
    assert (flow.kind, flow.symbol, flow.amount, flow.ts) == (
        "dividend",
        "X",
        15.0,
        ts_of(frame, 2),
    )
    assert out.equity[2] == pytest.approx(8_995 + 10 * 105)


def test_a_dividend_reinvested_buys_units_at_the_ex_dates_close() -> None:
    frame = bars(GAP_ROWS)
    dividend = CorporateAction("X", ts_of(frame, 2), "dividend", amount=1.5)
    s = Scripted({0: lambda c: c.buy("X", 10)})
    out, broker = engine_run(frame, [dividend], s, dividends="reinvest")
    units = 10 + 15.0 / 105.0  # 15 of dividend at b2's close, 105
    assert broker.ledger.quantity("X") == pytest.approx(units)
    assert out.cash.tolist() == pytest.approx([10_000, 8_980, 8_980, 8_980, 8_980])
    assert out.equity[3] == pytest.approx(8_980 + units * 111)
    kinds = [(f.kind, f.amount) for f in broker.ledger.cash_flows]
    assert kinds == [("dividend", 15.0), ("dividend reinvested", -15.0)]


def test_a_short_position_pays_the_dividend() -> None:
    frame = bars(GAP_ROWS)
    dividend = CorporateAction("X", ts_of(frame, 3), "dividend", amount=2.0)
    s = Scripted({0: lambda c: c.sell("X", 5)})  # short 5 at 102: cash 10,510
    out, _ = engine_run(frame, [dividend], s, dividends="reinvest")  # shorts never reinvest
    assert out.cash.tolist() == [10_000, 10_510, 10_510, 10_500, 10_500]


SPLIT_ROWS = [
    (100.0, 101.0, 99.0, 100.0),
    (102.0, 104.0, 101.0, 103.0),
    (51.0, 52.0, 50.0, 51.5),  # 2:1 split: the same company at half the price per share
    (52.0, 53.0, 47.0, 48.0),
    (48.0, 49.0, 46.0, 47.0),
]


def test_a_split_scales_the_position_and_the_working_orders() -> None:
    frame = bars(SPLIT_ROWS)
    split = CorporateAction("X", ts_of(frame, 2), "split", ratio=2.0)
    s = Scripted({0: lambda c: c.buy("X", 10), 1: lambda c: c.buy("X", 4, limit=95.0)})
    out, broker = engine_run(frame, [split], s)
    # 10 bought at 102 become 20 at 51 on b2; the limit buy of 4 at 95 becomes 8 at 47.5,
    # which b3 (low 47) fills at 47.5.
    assert broker.ledger.quantity("X") == pytest.approx(28)
    limit = broker.orders[s.placed[1].client_order_id]
    assert (limit.status, limit.quantity, limit.limit_price, limit.avg_fill_price) == (
        OrderStatus.FILLED, 8.0, 47.5, 47.5,
    )  # fmt: skip
    (note,) = [u.note for u in s.updates if u.note]
    assert note == "split 2 for 1: quantity 4.0 -> 8.0, limit 95.0 -> 47.5"
    # equity is continuous over the split: b1 10 × 103, b2 20 × 51.5
    assert out.equity[1] == pytest.approx(8_980 + 1_030)
    assert out.equity[2] == pytest.approx(8_980 + 1_030)
    assert broker.ledger.position("X").avg_price == pytest.approx((20 * 51 + 8 * 47.5) / 28)


def test_split_history_is_in_todays_units_and_raw_bars_are_delivered() -> None:
    frame = bars(SPLIT_ROWS)
    split = CorporateAction("X", ts_of(frame, 2), "split", ratio=2.0)
    seen: list[np.ndarray] = []
    closes: list[float] = []

    class Reader(Strategy):
        def on_bar(self, ctx, bar) -> None:  # type: ignore[no-untyped-def]
            seen.append(ctx.history("X", 5).copy())
            closes.append(bar.close)

    engine_run(frame, [split], Reader())
    assert closes == [100.0, 103.0, 51.5, 48.0, 47.0]  # the bars themselves are raw
    np.testing.assert_allclose(seen[1], [100.0, 103.0])  # before the split: as traded
    np.testing.assert_allclose(seen[2], [50.0, 51.5, 51.5])  # from the ex-date: halved
    np.testing.assert_allclose(seen[4], [50.0, 51.5, 51.5, 48.0, 47.0])


def test_actions_are_applied_the_same_when_the_data_is_streamed(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 3_000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    close[1_700:] /= 3  # a 3:1 split at bar 1,700, inside the second chunk
    open_ = np.concatenate(([100.0], close[:-1]))
    open_[1_700] = close[1_699] / 3
    ts = 1_600_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 86_400_000_000_000
    table = pd.DataFrame(
        {
            "ts": ts, "open": open_, "high": np.maximum(open_, close) * 1.01,
            "low": np.minimum(open_, close) * 0.99, "close": close, "volume": 1.0,
        }
    )  # fmt: skip
    path = tmp_path / "x.parquet"
    table.to_parquet(path, row_group_size=1_000)
    actions = tmp_path / "actions.csv"
    day = pd.Timestamp(ts[1_700], tz="UTC").date()
    actions.write_text(f"symbol,date,split_ratio,dividend\nX,{day},3,\nX,{day},,0.25\n")
    source = ParquetSource(path=path, symbol="X", corporate_actions=str(actions))

    loaded = run_backtest(source, BuyAndHold(), stream="never")
    streamed = run_backtest(source, BuyAndHold(), stream="always", chunk_rows=1_000)
    pd.testing.assert_frame_equal(loaded.equity, streamed.equity)
    # the position tripled on the ex-date and got the dividend (in pre-split units)
    fill = loaded.fills.iloc[0]
    assert loaded.equity["position_value"].iloc[-1] == pytest.approx(
        3 * fill["quantity"] * close[-1]
    )


def test_a_deployment_reinvests_dividends_and_the_vector_engine_refuses_actions(
    tmp_path: Path,
) -> None:
    from tradeloom.api import backtest
    from tradeloom.errors import ConfigError
    from tradeloom.vector import run_signals
    from tradeloom_strategies import SmaCrossover

    config = tmp_path / "deploy.toml"
    config.write_text(
        '[data]\ntype = "dataset"\nparams = { name = "us-stocks-daily", symbols = ["IBM"], '
        'corporate_actions = "adj_close" }\n'
        '[strategy]\ntype = "sma-crossover"\nparams = { fast = 20, slow = 100, quantity = 10 }\n'
        '[run]\nstart = "2010-01-01"\nend = "2012-12-31"\n'
    )
    cash = backtest(config)
    reinvested = backtest(config, overrides=["run.dividends=reinvest"])
    paid = cash.cash_flows[cash.cash_flows["kind"] == "dividend"]
    assert len(paid) > 3 and (paid["symbol"] == "IBM").all() and (paid["amount"] > 0).all()
    kinds = set(reinvested.cash_flows["kind"])
    assert kinds == {"dividend", "dividend reinvested"}
    assert reinvested.config["run"]["dividends"] == "reinvest"

    market = DatasetSource(
        name="us-stocks-daily", symbols=["IBM"], corporate_actions="adj_close"
    ).load()
    with pytest.raises(ConfigError) as err:
        run_signals(market, SmaCrossover(fast=20, slow=100, quantity=10))
    assert err.value.path == "data.params.corporate_actions"


def test_corporate_actions_and_adjusted_are_exclusive() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="choose one"):
        DatasetSource(name="us-stocks-daily", adjusted=True, corporate_actions="adj_close")
    with pytest.raises(ValidationError, match="no adjusted close"):
        DatasetSource(name="btcusd-1h", corporate_actions="adj_close")

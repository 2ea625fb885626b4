"""An instrument quoted in EUR in a USD account: fills, cash, equity and trade PnL converted at
the EUR/USD rate of their time (the latest rate at or before it, never a later one).

DAX trades the GAP_ROWS bars (daily, 2024-01-01..05) in EUR; EUR/USD is 1.10 on Jan 1, 1.20 on
Jan 2, 1.25 on Jan 4 and 1.05 on Jan 5, each at 00:00 UTC (Jan 3 has no new rate: 1.20 holds).
"""

from __future__ import annotations

import pandas as pd
import pytest

from tradeloom.data import MarketData
from tradeloom.engine.backtest import BacktestEngine
from tradeloom.execution import SimulatedBroker
from tradeloom.portfolio.fx import FxRates
from tradeloom.risk import RiskGate

from helpers import GAP_ROWS, Scripted, bars

FRAME = bars(GAP_ROWS)
RATES = pd.Series(
    [1.10, 1.20, 1.25, 1.05],
    index=pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-04", "2024-01-05"], tz="UTC"),
)
R = [1.10, 1.20, 1.20, 1.25, 1.05]  # the rate in force at each bar


def run_eur(strategy, cash: float = 10_000.0):  # type: ignore[no-untyped-def]
    broker = SimulatedBroker()
    engine = BacktestEngine(
        MarketData({"DAX": FRAME}), [("s", strategy)], broker, RiskGate([]),
        initial_cash=cash, currency="USD",
        fx=FxRates("USD", {"EURUSD": RATES}), currencies={"DAX": "EUR"},
    )  # fmt: skip
    return engine.run(), broker


def test_fills_and_equity_are_converted_at_the_rate_of_their_time() -> None:
    s = Scripted({0: lambda c: c.buy("DAX", 10), 3: lambda c: c.sell("DAX", 10)})
    out, broker = run_eur(s)
    # bought 10 at b1's open, 102 EUR × 1.20 = 122.40 USD each; sold at b4's open, 95 × 1.05
    cash_after_buy = 10_000 - 10 * 102 * 1.20
    assert out.cash[1] == pytest.approx(cash_after_buy)
    for i, close in enumerate(FRAME["close"]):
        held = 10 if 1 <= i <= 3 else 0
        assert out.position_value[i] == pytest.approx(held * close * R[i])
    assert out.cash[4] == pytest.approx(cash_after_buy + 10 * 95 * 1.05)
    (trade,) = broker.ledger.trades
    assert (trade.entry_price, trade.exit_price) == (102.0, 95.0)  # prices stay in EUR
    assert trade.pnl == pytest.approx(10 * (95 * 1.05 - 102 * 1.20))  # PnL in USD
    assert out.equity[-1] == pytest.approx(10_000 + trade.pnl)


def test_sizing_by_equity_uses_the_price_in_the_account_currency() -> None:
    # Half of 10,000 USD at b0's close 100 EUR × 1.10 = 110 USD: 45 units (not 50).
    s = Scripted({0: lambda c: c.order_target_percent("DAX", 0.5)})
    run_eur(s)
    assert s.fills[0].quantity == 45


def test_the_cash_check_counts_the_converted_cost() -> None:
    # 90 units at 102 EUR × 1.20 = 11,016 USD > 10,000: refused at the fill (estimated at
    # submission with b0's 100 × 1.10 = 9,900, which passed).
    s = Scripted({0: lambda c: c.buy("DAX", 90)})
    _, broker = run_eur(s)
    order = broker.orders[s.placed[0].client_order_id]
    assert order.reason == "insufficient cash at fill: needs 11,016.00, cash 10,000.00"


def test_a_rate_only_arriving_later_is_never_used_early() -> None:
    late = RATES[RATES.index >= "2024-01-02"]
    broker = SimulatedBroker()
    engine = BacktestEngine(
        MarketData({"DAX": FRAME}), [("s", Scripted({0: lambda c: c.buy("DAX", 1)}))], broker,
        RiskGate([]), initial_cash=10_000.0, currency="USD",
        fx=FxRates("USD", {"EURUSD": late}), currencies={"DAX": "EUR"},
    )  # fmt: skip
    with pytest.raises(Exception, match="EURUSD"):
        engine.run()


def test_a_eur_account_trades_apple_in_usd_on_bundled_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The example of docs/config.md: bundled AAPL (USD) in a EUR account, bundled EUR/USD."""
    from tradeloom.api import backtest
    from tradeloom.data import DatasetSource

    config = tmp_path / "deploy.toml"
    config.write_text(
        '[data]\ntype = "dataset"\nparams = { name = "sp500-20-adjclose", symbols = ["AAPL"] }\n'
        '[strategy]\ntype = "sma-crossover"\nparams = { fast = 5, slow = 20 }\n'
        '[fx]\ntype = "dataset"\nparams = { name = "eurusd-1h" }\n'
        '[run]\nstart = "2017-02-01"\nend = "2017-12-29"\ncurrency = "EUR"\n'
        'currencies = { AAPL = "USD" }\n'
    )
    result = backtest(config)
    eurusd = DatasetSource(name="eurusd-1h").load().frames["EURUSD"]["close"]
    fill = result.fills.iloc[0]
    rate = 1.0 / eurusd[eurusd.index <= fill["time"]].iloc[-1]  # EUR per USD at the fill
    first_cash = result.equity["cash"].iloc[result.equity.index.get_loc(fill["time"])]
    assert first_cash == pytest.approx(
        result.initial_cash - fill["quantity"] * fill["price"] * rate - fill["fee"]
    )
    assert len(result.trades) == 3  # deterministic on the bundled data
    assert result.provenance["currencies"] == {"AAPL": "USD"}

"""Tests of ``{{ cookiecutter.slug }}``: tradeloom's strategy contract, then the rule on hand-made bars.

Every expected number below is worked out by hand from the prices next to it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tradeloom
from pydantic import ValidationError
from tradeloom.data import MarketData
from tradeloom.testing import StrategyContract
{%- if cookiecutter.vectorised == "yes" %}
from tradeloom.vector import run_signals
{%- endif %}

from {{ cookiecutter.package }}.strategy import {{ cookiecutter.class_name }}


class Test{{ cookiecutter.class_name }}(StrategyContract):
    """The contract every tradeloom strategy passes, run on the bundled ``us-stocks-daily``."""

    strategy_type = "{{ cookiecutter.slug }}"
    params = {"entry": 50, "exit": 20, "quantity": 10}


START = pd.Timestamp("2024-01-01", tz="UTC")

# entry = 3, exit = 2; bars are daily with open = close - 0.5:
# i       0   1   2   3     4     5     6     7     8     9    10    11
# close  10  11  10  12    13    12    11    12    10    11    14    15
# upper   -   -   -  11    12    13    13    13    12    12    12    14   (max of 3 closes before)
# lower   -   -  10  10    10    12    12    11    11    10    10    11   (min of 2 closes before)
# i=3: flat, 12 > 11: buy 10, filled at open[4] = 12.5
# i=5: long, 12 < 12 is false (strict); i=6: long, 11 < 12: sell, filled at open[7] = 11.5
# i=10: flat, 14 > 12: buy 10, filled at open[11] = 14.5 (still held at the end)
CLOSES = [10, 11, 10, 12, 13, 12, 11, 12, 10, 11, 14, 15]


def bars(closes: list[float]) -> MarketData:
    """Daily bars of one symbol ``X`` from 2024-01-01: open = close - 0.5, high/low = close ± 1."""
    close = np.asarray(closes, dtype=float)
    index = pd.date_range(START, periods=len(close), freq="D", name="ts")
    frame = pd.DataFrame(
        {"open": close - 0.5, "high": close + 1, "low": close - 1, "close": close, "volume": 1e3},
        index=index,
    )
    return MarketData({"X": frame})


def day(i: int) -> pd.Timestamp:
    return START + pd.Timedelta(days=i)


def test_buys_the_breakout_and_sells_below_the_exit_channel() -> None:
    strategy = {{ cookiecutter.class_name }}(entry=3, exit=2, quantity=10)
    result = tradeloom.run_backtest(bars(CLOSES), strategy, initial_cash=10_000)
    fills = [(f.time, f.side, f.quantity, f.price) for f in result.fills.itertuples()]
    assert fills == [
        (day(4), "buy", 10, 12.5),
        (day(7), "sell", 10, 11.5),
        (day(11), "buy", 10, 14.5),
    ]
    trade = result.trades.iloc[0]
    assert len(result.trades) == 1
    assert (trade.entry_price, trade.exit_price, trade.pnl) == (12.5, 11.5, -10.0)


def test_params_are_validated() -> None:
    with pytest.raises(ValidationError):
        {{ cookiecutter.class_name }}.Params(entry=0)
    with pytest.raises(ValidationError):
        {{ cookiecutter.class_name }}.Params(entyr=20)  # a typo is an error, not a default
{%- if cookiecutter.vectorised == "yes" %}


def test_signals_trade_exactly_like_on_bar() -> None:
    strategy = {{ cookiecutter.class_name }}(entry=3, exit=2, quantity=10)
    event = tradeloom.run_backtest(bars(CLOSES), strategy, initial_cash=10_000)
    vector = run_signals(bars(CLOSES), strategy, initial_cash=10_000)
    assert vector.provenance["engine"] == "vector"
    pd.testing.assert_frame_equal(vector.trades, event.trades)
    pd.testing.assert_frame_equal(
        vector.fills.drop(columns="fill_id"), event.fills.drop(columns="fill_id")
    )
{%- endif %}

"""Trading sessions in the simulated broker (``run.calendar``): orders wait outside the session,
IOC/FOK sent outside it are refused, DAY orders end with their session, and market-on-open /
market-on-close orders fill at the session's first open and last close — early closes included.

The intraday bars are one-minute bars of two New York trading days in winter (the session is
14:30-21:00 UTC), from 13:30 to 21:29 UTC: 60 pre-market bars, 390 session bars, 30 after-hours
bars per day; bar *i*'s open is ``100 + i/100`` and its close 0.005 above.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradeloom.api import backtest
from tradeloom.calendars import SessionCalendar
from tradeloom.execution import SimulatedBroker
from tradeloom.model import OrderStatus

from helpers import GAP_ROWS, Scripted, bars, run

PER_DAY, PRE, SESSION = 480, 60, 390


def minute_bars(days: list[str], first: str = "13:30", count: int = PER_DAY) -> pd.DataFrame:
    stamps = [
        pd.Timestamp(f"{day} {first}", tz="UTC") + pd.Timedelta(minutes=m)
        for day in days
        for m in range(count)
    ]
    i = np.arange(len(stamps))
    open_ = 100 + i / 100
    close = open_ + 0.005
    frame = pd.DataFrame(
        {"open": open_, "high": close + 0.02, "low": open_ - 0.02, "close": close, "volume": 1e6},
        index=pd.DatetimeIndex(stamps, name="ts"),
    )
    return frame


FRAME = minute_bars(["2024-03-04", "2024-03-05"])
STAMPS = FRAME.index.as_unit("ns").asi8.tolist()


def nyse() -> SimulatedBroker:
    broker = SimulatedBroker()
    broker.use_calendar(SessionCalendar.get("XNYS"))
    return broker


def price(column: str, i: int, frame: pd.DataFrame = FRAME) -> float:
    return round(float(frame[column].iloc[i]), 6)


def fills(s: Scripted, frame: pd.DataFrame = FRAME) -> list[tuple[float, int]]:
    stamps = frame.index.as_unit("ns").asi8.tolist()
    return [(round(f.price, 6), stamps.index(f.ts)) for f in s.fills]


def test_market_on_close_fills_at_the_last_bar_of_the_session() -> None:
    s = Scripted({90: lambda c: c.buy("X", 1, at="close")})  # 15:00 UTC
    run(FRAME, s, broker=nyse())
    last = PRE + SESSION - 1  # 20:59 UTC, the bar that ends at the 21:00 close
    assert fills(s) == [(price("close", last), last)]


def test_market_on_close_sent_on_the_last_bar_waits_for_the_next_session() -> None:
    last = PRE + SESSION - 1
    s = Scripted({last: lambda c: c.buy("X", 1, at="close")})
    run(FRAME, s, broker=nyse())
    assert fills(s) == [(price("close", PER_DAY + last), PER_DAY + last)]


def test_market_on_open_fills_at_the_next_sessions_first_bar() -> None:
    s = Scripted({90: lambda c: c.buy("X", 1, at="open"), 10: lambda c: c.buy("X", 1, at="open")})
    run(FRAME, s, broker=nyse())
    # sent in the pre-market (bar 10): that day's first session bar, 14:30 (bar 60);
    # sent during the session (bar 90): the next day's, bar 540.
    assert fills(s) == [
        (price("open", PRE), PRE),
        (price("open", PER_DAY + PRE), PER_DAY + PRE),
    ]


def test_orders_wait_outside_the_session_and_ioc_is_refused() -> None:
    s = Scripted({10: lambda c: c.buy("X", 1), 11: lambda c: c.buy("X", 1, limit=200, tif="ioc")})
    _, broker = run(FRAME, s, broker=nyse())
    assert fills(s) == [(price("open", PRE), PRE)]  # not the pre-market bar 11
    ioc = broker.orders[s.placed[1].client_order_id]
    assert ioc.status is OrderStatus.REJECTED
    assert ioc.reason == (
        "the market is closed (XNYS session hours): an IOC order cannot wait for the open"
    )


def test_a_day_order_expires_with_its_session() -> None:
    s = Scripted({90: lambda c: c.buy("X", 1, limit=50.0, tif="day")})
    _, broker = run(FRAME, s, broker=nyse())
    order = broker.orders[s.placed[0].client_order_id]
    assert order.status is OrderStatus.EXPIRED
    # after-hours bars fill nothing and do not end it; the next session's first bar does
    assert order.updated_ts == STAMPS[PER_DAY + PRE]


def test_an_early_close_ends_the_session_early() -> None:
    # The day after Thanksgiving 2024 closes at 13:00 New York time, 18:00 UTC.
    frame = minute_bars(["2024-11-29"], first="14:30", count=300)
    s = Scripted({30: lambda c: c.sell("X", 1, at="close")})
    run(frame, s, broker=nyse())
    last = 209  # 14:30 + 209 minutes = 17:59 UTC
    assert fills(s, frame) == [(price("close", last, frame), last)]


def test_on_daily_bars_moo_and_moc_are_the_next_bars_open_and_close() -> None:
    daily = bars(GAP_ROWS)  # 2024-01-01 (a holiday in New York) to 2024-01-05
    for broker in (SimulatedBroker(), nyse()):
        s = Scripted({1: lambda c: (c.buy("X", 1, at="open"), c.buy("X", 1, at="close"))})
        run(daily, s, broker=broker)
        assert fills(s, daily) == [(103.0, 2), (105.0, 2)]
    # On the New Year's Day bar the exchange is closed: a market order waits for Jan 2.
    s = Scripted({0: lambda c: c.buy("X", 1)})
    run(daily, s, broker=nyse())
    assert fills(s, daily) == [(102.0, 1)]


def test_a_deployment_sets_the_calendar_and_reports_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "deploy.toml"
    config.write_text(
        '[data]\ntype = "dataset"\nparams = { name = "us-stocks-daily", symbols = ["IBM"] }\n'
        '[strategy]\ntype = "sma-crossover"\nparams = { fast = 10, slow = 30, quantity = 5 }\n'
        '[run]\nstart = "2012-01-01"\nend = "2012-12-31"\ncalendar = "NYSE"\n'
    )
    result = backtest(config)
    assert result.config["run"]["calendar"] == "XNYS"
    assert any(line.startswith("Sessions: XNYS") for line in result.conventions)
    plain = backtest(config, overrides=["run.calendar=utc-days"])
    # Daily data on exchange days only: the sessions change nothing but the report.
    pd.testing.assert_frame_equal(result.trades, plain.trades)
    with pytest.raises(Exception, match="unknown calendar 'MOON'"):
        backtest(config, overrides=["run.calendar=MOON"])

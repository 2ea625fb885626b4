"""Trading-session calendars: exchange hours, DST, holidays, early closes, daily bars."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date

import numpy as np
import pytest

from tradeloom.calendars import EPOCH_ORDINAL, NO_SESSION, NS_PER_DAY, SessionCalendar
from tradeloom.errors import ConfigError

MINUTE = 60_000_000_000


def ns(*stamps: str) -> np.ndarray:
    """UTC ISO strings -> int64 nanoseconds."""
    return np.array(stamps, dtype="datetime64[ns]").view(np.int64)


def d(iso: str) -> int:
    """The session ordinal of a date: its proleptic Gregorian ordinal (2024-01-02 -> 738887)."""
    return date.fromisoformat(iso).toordinal()


def utc(values: np.ndarray) -> list[str]:
    return [str(v) for v in np.asarray(values).astype("datetime64[ns]").astype("datetime64[m]")]


@pytest.fixture(scope="module")
def xnys() -> SessionCalendar:
    return SessionCalendar.get("XNYS")


# -- conventions ---------------------------------------------------------------------------------


def test_session_ordinal_is_the_date_ordinal() -> None:
    assert d("2024-01-02") == 738887
    assert EPOCH_ORDINAL == date(1970, 1, 1).toordinal() == 719163
    assert NO_SESSION == -1
    dates = SessionCalendar.session_date([738887, NO_SESSION])
    assert str(dates[0]) == "2024-01-02" and np.isnat(dates[1])


def test_1969_12_31_session_is_not_confused_with_no_session(xnys: SessionCalendar) -> None:
    # Days since 1970 would give -1 for this (Wednesday) session: the ordinal never does.
    idx = xnys.session_index(ns("1969-12-31T00:00", "1969-12-31T15:00", "1970-01-01T15:00"))
    assert idx.tolist() == [719162, 719162, -1]  # New Year's Day is a holiday


# -- XNYS: hours and DST -------------------------------------------------------------------------


def test_xnys_winter_day_is_1430_to_2100_utc(xnys: SessionCalendar) -> None:
    # 2024-01-02 (Tuesday), EST = UTC-5: 09:30-16:00 ET is 14:30-21:00 UTC.
    ords, opens, closes = xnys.session_bounds(*ns("2024-01-02T00:00", "2024-01-02T23:59"))
    assert ords.tolist() == [d("2024-01-02")]
    assert utc(opens) == ["2024-01-02T14:30"]
    assert utc(closes) == ["2024-01-02T21:00"]
    idx = xnys.session_index(ns("2024-01-02T14:30", "2024-01-02T18:00", "2024-01-02T20:59"))
    assert idx.tolist() == [d("2024-01-02"), d("2024-01-02"), d("2024-01-02")]


def test_xnys_summer_day_is_1330_to_2000_utc(xnys: SessionCalendar) -> None:
    # 2024-07-01 (Monday), EDT = UTC-4: 09:30-16:00 ET is 13:30-20:00 UTC.
    ords, opens, closes = xnys.session_bounds(*ns("2024-07-01T00:00", "2024-07-01T23:59"))
    assert ords.tolist() == [d("2024-07-01")]
    assert utc(opens) == ["2024-07-01T13:30"]
    assert utc(closes) == ["2024-07-01T20:00"]
    # 14:29 UTC is in session in summer; 20:30 UTC is after the close (it was not in winter).
    idx = xnys.session_index(ns("2024-07-01T13:29", "2024-07-01T13:30", "2024-07-01T20:30"))
    assert idx.tolist() == [-1, d("2024-07-01"), -1]


def test_open_is_inclusive_close_is_exclusive(xnys: SessionCalendar) -> None:
    open_ns, close_ns = ns("2024-01-02T14:30", "2024-01-02T21:00")
    ts = np.array(
        [open_ns - 1, open_ns, open_ns + MINUTE, close_ns - MINUTE, close_ns - 1, close_ns],
        dtype=np.int64,
    )
    # The 09:30 ET bar is the first of the session, the 15:59 bar the last, 16:00 is outside.
    assert xnys.session_index(ts).tolist() == [
        -1,
        d("2024-01-02"),
        d("2024-01-02"),
        d("2024-01-02"),
        d("2024-01-02"),
        -1,
    ]


def test_holiday_is_outside_every_session(xnys: SessionCalendar) -> None:
    # Independence Day 2024 (Thursday): no session, not even for a midnight (daily) stamp.
    idx = xnys.session_index(ns("2024-07-04T00:00", "2024-07-04T14:00", "2024-07-04T17:00"))
    assert idx.tolist() == [-1, -1, -1]


def test_weekend_is_outside_every_session(xnys: SessionCalendar) -> None:
    # 2024-01-06 is a Saturday, 2024-01-07 a Sunday.
    idx = xnys.session_index(ns("2024-01-06T00:00", "2024-01-06T15:00", "2024-01-07T15:00"))
    assert idx.tolist() == [-1, -1, -1]
    ords, _, _ = xnys.session_bounds(*ns("2024-01-06T00:00", "2024-01-07T23:59"))
    assert ords.size == 0


def test_early_close_day_after_thanksgiving(xnys: SessionCalendar) -> None:
    # 2024-11-29 closes at 13:00 ET = 18:00 UTC (EST).
    ords, opens, closes = xnys.session_bounds(*ns("2024-11-29T00:00", "2024-11-29T23:59"))
    assert ords.tolist() == [d("2024-11-29")]
    assert utc(opens) == ["2024-11-29T14:30"]
    assert utc(closes) == ["2024-11-29T18:00"]
    idx = xnys.session_index(ns("2024-11-29T17:59", "2024-11-29T18:00", "2024-11-29T20:00"))
    assert idx.tolist() == [d("2024-11-29"), -1, -1]
    # Thanksgiving itself (2024-11-28) is a holiday.
    assert xnys.session_index(ns("2024-11-28T16:00")).tolist() == [-1]


def test_session_bounds_for_the_week_of_july_4(xnys: SessionCalendar) -> None:
    ords, opens, closes = xnys.session_bounds(*ns("2024-07-01T00:00", "2024-07-07T23:59"))
    assert ords.tolist() == [
        d("2024-07-01"),
        d("2024-07-02"),
        d("2024-07-03"),
        d("2024-07-05"),
    ]  # Jul 1, 2, 3, 5: the 4th is a holiday
    assert [str(day) for day in SessionCalendar.session_date(ords)] == [
        "2024-07-01",
        "2024-07-02",
        "2024-07-03",
        "2024-07-05",
    ]
    assert utc(opens) == [f"2024-07-0{d}T13:30" for d in (1, 2, 3, 5)]
    # July 3rd is an early close: 13:00 ET = 17:00 UTC.
    assert utc(closes) == [
        "2024-07-01T20:00",
        "2024-07-02T20:00",
        "2024-07-03T17:00",
        "2024-07-05T20:00",
    ]
    assert opens.dtype == closes.dtype == ords.dtype == np.int64
    assert (opens % MINUTE == 0).all()


def test_session_bounds_overlap_is_by_span(xnys: SessionCalendar) -> None:
    intraday = {"midnight_is_session_date": False}
    # Starts inside a session and ends before the next one opens.
    ords, _, _ = xnys.session_bounds(*ns("2024-01-02T20:00", "2024-01-03T14:00"), **intraday)
    assert ords.tolist() == [d("2024-01-02")]
    # With the daily-bar rule, 2024-01-03 00:00 UTC lies in the interval: its session counts.
    ords, _, _ = xnys.session_bounds(*ns("2024-01-02T20:00", "2024-01-03T14:00"))
    assert ords.tolist() == [d("2024-01-02"), d("2024-01-03")]
    # Starting exactly at a close: that session is over (close exclusive); ending exactly at an
    # open: that session is in (open inclusive).
    ords, _, _ = xnys.session_bounds(*ns("2024-01-02T21:00", "2024-01-03T14:30"), **intraday)
    assert ords.tolist() == [d("2024-01-03")]
    # end < start: nothing.
    ords, opens, closes = xnys.session_bounds(*ns("2024-01-03T00:00", "2024-01-02T00:00"))
    assert ords.size == opens.size == closes.size == 0


# -- daily bars stamped at midnight UTC ---------------------------------------------------------


def test_daily_midnight_utc_bars_map_to_their_session(xnys: SessionCalendar) -> None:
    # Daily CSV bars: 2005-02-28 (Mon) .. 2005-03-04 (Fri), then Saturday 2005-03-05.
    ts = ns(*(f"2005-03-0{d}T00:00" for d in range(1, 6)))
    ts = np.concatenate([ns("2005-02-28T00:00"), ts])
    assert xnys.session_index(ts).tolist() == [
        d("2005-02-28"),
        d("2005-03-01"),
        d("2005-03-02"),
        d("2005-03-03"),
        d("2005-03-04"),
        -1,
    ]
    # Without the rule, midnight UTC (19:00 ET the day before) is outside every session.
    plain = xnys.session_index(ts, midnight_is_session_date=False)
    assert plain.tolist() == [-1] * 6
    # Only exactly midnight counts: one nanosecond later is an ordinary instant.
    assert xnys.session_index(ts[:1] + 1).tolist() == [-1]


def test_session_bounds_include_sessions_whose_midnight_is_in_range(
    xnys: SessionCalendar,
) -> None:
    # A daily run from the bar of 2005-02-28 to the bar of 2005-03-04: all five sessions.
    ords, opens, closes = xnys.session_bounds(*ns("2005-02-28T00:00", "2005-03-04T00:00"))
    assert ords.tolist() == [
        d("2005-02-28"),
        d("2005-03-01"),
        d("2005-03-02"),
        d("2005-03-03"),
        d("2005-03-04"),
    ]
    assert utc(opens)[-1] == "2005-03-04T14:30"
    assert utc(closes)[-1] == "2005-03-04T21:00"
    ords, _, _ = xnys.session_bounds(
        *ns("2005-02-28T00:00", "2005-03-04T00:00"), midnight_is_session_date=False
    )
    assert ords.tolist() == [d("2005-02-28"), d("2005-03-01"), d("2005-03-02"), d("2005-03-03")]


# -- where an order sent at ts can first trade ----------------------------------------------------


def test_next_session_index(xnys: SessionCalendar) -> None:
    ts = ns(
        "2024-01-02T15:00",  # in session: that session
        "2024-01-02T13:00",  # before the open: the same day's session
        "2024-01-05T21:00",  # Friday at the close: Monday 2024-01-08
        "2024-01-06T12:00",  # Saturday: Monday
        "2024-07-03T17:30",  # after the early close, before the holiday: Friday 2024-07-05
    )
    assert xnys.next_session_index(ts).tolist() == [
        d("2024-01-02"),
        d("2024-01-02"),
        d("2024-01-08"),
        d("2024-01-08"),
        d("2024-07-05"),
    ]


# -- other exchanges --------------------------------------------------------------------------------


def test_xlon_hours_and_christmas_eve_early_close() -> None:
    xlon = SessionCalendar.get("XLON")
    ords, opens, closes = xlon.session_bounds(*ns("2024-12-23T00:00", "2024-12-27T23:59"))
    assert ords.tolist() == [
        d("2024-12-23"),
        d("2024-12-24"),
        d("2024-12-27"),
    ]  # 25th and 26th are holidays
    assert utc(opens) == ["2024-12-23T08:00", "2024-12-24T08:00", "2024-12-27T08:00"]
    assert utc(closes) == ["2024-12-23T16:30", "2024-12-24T12:30", "2024-12-27T16:30"]


def test_xhkg_lunch_break_counts_as_in_session() -> None:
    xhkg = SessionCalendar.get("XHKG")
    # 2024-03-04, HKT = UTC+8: open 01:30 UTC, lunch 04:00-05:00 UTC, close 08:00 UTC.
    idx = xhkg.session_index(ns("2024-03-04T01:30", "2024-03-04T04:30", "2024-03-04T08:00"))
    assert idx.tolist() == [d("2024-03-04"), d("2024-03-04"), -1]
    assert "lunch break 12:00-13:00 counted as in session" in xhkg.describe()


def test_aliases_share_the_canonical_calendar(xnys: SessionCalendar) -> None:
    assert SessionCalendar.get("NYSE") is xnys
    assert SessionCalendar.get("XNYS").name == "XNYS"


def test_describe_xnys(xnys: SessionCalendar) -> None:
    assert xnys.describe() == (
        "Sessions: XNYS (New York Stock Exchange), 09:30-16:00 America/New_York, "
        "holidays and early closes honoured (exchange_calendars)."
    )
    assert not xnys.always_open
    assert not xnys.sessions_from_data


def test_table_grows_to_cover_earlier_and_later_dates() -> None:
    xtks = SessionCalendar.get("XTKS")
    # Tokyo 09:00 JST is 00:00 UTC: a midnight stamp is the open itself.
    assert xtks.session_index(ns("2024-03-04T00:00", "2024-03-04T07:00")).tolist() == [
        d("2024-03-04"),
        -1,
    ]
    # 2001-01-02 (Tokyo New Year holiday) and 2001-01-04 (the year's first session).
    assert xtks.session_index(ns("2001-01-02T01:00", "2001-01-04T01:00")).tolist() == [
        -1,
        d("2001-01-04"),
    ]
    assert xtks.session_index(ns("2024-03-04T01:00")).tolist() == [d("2024-03-04")]


def test_dates_outside_the_calendar_bounds_are_a_config_error() -> None:
    aixk = SessionCalendar.get("AIXK")  # Astana: sessions from 2017-01-01 only
    with pytest.raises(ConfigError) as info:
        aixk.session_index(ns("2010-01-04T06:00"))
    assert info.value.path == "run.calendar"
    assert "AIXK has sessions from 2017-01-01 on only" in str(info.value)


# -- built-ins ----------------------------------------------------------------------------------


def test_24_7_is_always_open_one_session_per_utc_day() -> None:
    cal = SessionCalendar.get("24/7")
    assert cal.always_open and not cal.sessions_from_data
    # Saturday 2024-01-06 and a US holiday are ordinary days; day boundaries at 00:00 UTC.
    ts = ns("2024-01-06T00:00", "2024-01-06T23:59", "2024-01-07T00:00", "2024-07-04T15:00")
    assert cal.session_index(ts).tolist() == [
        d("2024-01-06"),
        d("2024-01-06"),
        d("2024-01-07"),
        d("2024-07-04"),
    ]
    assert cal.next_session_index(ts).tolist() == [
        d("2024-01-06"),
        d("2024-01-06"),
        d("2024-01-07"),
        d("2024-07-04"),
    ]
    ords, opens, closes = cal.session_bounds(*ns("2024-01-06T12:00", "2024-01-08T00:00"))
    assert ords.tolist() == [d("2024-01-06"), d("2024-01-07"), d("2024-01-08")]
    days = ords - EPOCH_ORDINAL
    assert (opens == days * NS_PER_DAY).all() and (closes == (days + 1) * NS_PER_DAY).all()
    assert utc(opens[:1]) == ["2024-01-06T00:00"] and utc(closes[:1]) == ["2024-01-07T00:00"]
    # Before 1970 too: negative nanoseconds floor to the right day, whose ordinal is positive.
    assert cal.session_index(ns("1969-12-31T23:00")).tolist() == [d("1969-12-31")] == [719162]
    assert cal.describe() == (
        "Sessions: 24/7 (always open; one session per UTC day, 00:00-24:00 UTC)."
    )


def test_utc_days_sessions_come_from_the_data() -> None:
    cal = SessionCalendar.get("utc-days")
    assert cal.always_open and cal.sessions_from_data
    ts = ns("2005-02-28T00:00", "2005-02-28T15:30", "2005-03-05T00:00")
    assert cal.session_index(ts).tolist() == [d("2005-02-28"), d("2005-02-28"), d("2005-03-05")]
    ords, opens, closes = cal.session_bounds(*ns("2005-02-28T00:00", "2005-03-01T00:00"))
    assert ords.tolist() == [d("2005-02-28"), d("2005-03-01")]
    assert utc(opens) == ["2005-02-28T00:00", "2005-03-01T00:00"]
    assert utc(closes) == ["2005-03-01T00:00", "2005-03-02T00:00"]
    assert cal.describe().startswith("Sessions: utc-days (UTC calendar days")


def test_builtins_do_not_import_exchange_calendars() -> None:
    code = (
        "import sys, tradeloom\n"
        "assert 'exchange_calendars' not in sys.modules\n"
        "from tradeloom.calendars import SessionCalendar\n"
        "SessionCalendar.get('24/7').session_index([0]); SessionCalendar.get('utc-days')\n"
        "assert 'exchange_calendars' not in sys.modules, 'imported eagerly'\n"
        "assert 'pandas' not in sys.modules, 'pandas imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- errors and input forms -----------------------------------------------------------------------


def test_unknown_name_is_a_config_error_with_help() -> None:
    with pytest.raises(ConfigError) as info:
        SessionCalendar.get("MOON")
    err = info.value
    assert err.path == "run.calendar"
    message = str(err)
    assert message.startswith("run.calendar: unknown calendar 'MOON'.")
    for name in ("'24/7'", "'utc-days'", "'XNYS'", "'XLON'"):
        assert name in message
    assert "SessionCalendar.names()" in message
    assert err.exit_code == 2


def test_unknown_name_suggests_the_right_case() -> None:
    with pytest.raises(ConfigError, match=r"Did you mean 'XNYS'\?"):
        SessionCalendar.get("xnys")


def test_names_lists_builtins_first_and_exchanges() -> None:
    names = SessionCalendar.names()
    assert names[:2] == ["24/7", "utc-days"]
    assert {"XNYS", "XLON", "NYSE", "CMES"} <= set(names)
    assert names.count("24/7") == 1


def test_accepts_datetime64_lists_and_empty_arrays(xnys: SessionCalendar) -> None:
    as_dt = np.array(["2024-01-02T15:00"], dtype="datetime64[ns]")
    assert xnys.session_index(as_dt).tolist() == [d("2024-01-02")]
    assert xnys.session_index([int(ns("2024-01-02T15:00")[0])]).tolist() == [d("2024-01-02")]
    empty = xnys.session_index(np.empty(0, dtype=np.int64))
    assert empty.dtype == np.int64 and empty.size == 0


# -- performance ------------------------------------------------------------------------------------


def test_ten_years_of_minutes_is_fast() -> None:
    import exchange_calendars  # noqa: F401  (the package's own import time is not measured)

    SessionCalendar._cache.pop("XNYS", None)
    SessionCalendar._cache.pop("NYSE", None)
    cal = SessionCalendar.get("XNYS")
    start = time.perf_counter()
    ords, _, _ = cal.session_bounds(*ns("2014-01-01T00:00", "2023-12-31T23:59"))
    built = time.perf_counter() - start
    assert len(ords) == 2516  # XNYS sessions 2014-2023
    assert built < 1.0

    rng = np.random.default_rng(7)
    lo, hi = ns("2014-01-01T00:00", "2023-12-31T23:59")
    ts = np.sort(rng.integers(lo, hi, 1_000_000) // MINUTE * MINUTE)
    start = time.perf_counter()
    idx = cal.session_index(ts)
    took = time.perf_counter() - start
    assert took < 1.0
    # 6.5 h of 24 h on ~252 of 365.25 days, minus early closes: about 18.7 % of minutes.
    assert 0.18 < (idx >= 0).mean() < 0.19

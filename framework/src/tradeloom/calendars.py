"""Trading-session calendars: which timestamps fall inside an exchange's trading session.

A :class:`SessionCalendar` answers, for int64 nanosecond UTC timestamps held in numpy arrays,
"which session is this in?" (:meth:`~SessionCalendar.session_index`) and "which sessions run
between these two instants, and when do they open and close?"
(:meth:`~SessionCalendar.session_bounds`). The simulated broker uses it to expire DAY orders
at the session close, fill market-on-open / market-on-close orders and hold or reject orders
sent outside a session. Every method is vectorised (``np.searchsorted`` over a session table);
nothing calls into pandas per bar.

Calendars, by name (``run.calendar``):

* ``"24/7"``: always open, one session per UTC calendar day (00:00-24:00 UTC). Crypto.
* ``"utc-days"``: sessions are UTC calendar days and the calendar knows nothing else: no
  hours, no holidays. A day's session is made of the bars the data has on that day (the first
  bar present opens it, the last bar present closes it); :attr:`SessionCalendar.sessions_from_data`
  tells the broker so. This is tradeloom's behaviour when no exchange calendar is chosen.
* Any exchange calendar of the ``exchange_calendars`` package, by MIC or alias: ``"XNYS"``
  (alias ``"NYSE"``, ``"XNAS"``), ``"XLON"``, ``"XTKS"``, ``"CMES"``... Holidays, early
  closes and late opens come from that package; it is imported only when such a calendar is
  first used, never by ``import tradeloom``.

Conventions:

* **Session ordinal**: a session is identified by its date (the exchange's session label) as
  that date's proleptic Gregorian ordinal, an int64: what ``datetime.date.toordinal()`` gives
  (2024-01-02 is 738887), so ``date.fromordinal(o)`` or :meth:`SessionCalendar.session_date`
  turns it back into the date. It is positive for every date, so it never collides with
  ``NO_SESSION`` (-1), which means "outside every session". Consecutive sessions differ by the
  number of calendar days between them.
* **Intraday bars are stamped with their open time**, so a bar belongs to a session when
  ``open <= ts < close``: the open is inclusive, the close exclusive. On XNYS the 09:30 ET
  minute bar is the first bar of the session and the 15:59 bar the last; a bar stamped 16:00
  is outside it.
* **Daily bars are stamped at 00:00 UTC of the session date** (e.g. ``2005-02-28 00:00 UTC``),
  which for most exchanges is outside the trading hours. So a timestamp at exactly midnight UTC
  whose date is a session date belongs to that date's session (``midnight_is_session_date``,
  on by default). Turn it off for intraday data with extended hours, where a bar opening at
  00:00 UTC is an evening bar, not a daily bar.
* **Lunch breaks** (e.g. XHKG 12:00-13:00) count as inside the session: a session is the span
  from its open to its close. ``describe()`` mentions the break.
* The session table covers the timestamps asked about, padded to whole years; it grows when
  later calls ask about other dates. Nothing reads the wall clock.
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tradeloom.errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["EPOCH_ORDINAL", "NO_SESSION", "NS_PER_DAY", "SessionCalendar"]

NS_PER_DAY = 86_400_000_000_000
NO_SESSION = -1
"""The session index of a timestamp outside every session."""
EPOCH_ORDINAL = 719_163
"""The session ordinal of 1970-01-01 (``date(1970, 1, 1).toordinal()``)."""
_PATH = "run.calendar"
_BUILTINS = ("24/7", "utc-days")
_EXAMPLES = ("24/7", "utc-days", "XNYS", "XLON", "XTKS", "XHKG", "XETR", "CMES")
# A session's date is at most one day away from the UTC day of any instant inside it (Sydney
# and New Zealand open the evening before in UTC, CME Globex too); the table is padded by this.
_PAD_DAYS = 2
# After the last timestamp asked about, keep at least this many days of sessions, so that
# "the next session" is known across the longest closures (Lunar New Year, ~10 days).
_LOOKAHEAD_DAYS = 40
# Full names the exchange_calendars docstrings do not give in their first line.
_FULL_NAMES = {"XNYS": "New York Stock Exchange", "XNZE": "New Zealand Exchange"}
_DOC_NAME = re.compile(r"^(?:Exchange )?[Cc]alendar for (?:the )?(.+?)(?:\s*\(|\.|,| in |$)")


def _as_ns(ts: ArrayLike) -> np.ndarray:
    arr = np.asarray(ts)
    if arr.dtype.kind == "M":
        arr = arr.astype("datetime64[ns]").view(np.int64)
    return arr.astype(np.int64, copy=False)


def _year_start_day(day: int) -> int:
    year = np.datetime64(int(day), "D").astype("datetime64[Y]")
    return int(year.astype("datetime64[D]").astype(np.int64))


def _year_end_day(day: int) -> int:
    year = np.datetime64(int(day), "D").astype("datetime64[Y]") + 1
    return int(year.astype("datetime64[D]").astype(np.int64)) - 1


def _day_str(day: int) -> str:
    return str(np.datetime64(int(day), "D"))


@dataclass(frozen=True)
class _Table:
    """Sessions sorted by open; ``first_day``..``last_day`` is the span of dates it covers."""

    ordinals: np.ndarray  # int64 date ordinal of each session (EPOCH_ORDINAL + days since 1970)
    opens: np.ndarray  # int64 ns UTC
    closes: np.ndarray  # int64 ns UTC
    first_day: int
    last_day: int


class SessionCalendar:
    """Trading sessions of one calendar over int64 nanosecond UTC timestamps.

    Get one with :meth:`get`; instances are shared per name. See the module docstring for the
    timestamp conventions.
    """

    name: str
    """The calendar's canonical name: ``"24/7"``, ``"utc-days"`` or a MIC such as ``"XNYS"``."""
    always_open: bool
    """Every instant is inside a session (``"24/7"`` and ``"utc-days"``): never wait or reject."""
    sessions_from_data: bool
    """Only ``"utc-days"``: the calendar knows no hours, so a session's first and last bars are
    the first and last bars the data has on that UTC day, not the bars at ``open_ns``/``close_ns``
    (which are just the day's bounds)."""

    _cache: ClassVar[dict[str, SessionCalendar]] = {}

    def __init__(self, name: str, *, always_open: bool, sessions_from_data: bool) -> None:
        self.name = name
        self.always_open = always_open
        self.sessions_from_data = sessions_from_data

    def __repr__(self) -> str:
        return f"SessionCalendar({self.name!r})"

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def get(cls, name: str) -> SessionCalendar:
        """The calendar called ``name``: ``"24/7"``, ``"utc-days"`` or an exchange_calendars name.

        Raises :class:`~tradeloom.errors.ConfigError` (path ``run.calendar``) for an unknown
        name, or when exchange_calendars cannot build that calendar.
        """
        cached = cls._cache.get(name)
        if cached is not None:
            return cached
        if name == "24/7":
            cal: SessionCalendar = _UtcDayCalendar(name, sessions_from_data=False)
        elif name == "utc-days":
            cal = _UtcDayCalendar(name, sessions_from_data=True)
        else:
            cal = _ExchangeCalendar._create(name)
            cal = cls._cache.setdefault(cal.name, cal)  # "NYSE" and "XNYS" share one table
        cls._cache[name] = cal
        return cal

    @staticmethod
    def names() -> list[str]:
        """Every name :meth:`get` accepts: the two built-ins, then exchange_calendars' (aliases
        included), sorted."""
        import exchange_calendars as xc

        return [*_BUILTINS, *(n for n in xc.get_calendar_names() if n not in _BUILTINS)]

    @staticmethod
    def session_date(ordinals: ArrayLike) -> np.ndarray:
        """Session ordinals as ``datetime64[D]`` dates (``NO_SESSION`` gives ``NaT``)."""
        arr = np.asarray(ordinals, dtype=np.int64)
        dates = (arr - EPOCH_ORDINAL).astype("datetime64[D]")
        return np.where(arr == NO_SESSION, np.datetime64("NaT", "D"), dates)

    # -- queries (overridden) ------------------------------------------------------------------

    def session_index(self, ts: ArrayLike, *, midnight_is_session_date: bool = True) -> np.ndarray:
        """Per timestamp, the ordinal (``date.toordinal()`` of the session date) of the session
        containing it, or ``NO_SESSION`` (-1) when it is outside every session (weekend,
        holiday, before the open, at or after the close). ``open <= ts < close``; a timestamp
        at exactly 00:00 UTC of a session date belongs to that session unless
        ``midnight_is_session_date=False``. Same shape as ``ts``.
        """
        raise NotImplementedError

    def next_session_index(
        self, ts: ArrayLike, *, midnight_is_session_date: bool = True
    ) -> np.ndarray:
        """Per timestamp, the ordinal of the session containing it or, when it is outside every
        session, of the first session opening after it: where an order sent at ``ts`` can
        first trade. ``NO_SESSION`` if no such session is known (beyond the calendar's range)."""
        raise NotImplementedError

    def session_bounds(
        self, start_ns: int, end_ns: int, *, midnight_is_session_date: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ordinals, open_ns, close_ns)``, int64 arrays, of every session overlapping
        ``[start_ns, end_ns]``: its ``[open, close)`` span meets the interval, or (with
        ``midnight_is_session_date``) 00:00 UTC of its date lies in it. Sorted by open."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for reports."""
        raise NotImplementedError


class _UtcDayCalendar(SessionCalendar):
    """``"24/7"`` and ``"utc-days"``: session *d* is the UTC day ``[d, d+1)``; pure arithmetic."""

    def __init__(self, name: str, *, sessions_from_data: bool) -> None:
        super().__init__(name, always_open=True, sessions_from_data=sessions_from_data)

    def session_index(self, ts: ArrayLike, *, midnight_is_session_date: bool = True) -> np.ndarray:
        return _as_ns(ts) // NS_PER_DAY + EPOCH_ORDINAL

    def next_session_index(
        self, ts: ArrayLike, *, midnight_is_session_date: bool = True
    ) -> np.ndarray:
        return _as_ns(ts) // NS_PER_DAY + EPOCH_ORDINAL

    def session_bounds(
        self, start_ns: int, end_ns: int, *, midnight_is_session_date: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if end_ns < start_ns:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty.copy(), empty.copy()
        days = np.arange(int(start_ns) // NS_PER_DAY, int(end_ns) // NS_PER_DAY + 1, dtype=np.int64)
        return days + EPOCH_ORDINAL, days * NS_PER_DAY, (days + 1) * NS_PER_DAY

    def describe(self) -> str:
        if self.sessions_from_data:
            return (
                "Sessions: utc-days (UTC calendar days, no exchange hours or holidays; a day's "
                "session is the bars present on that day)."
            )
        return "Sessions: 24/7 (always open; one session per UTC day, 00:00-24:00 UTC)."


class _ExchangeCalendar(SessionCalendar):
    """A calendar of the exchange_calendars package, turned into a sorted int64 session table."""

    def __init__(self, name: str, factory: type, probe: Any) -> None:
        super().__init__(name, always_open=False, sessions_from_data=False)
        self._factory = factory
        self._bound_min, self._bound_max = _bounds(factory)
        self._title = _full_name(name, factory)
        self._tz = str(probe.tz)
        self._open_time = probe.open_times[-1][1]
        self._close_time = probe.close_times[-1][1]
        self._open_offset = int(getattr(probe, "open_offset", 0) or 0)
        self._close_offset = int(getattr(probe, "close_offset", 0) or 0)
        # The latest rule of each: the hours in force now (they changed over the decades).
        starts, ends = probe.break_start_times, probe.break_end_times
        self._breaks = (starts[-1][1], ends[-1][1]) if starts and ends else None
        if self._breaks is not None and None in self._breaks:  # breaks abolished since
            self._breaks = None
        self._early_closes = bool(probe.special_closes or probe.special_closes_adhoc)
        self._late_opens = bool(probe.special_opens or probe.special_opens_adhoc)
        self._table: _Table | None = None

    @classmethod
    def _create(cls, name: str) -> SessionCalendar:
        import exchange_calendars as xc

        try:
            canonical = xc.resolve_alias(name)
            factory = _factory_of(canonical)
        except xc.errors.InvalidCalendarName:
            raise ConfigError(_unknown_name_message(name), path=_PATH) from None
        if canonical in _BUILTINS:  # exchange_calendars' own "24/7" is shadowed by ours
            return SessionCalendar.get(canonical)
        # A one-month probe validates the calendar (some fail on some pandas versions) and gives
        # its time zone and hours without building years of sessions.
        lo, bound_min, bound_max = _days("2024-01-01"), *_bounds(factory)
        if bound_max is not None:
            lo = min(lo, bound_max - 31)
        if bound_min is not None:
            lo = max(lo, bound_min)
        hi = lo + 31 if bound_max is None else min(lo + 31, bound_max)
        return cls(canonical, factory, _build(canonical, lo, hi))

    # -- the session table ---------------------------------------------------------------------

    def _ensure(self, lo_day: int, hi_day: int) -> _Table:
        """The session table, grown to cover session dates ``lo_day..hi_day`` if needed."""
        lo_day -= _PAD_DAYS
        hi_day += _LOOKAHEAD_DAYS
        table = self._table
        if table is not None and table.first_day <= lo_day and hi_day <= table.last_day:
            return table
        if table is not None:
            lo_day, hi_day = min(lo_day, table.first_day), max(hi_day, table.last_day)
        lo_day, hi_day = _year_start_day(lo_day), _year_end_day(hi_day)
        if self._bound_min is not None:
            lo_day = max(lo_day, self._bound_min)
        if self._bound_max is not None:
            hi_day = min(hi_day, self._bound_max)
        cal = _build(self.name, lo_day, hi_day)
        sched = cal.schedule
        days = _datetime_values(cal.sessions).astype("datetime64[D]").astype(np.int64)
        ordinals = days + EPOCH_ORDINAL
        opens = _datetime_values(sched["open"]).astype("datetime64[ns]").view(np.int64)
        closes = _datetime_values(sched["close"]).astype("datetime64[ns]").view(np.int64)
        self._table = _Table(ordinals, opens.copy(), closes.copy(), lo_day, hi_day)
        return self._table

    def _table_for(self, ts: np.ndarray) -> _Table:
        lo = int(ts.min()) // NS_PER_DAY
        hi = int(ts.max()) // NS_PER_DAY
        self._check_bounds(lo, hi)
        return self._ensure(lo, hi)

    def _check_bounds(self, lo_day: int, hi_day: int) -> None:
        if (self._bound_min is not None and lo_day < self._bound_min) or (
            self._bound_max is not None and hi_day > self._bound_max
        ):
            first = _day_str(self._bound_min) if self._bound_min is not None else None
            last = _day_str(self._bound_max) if self._bound_max is not None else None
            span = f"from {first} on" if last is None else f"up to {last}"
            if first is not None and last is not None:
                span = f"from {first} to {last}"
            raise ConfigError(
                f"calendar {self.name} has sessions {span} only; the timestamps run from "
                f"{_day_str(lo_day)} to {_day_str(hi_day)}. Shorten the period (run.start / "
                f"run.end) or choose another calendar.",
                path=_PATH,
            )

    # -- queries -------------------------------------------------------------------------------

    def _containing(self, table: _Table, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index into the table of the last session opening at or before ``ts``, and whether
        ``ts`` is before that session's close."""
        i = np.searchsorted(table.opens, ts, side="right") - 1
        safe = np.maximum(i, 0)
        inside = (i >= 0) & (ts < table.closes[safe])
        return i, inside

    def _midnight_dates(self, table: _Table, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each ``ts``: whether it is 00:00 UTC of a session date, and that date."""
        days = ts // NS_PER_DAY + EPOCH_ORDINAL
        j = np.searchsorted(table.ordinals, days)
        found = (j < len(table.ordinals)) & (ts % NS_PER_DAY == 0)
        found &= table.ordinals[np.minimum(j, len(table.ordinals) - 1)] == days
        return found, days

    def session_index(self, ts: ArrayLike, *, midnight_is_session_date: bool = True) -> np.ndarray:
        arr = _as_ns(ts)
        if arr.size == 0:
            return np.empty(arr.shape, dtype=np.int64)
        table = self._table_for(arr)
        i, inside = self._containing(table, arr)
        out = np.where(inside, table.ordinals[np.maximum(i, 0)], NO_SESSION)
        if midnight_is_session_date:
            midnight, days = self._midnight_dates(table, arr)
            out = np.where(midnight, days, out)
        return out

    def next_session_index(
        self, ts: ArrayLike, *, midnight_is_session_date: bool = True
    ) -> np.ndarray:
        arr = _as_ns(ts)
        if arr.size == 0:
            return np.empty(arr.shape, dtype=np.int64)
        table = self._table_for(arr)
        n = len(table.ordinals)
        i, inside = self._containing(table, arr)
        k = np.where(inside, i, i + 1)  # the containing session, else the next one to open
        out = np.where(k < n, table.ordinals[np.minimum(k, n - 1)], NO_SESSION)
        if midnight_is_session_date:
            midnight, days = self._midnight_dates(table, arr)
            out = np.where(midnight, days, out)
        return out

    def session_bounds(
        self, start_ns: int, end_ns: int, *, midnight_is_session_date: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        start_ns, end_ns = int(start_ns), int(end_ns)
        if end_ns < start_ns:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty.copy(), empty.copy()
        lo, hi = start_ns // NS_PER_DAY, end_ns // NS_PER_DAY
        self._check_bounds(lo, hi)
        table = self._ensure(lo, hi)
        keep = (table.opens <= end_ns) & (table.closes > start_ns)
        if midnight_is_session_date:
            midnight = (table.ordinals - EPOCH_ORDINAL) * NS_PER_DAY
            keep |= (midnight >= start_ns) & (midnight <= end_ns)
        return table.ordinals[keep], table.opens[keep], table.closes[keep]

    def describe(self) -> str:
        title = f" ({self._title})" if self._title else ""
        before = " the day before" if self._open_offset < 0 else ""
        after = " the day after" if self._close_offset > 0 else ""
        parts = [
            f"Sessions: {self.name}{title}, "
            f"{self._open_time:%H:%M}{before}-{self._close_time:%H:%M}{after} {self._tz}"
        ]
        if self._breaks is not None:
            parts.append(
                f"lunch break {self._breaks[0]:%H:%M}-{self._breaks[1]:%H:%M} counted as in session"
            )
        special = [
            what
            for what, present in (
                ("early closes", self._early_closes),
                ("late opens", self._late_opens),
            )
            if present
        ]
        honoured = " and ".join(["holidays", *special])
        parts.append(f"{honoured} honoured (exchange_calendars)")
        return ", ".join(parts) + "."


# -- exchange_calendars glue (only called once that package is imported) ----------------------


def _days(date: str) -> int:
    return int(np.datetime64(date, "D").astype(np.int64))


def _factory_of(name: str) -> type:
    """The calendar class registered under canonical ``name``."""
    import exchange_calendars as xc

    factories = getattr(xc.calendar_utils, "_default_calendar_factories", None)
    if isinstance(factories, dict) and name in factories:
        return factories[name]
    if name not in xc.get_calendar_names(include_aliases=False):
        raise xc.errors.InvalidCalendarName(calendar_name=name)
    return object  # registered some other way: no class-level bounds known


def _bounds(factory: type) -> tuple[int | None, int | None]:
    """First and last dates (days since 1970) the calendar class can be built for, if bounded."""
    out: list[int | None] = []
    for attr in ("bound_min", "bound_max"):
        bound = getattr(factory, attr, None)
        value = bound() if callable(bound) else None
        out.append(None if value is None else _days(str(value.date())))
    return out[0], out[1]


def _build(name: str, lo_day: int, hi_day: int) -> Any:
    import exchange_calendars as xc

    try:
        with warnings.catch_warnings():  # the library is silent: its deprecation notices too
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            return xc.get_calendar(name, start=_day_str(lo_day), end=_day_str(hi_day))
    except Exception as exc:  # the package's own failures, e.g. with a newer pandas
        message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"exchange_calendars could not build calendar {name} for {_day_str(lo_day)} to "
            f"{_day_str(hi_day)}: {type(exc).__name__}: {message}. Choose another calendar "
            f"(e.g. 'utc-days').",
            path=_PATH,
        ) from exc


def _datetime_values(obj: Any) -> np.ndarray:
    """The naive-UTC datetime64 values of a pandas Series or DatetimeIndex (tz-aware or not)."""
    values = obj.tz_convert(None) if getattr(obj, "tz", None) is not None else obj
    if hasattr(values, "dt") and values.dt.tz is not None:
        values = values.dt.tz_convert(None)
    return np.asarray(values.to_numpy(), dtype="datetime64[ns]")


def _full_name(name: str, factory: type) -> str | None:
    if name in _FULL_NAMES:
        return _FULL_NAMES[name]
    doc = (factory.__doc__ or "").strip().splitlines()
    match = _DOC_NAME.match(doc[0].strip()) if doc else None
    return match.group(1).strip() if match else None


def _unknown_name_message(name: str) -> str:
    known = SessionCalendar.names()
    by_case = {k.upper(): k for k in known}
    if name.upper() in by_case:  # names are case-sensitive: "xnys" is not "XNYS"
        close = [by_case[name.upper()]]
    else:
        close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"unknown calendar {name!r}.{hint} Valid names include "
        f"{', '.join(repr(e) for e in _EXAMPLES)} ({len(known)} in all); list them with "
        f'`python -c "from tradeloom.calendars import SessionCalendar; '
        f'print(SessionCalendar.names())"`.'
    )

"""Corporate actions (splits and cash dividends) as data, for backtests on raw prices.

A backtest on unadjusted prices has to apply each action when it happens: on a split's ex-date
the position is multiplied by the ratio (its average cost divided by it), on a dividend's
ex-date the holder is credited ``quantity × amount`` (a short is debited), and the history a
strategy reads is rescaled so a split never looks like a crash. This module provides the
actions: recovered from a vendor's adjusted close (:func:`actions_from_adjusted`,
:func:`dataset_actions`) or read from a table (:func:`load_actions_table`), plus the split
factors the engine rescales with (:func:`split_factor_series`).

Reading actions off an adjusted close
-------------------------------------
Let ``c_t`` be the raw close of bar ``t``, ``a_t`` the adjusted close and ``f_t = a_t / c_t``
the adjustment factor. A vendor builds ``a`` by multiplying every bar *before* an ex-date by
that action's multiplier, so ``f`` is constant between ex-dates and steps on them; the step on
bar ``t`` is::

    r_t = f_{t-1} / f_t        (1 on ordinary bars, the action's multiplier on an ex-date bar)

*Split* of ``k`` new shares per old share on bar ``t``: the raw price falls to ``c_{t-1} / k``
while the adjusted series stays continuous, so every earlier bar is divided by ``k``:
``f_{t-1} = f_t / k``, hence ``r_t = 1 / k`` and ``k = f_t / f_{t-1}`` (a 2:1 split gives
``r = 0.5``, a 1:10 reverse split ``r = 10``).

*Cash dividend* ``D`` per share, ex on bar ``t``. Two conventions exist (``dividend_basis``):

* ``"ex_close"`` (total return; the bundled Quandl WIKI data): ``r_t = c_t / (c_t + D)``, so
  ``D = c_t (1 / r_t − 1)``. The adjusted close then earns the total return over the ex-date,
  ``a_t / a_{t-1} = c_t / (r_t c_{t-1}) = (c_t + D) / c_{t-1}``, which is also what one gets by
  reinvesting the dividend at the ex-date's close: ``q → q (1 + D / c_t)``.
* ``"prev_close"`` (the price multiplier Yahoo describes, after CRSP; no bundled data uses
  it): ``r_t = 1 − D / c_{t-1}``, so
  ``D = c_{t-1} (1 − r_t)``; then ``a_t / a_{t-1} = c_t / (c_{t-1} − D)``.

The bundled ``us-stocks-daily`` data follows ``"ex_close"`` to the cent: it gives AAPL $2.65
on 2012-08-09, 2012-11-07 and 2013-02-07, IBM's quarterly $0.13 … $0.85 and MSFT's $3.08
(a $3 special plus the regular $0.08) on 2004-11-15, where ``"prev_close"`` gives $2.635,
$2.755 and $2.574 for AAPL's three identical payments. ``"ex_close"`` is the default.

*Split and dividend on the same bar*: ``r_t = r_div / k``. After the ratio is snapped (below)
the rest ``r_div = r_t k`` is read as a dividend as above; with ``"ex_close"`` the formula
gives the amount per new share (``c_t`` is post-split), which is multiplied by ``k``.

Amounts are always *per share held going into the ex-date*, in the raw price units of that
date (never rescaled for later splits; before that date's split, if any). The engine pays
``quantity × amount`` on the quantity held at the previous close, i.e. the dividend before the
split of the same bar. :func:`actions_from_adjusted` and :func:`load_actions_table` return the
actions in the order to apply them: by ``ex_ts``, then symbol, a dividend before a split.

Classification of a step ``x_t = log r_t``:

* ``|x_t| <= ε_t``: rounding noise, no action (below).
* ``ε_t < |x_t| <= split_threshold`` (default 0.2, i.e. ``r`` in [0.82, 1.22]): a dividend.
  It must lower the earlier prices (``r_t < 1``); a step the other way is a
  :class:`~tradeloom.errors.DataError` (no cash distribution raises them).
* ``|x_t| > split_threshold``: a split. Its ratio ``k`` is snapped to the nearest *simple*
  fraction: ``p/q`` with ``p, q <= 10`` (3:2, 4:3, 5:4, 7:4 …) or ``n:1`` / ``1:n`` with
  ``n <= 1000``; the measured step may exceed the snapped one by at most the noise and fall
  short of it by at most ``snap_tolerance`` (default 1 %, room for a same-day dividend). No
  simple ratio within that is a DataError. A 6:5 split (``log 1.2 = 0.18``, under the
  threshold) is read as a dividend of a sixth of the previous close, and a single dividend
  above ``1 − e^{-0.2}`` ≈ 18 % of the price as a split: lower ``split_threshold`` (e.g. 0.1)
  or use an actions table for such data.

Noise tolerance ``ε_t``: the vendor computes ``a_t`` from the printed close and prints it
rounded, so only the rounding of ``a`` disturbs ``f`` (the close's own rounding cancels in
``a / c``). If ``e(a)`` is half a unit in the last printed place of ``a``, the printed
``log a`` is off by at most ``δ(a) = −log(1 − e(a) / a) ≈ e(a) / a``, so
``|Δ log r_t| <= δ(a_{t-1}) + δ(a_t)``. The printed precision is read off the column: the most
decimals any value needs (fixed-decimal printing, ``e = 0.5·10^-d``) and the most significant
digits any value needs (``e = 0.5·10^(⌊log10 a⌋ − s + 1)``); the larger bound is used for each
value. A column whose values all happen to be round (whole dollars, say) is taken to be
printed that coarsely; pass ``tolerance`` to override. ``ε_t`` is that sum plus a floor of
1e-9 (float arithmetic). In ``us-stocks-daily`` the adjusted closes carry 12–14 significant
digits (the bound comes to 1e-13 … 1e-12) and every non-event step has
``|log r| <= 9.4e-14``, while the smallest real step is 1.09e-3 (IBM's $0.13 on $118.87, on
2000-08-08): the floor is four orders of magnitude above the printing noise and six below any
dividend that matters. An adjusted close printed to 2 decimals at $5 has steps of noise up to
0.2 %, which the bound covers: such a dividend is not in the data and is not invented.

Split factors
-------------
``split_factor_series(actions, symbol, ts)`` is ``C(t)``: the product of the ratios of the
symbol's splits with ``ex_ts <= t`` (1 before the first split). One share held before every
split is ``C(t)`` shares at ``t``. To express bar ``s`` in the share units of bar ``t``
(``s <= t``), the engine multiplies its raw prices by ``C(s) / C(t)`` and its volume by
``C(t) / C(s)``; e.g. AAPL's 2000-03-01 close $130.31 reads $32.58 in the units of 2005-03-01
(``C = 1`` then ``4``). A buy-and-hold position's value on raw prices is
``q_0 · C(t) / C(s_0) · c_t``.
"""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from tradeloom.errors import DataError

__all__ = [
    "CorporateAction",
    "DividendBasis",
    "actions_from_adjusted",
    "dataset_actions",
    "load_actions_table",
    "split_factor_series",
]

ActionKind = Literal["split", "dividend"]
DividendBasis = Literal["ex_close", "prev_close"]

NOISE_FLOOR = 1e-9
"""Smallest ``|log r|`` read as an action, whatever the printed precision (see module doc)."""
PRECISION_SAMPLE = 20_000
"""How many distinct adjusted closes the printed precision is read from."""
MAX_SIMPLE_TERM = 10
"""A split ratio ``p/q`` with both terms up to this is simple (3:2, 7:4, 10:3, …)."""
MAX_WHOLE_RATIO = 1000
"""``n:1`` and ``1:n`` splits are simple up to this ``n``."""
MAX_LISTED_ERRORS = 10
"""How many bad rows an actions-table error lists."""

_KIND_ORDER = {"dividend": 0, "split": 1}


@dataclass(frozen=True, slots=True)
class CorporateAction:
    """One split or cash dividend of one symbol."""

    symbol: str
    ex_ts: int
    """Nanoseconds since the epoch (UTC) of the first bar that trades ex: the ex-date's bar."""
    kind: ActionKind
    ratio: float = 1.0
    """Split: new shares per old share (2.0 for 2:1, 0.1 for a 1:10 reverse split)."""
    amount: float = 0.0
    """Dividend: cash per share held going into the ex-date, in that date's raw price units."""

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:
            raise ValueError(f"symbol must be a non-empty string, not {self.symbol!r}")
        if self.kind == "split":
            if not (math.isfinite(self.ratio) and self.ratio > 0) or self.ratio == 1.0:
                raise ValueError(f"a split needs a positive ratio other than 1, not {self.ratio}")
            if self.amount != 0.0:
                raise ValueError("a split has no amount")
        elif self.kind == "dividend":
            if not (math.isfinite(self.amount) and self.amount >= 0):
                raise ValueError(f"a dividend needs an amount >= 0, not {self.amount}")
            if self.ratio != 1.0:
                raise ValueError("a dividend has no ratio")
        else:
            raise ValueError(f"kind must be 'split' or 'dividend', not {self.kind!r}")

    @property
    def ex_time(self) -> pd.Timestamp:
        """``ex_ts`` as a UTC timestamp."""
        return pd.Timestamp(self.ex_ts, unit="ns", tz="UTC")


def _ordered(actions: Iterable[CorporateAction]) -> list[CorporateAction]:
    """Actions in the order to apply them: time, symbol, a dividend before a split."""
    return sorted(actions, key=lambda a: (a.ex_ts, a.symbol, _KIND_ORDER[a.kind]))


# --- from an adjusted close ----------------------------------------------------------------


def _simple_ratios() -> tuple[np.ndarray, np.ndarray]:
    """The simple split ratios (see the module doc) and their logs, sorted."""
    terms = range(1, MAX_SIMPLE_TERM + 1)
    found = {Fraction(p, q) for p in terms for q in terms}
    found |= {Fraction(n) for n in range(1, MAX_WHOLE_RATIO + 1)}
    found |= {Fraction(1, n) for n in range(1, MAX_WHOLE_RATIO + 1)}
    found.discard(Fraction(1))
    values = np.array(sorted(float(f) for f in found))
    return values, np.log(values)


_RATIOS, _LOG_RATIOS = _simple_ratios()


def _printed_error(values: np.ndarray) -> np.ndarray:
    """Half a unit in the last printed place of each value (see the module doc).

    The precision is read from at most ``PRECISION_SAMPLE`` distinct values, spread evenly over
    their range; a sample can only find fewer digits than the whole column, which widens the
    tolerance (no phantom actions), never narrows it."""
    unique = np.unique(values)
    if len(unique) > PRECISION_SAMPLE:
        unique = unique[np.linspace(0, len(unique) - 1, PRECISION_SAMPLE).astype(np.int64)]
    decimals = 0
    digits = 1
    for value in unique.tolist():
        text = np.format_float_positional(value, unique=True, trim="-")
        decimals = max(decimals, len(text.partition(".")[2]))
        mantissa = np.format_float_scientific(value, unique=True, trim="-").partition("e")[0]
        digits = max(digits, sum(ch.isdigit() for ch in mantissa))
    fixed = 0.5 * 10.0**-decimals
    magnitude = np.floor(np.log10(values))
    significant = 0.5 * 10.0 ** (magnitude - digits + 1)
    return np.maximum(fixed, significant)


def _check_frame(frame: pd.DataFrame, symbol: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frame's timestamps (int64 ns UTC), closes and adjusted closes, checked."""
    missing = [c for c in ("close", "adj_close") if c not in frame.columns]
    if missing:
        raise DataError(
            f"{symbol}: no {' or '.join(missing)} column to read corporate actions from "
            f"(columns: {', '.join(map(str, frame.columns)) or 'none'})"
        )
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"{symbol}: the frame must be indexed by time (a DatetimeIndex)")
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    ts = index.as_unit("ns").asi8
    if len(ts) > 1 and not bool(np.all(np.diff(ts) > 0)):
        at = int(np.argmax(np.diff(ts) <= 0)) + 1
        raise DataError(
            f"{symbol}: bars are not in strictly increasing time order at {index[at]}; "
            f"sort them and remove duplicates first"
        )
    close = frame["close"].to_numpy(dtype=np.float64)
    adj = frame["adj_close"].to_numpy(dtype=np.float64)
    for name, values in (("close", close), ("adj_close", adj)):
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            at = int(np.argmax(bad))
            raise DataError(
                f"{symbol}: {name} is {values[at]} at {index[at]} ({int(bad.sum())} such rows); "
                f"actions can only be read from positive prices, so fix or drop those rows"
            )
    return ts, close, adj


def actions_from_adjusted(
    frame: pd.DataFrame,
    symbol: str,
    *,
    split_threshold: float = 0.2,
    dividend_basis: DividendBasis = "ex_close",
    snap_tolerance: float = 0.01,
    tolerance: float | None = None,
) -> list[CorporateAction]:
    """The splits and dividends implied by a frame's ``close`` and ``adj_close`` columns.

    ``frame`` holds raw bars of ``symbol`` indexed by time (naive times are taken as UTC), in
    increasing order, with positive ``close`` and ``adj_close``. The factor ``f = adj_close /
    close`` steps by ``r_t = f_{t-1} / f_t`` on each ex-date: ``r_t = 1/k`` for a ``k``-for-1
    split; ``r_t = c_t / (c_t + D)`` for a dividend ``D`` with ``dividend_basis = "ex_close"``
    (so ``D = c_t (1/r_t − 1)``), ``r_t = 1 − D / c_{t-1}`` with ``"prev_close"`` (so
    ``D = c_{t-1} (1 − r_t)``). Steps with ``|log r_t|`` above ``split_threshold`` are splits,
    their ratio snapped to a simple fraction within ``snap_tolerance`` (else a DataError);
    smaller steps are dividends; steps within the printing noise of ``adj_close`` (or within
    ``tolerance``, if given, in units of ``|log r|``) are ignored. The module docstring has the
    derivation and the justification of the noise bound.

    Returns the actions in the order to apply them (by time; a dividend before a split of the
    same bar). ``ex_ts`` is the time of the bar where the factor steps.
    """
    if not split_threshold > 0:
        raise ValueError(f"split_threshold must be positive, not {split_threshold}")
    if not 0 <= snap_tolerance < split_threshold:
        raise ValueError(f"snap_tolerance must be in [0, split_threshold), not {snap_tolerance}")
    if tolerance is not None and not 0 <= tolerance < split_threshold:
        raise ValueError(f"tolerance must be in [0, split_threshold), not {tolerance}")
    ts, close, adj = _check_frame(frame, symbol)
    if len(ts) < 2:
        return []
    factor = adj / close
    step = np.log(factor[:-1] / factor[1:])  # log r_t for t = 1 .. n-1
    if tolerance is None:
        worst = -np.log1p(-_printed_error(adj) / adj)  # |log a - log a_true| <= this
        noise = worst[:-1] + worst[1:] + NOISE_FLOOR
    else:
        noise = np.full(len(step), float(tolerance))
    actions: list[CorporateAction] = []
    for i in np.flatnonzero(np.abs(step) > noise).tolist():
        t = i + 1
        x, eps = float(step[i]), float(noise[i])
        when = pd.Timestamp(int(ts[t]), unit="ns", tz="UTC")
        ratio = 1.0
        if abs(x) > split_threshold:
            ratio = _snap(x, eps, snap_tolerance, symbol, when)
            actions.append(CorporateAction(symbol, int(ts[t]), "split", ratio=ratio))
            x += math.log(ratio)  # the rest, log(r_t k): a same-bar dividend, or noise
            if abs(x) <= eps:
                continue
        elif x > 0:
            raise DataError(
                f"{symbol}: the adjustment factor adj_close / close falls by "
                f"{-math.expm1(-x):.4%} on {when} (step r = {math.exp(x):.8f} > 1): earlier "
                f"prices were raised, which no cash dividend does; check the adjusted close"
            )
        r = math.exp(x)
        if dividend_basis == "ex_close":
            amount = float(close[t]) * (1.0 / r - 1.0) * ratio
        else:
            amount = float(close[t - 1]) * (1.0 - r)
        actions.append(CorporateAction(symbol, int(ts[t]), "dividend", amount=amount))
    return _ordered(actions)


def _snap(x: float, eps: float, tolerance: float, symbol: str, when: pd.Timestamp) -> float:
    """The simple split ratio ``k`` nearest ``exp(-x)`` whose rest ``log(r k)`` is within
    ``[-tolerance, eps]`` (a same-bar dividend lowers it, nothing raises it beyond noise)."""
    rest = x + _LOG_RATIOS
    fits = np.flatnonzero((rest >= -tolerance) & (rest <= eps))
    measured = math.exp(-x)
    if not len(fits):
        raise DataError(
            f"{symbol}: the adjustment factor adj_close / close steps by {measured:.6g}x on "
            f"{when}, a split of {measured:.6g} new shares per old one, which is no simple "
            f"ratio (p:q with p, q <= {MAX_SIMPLE_TERM}, or n:1 / 1:n with n <= "
            f"{MAX_WHOLE_RATIO}) within {tolerance:.2%}; give the actions in a table instead"
        )
    best = fits[np.argmin(np.abs(rest[fits]))]
    return float(_RATIOS[best])


def dataset_actions(
    name: str,
    symbols: Sequence[str] | None = None,
    *,
    split_threshold: float = 0.2,
    dividend_basis: DividendBasis = "ex_close",
) -> list[CorporateAction]:
    """The actions in a bundled dataset with an adjusted close (``us-stocks-daily``,
    ``sp500-daily``, ``nasdaq-daily``), read with :func:`actions_from_adjusted` from the
    unvalidated frames the dataset source parses; ``symbols`` limits them (default: all)."""
    frames = _dataset_frames(name, symbols)
    found: list[CorporateAction] = []
    for symbol, frame in frames.items():
        found += actions_from_adjusted(
            frame, symbol, split_threshold=split_threshold, dividend_basis=dividend_basis
        )
    return _ordered(found)


def _dataset_frames(name: str, symbols: Sequence[str] | None) -> Mapping[str, pd.DataFrame]:
    """A bundled dataset's per-symbol frames with ``adj_close``, as parsed (not validated).

    Uses the dataset module's parse cache: the frames are shared, so they are only read here.
    """
    from tradeloom.data import datasets
    from tradeloom.data.files import select_symbols

    known = datasets._DATASETS
    if name not in known:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(sorted(known))}")
    if known[name].adjustment != "column":
        raise DataError(
            f"dataset {name!r} has no adjusted close column, so no corporate actions can be "
            f"read from it"
        )
    frames, _ = datasets._parsed(name)
    return select_symbols(frames, list(symbols) if symbols else None, f"dataset {name!r}")


# --- from a table --------------------------------------------------------------------------

_TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "symbol": ("symbol", "ticker"),
    "date": ("date", "exdate"),
    "split_ratio": ("splitratio", "split"),
    "dividend": ("dividend", "exdividend"),
}
"""Normalised names (lower case, no spaces, ``_`` or ``-``) accepted for each table column."""


def _norm(name: object) -> str:
    return "".join(ch for ch in str(name).lower() if ch not in " _-\t")


def load_actions_table(path: Path | str, *, timezone: str = "UTC") -> list[CorporateAction]:
    """Corporate actions from a CSV file, one row per ex-date and symbol.

    Columns (any case; ``Split Ratio`` and ``ex_date`` also work): ``symbol`` (or ``ticker``),
    ``date`` (the ex-date, ``YYYY-MM-DD`` or an ISO 8601 time), and ``split_ratio`` and/or
    ``dividend``. A ratio is a number of new shares per old share (``2``, ``0.1``) or ``p:q``
    / ``p/q`` (``3:2``, ``1:10``); a dividend is cash per share held going into the ex-date.
    An empty cell, a ratio of 1 or a dividend of 0 means none (vendor tables carry them on
    every row); a row with both gives a dividend and a split, the dividend applied first.
    Dates without a time are midnight in ``timezone`` (UTC by default, as the bundled daily
    bars), so every bar stamped on the ex-date or later is ex. Bad rows (no symbol, no or an
    unreadable date, a ratio <= 0 or a dividend < 0, text where a number belongs, two splits
    of one symbol on one date) are a DataError naming their line and column.
    """
    path = Path(path)
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {timezone!r}; use an IANA name such as 'UTC'"
        ) from None
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such actions file") from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it as CSV ({exc})") from None
    columns = _table_columns(table, path)
    errors: list[str] = []
    found: list[CorporateAction] = []
    splits_seen: dict[tuple[str, int], int] = {}
    for row, line in zip(table.itertuples(index=False), range(2, len(table) + 2), strict=True):
        cells = {key: str(row[pos]).strip() for key, pos in columns.items()}
        if not any(cells.values()):
            continue  # a blank line
        try:
            actions = _table_row(cells, timezone, line)
        except _BadRow as exc:
            errors.append(str(exc))
            continue
        for action in actions:
            if action.kind == "split":
                key = (action.symbol, action.ex_ts)
                if key in splits_seen:
                    errors.append(
                        f"line {line}: a second split of {action.symbol} on "
                        f"{action.ex_time.date()} (first on line {splits_seen[key]}); "
                        f"give one split_ratio per symbol and date"
                    )
                    continue
                splits_seen[key] = line
            found.append(action)
    if errors:
        listed = "; ".join(errors[:MAX_LISTED_ERRORS])
        more = len(errors) - MAX_LISTED_ERRORS
        raise DataError(
            f"{path}: {len(errors)} bad row{'s' * (len(errors) != 1)} in the actions table: "
            f"{listed}{f'; and {more} more' if more > 0 else ''}"
        )
    return _ordered(found)


class _BadRow(Exception):
    pass


def _table_columns(table: pd.DataFrame, path: Path) -> dict[str, int]:
    """Position of each known column; symbol, date and one of the value columns required."""
    positions: dict[str, int] = {}
    for pos, column in enumerate(table.columns):
        for key, names in _TABLE_COLUMNS.items():
            if _norm(column) in names:
                if key in positions:
                    raise DataError(
                        f"{path}: two columns could be {key} ({table.columns[positions[key]]!r} "
                        f"and {column!r}); keep one"
                    )
                positions[key] = pos
    missing = [k for k in ("symbol", "date") if k not in positions]
    if "split_ratio" not in positions and "dividend" not in positions:
        missing.append("split_ratio or dividend")
    if missing:
        present = ", ".join(repr(str(c)) for c in table.columns) or "none"
        raise DataError(
            f"{path}: the actions table needs column(s) {', '.join(missing)} (columns: "
            f"{present}); expected symbol, date, split_ratio and/or dividend"
        )
    return positions


def _table_row(cells: dict[str, str], timezone: str, line: int) -> list[CorporateAction]:
    symbol = cells["symbol"]
    if not symbol:
        raise _BadRow(f"line {line}, column symbol: empty")
    ex_ts = _table_date(cells["date"], timezone, line)
    actions = []
    dividend = _table_number(cells.get("dividend", ""), "dividend", line)
    if dividend is not None:
        if dividend < 0:
            raise _BadRow(f"line {line}, column dividend: {cells['dividend']!r} is negative")
        if dividend > 0:
            actions.append(CorporateAction(symbol, ex_ts, "dividend", amount=dividend))
    ratio = _table_ratio(cells.get("split_ratio", ""), line)
    if ratio is not None and ratio != 1.0:
        actions.append(CorporateAction(symbol, ex_ts, "split", ratio=ratio))
    return actions


def _table_date(text: str, timezone: str, line: int) -> int:
    if not text:
        raise _BadRow(f"line {line}, column date: empty")
    try:
        when = pd.to_datetime(text, format="ISO8601")
    except (ValueError, TypeError):
        when = pd.NaT
    if when is pd.NaT:
        raise _BadRow(f"line {line}, column date: {text!r} is not a date (use YYYY-MM-DD)")
    when = when.tz_localize(timezone) if when.tz is None else when
    return int(when.tz_convert("UTC").as_unit("ns").value)


def _table_number(text: str, column: str, line: int) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _BadRow(f"line {line}, column {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _BadRow(f"line {line}, column {column}: {text!r} is not a finite number")
    return value


def _table_ratio(text: str, line: int) -> float | None:
    for sep in (":", "/"):
        if sep in text:
            new, _, old = text.partition(sep)
            a = _table_number(new.strip(), "split_ratio", line)
            b = _table_number(old.strip(), "split_ratio", line)
            if a is None or b is None or a <= 0 or b <= 0:
                raise _BadRow(
                    f"line {line}, column split_ratio: {text!r} is not a ratio of two positive "
                    f"numbers (new:old, e.g. 2:1 or 1:10)"
                )
            return a / b
    value = _table_number(text, "split_ratio", line)
    if value is not None and value <= 0:
        raise _BadRow(
            f"line {line}, column split_ratio: {text!r} is not positive (new shares per old "
            f"share: 2 for a 2:1 split, 0.1 for 1:10)"
        )
    return value


# --- split factors -------------------------------------------------------------------------


def split_factor_series(
    actions: Iterable[CorporateAction], symbol: str, ts: np.ndarray
) -> np.ndarray:
    """``C(t)`` for each bar time in ``ts`` (int64 ns UTC, or datetime64): the product of the
    ratios of ``symbol``'s splits with ``ex_ts <= t``, 1.0 before its first split.

    Bar ``s`` in the share units of bar ``t``: prices × ``C(s) / C(t)``, volume ×
    ``C(t) / C(s)``. For the whole history in the units of the last bar, multiply prices by
    ``C / C[-1]``. ``ts`` need not be sorted; the result is float64 of the same shape.
    """
    times = np.asarray(ts)
    if np.issubdtype(times.dtype, np.datetime64):
        times = times.astype("datetime64[ns]").view(np.int64)
    elif not np.issubdtype(times.dtype, np.integer):
        raise TypeError(f"ts must be int64 nanoseconds or datetime64, not {times.dtype}")
    splits = sorted((a.ex_ts, a.ratio) for a in actions if a.symbol == symbol and a.kind == "split")
    if not splits:
        return np.ones(times.shape, dtype=np.float64)
    ex = np.array([s[0] for s in splits], dtype=np.int64)
    cumulative = np.concatenate(([1.0], np.cumprod([s[1] for s in splits])))
    return cumulative[np.searchsorted(ex, times.astype(np.int64), side="right")]


def resolve_actions(
    spec: str, frames: Mapping[str, pd.DataFrame], origin: str
) -> list[CorporateAction]:
    """The actions a data source's ``corporate_actions`` setting asks for, for ``frames`` (raw
    per-symbol frames, before validation): ``"none"``; ``"adj_close"`` (read from each frame's
    adjusted close column); or the path of an actions table (only the frames' symbols kept)."""
    if spec == "none":
        return []
    if spec == "adj_close":
        found: list[CorporateAction] = []
        for symbol, frame in frames.items():
            if "adj_close" not in frame.columns:
                raise DataError(
                    f"{origin}: corporate_actions = 'adj_close' reads splits and dividends from "
                    f"an adjusted close column, and {symbol} has none; give an actions table "
                    f"instead (corporate_actions = 'actions.csv')",
                    field="params.corporate_actions",
                )
            found += actions_from_adjusted(frame, symbol)
        return _ordered(found)
    path = Path(spec)
    if not path.is_file():
        raise DataError(
            f"{origin}: corporate_actions: no actions table at {path} (looked for "
            f"{path.absolute()}); use 'none', 'adj_close' or the path of a CSV file",
            field="params.corporate_actions",
        )
    return [a for a in load_actions_table(path) if a.symbol in frames]

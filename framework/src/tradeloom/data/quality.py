"""Quality checks every bar frame passes before a strategy sees it.

:func:`validate_bars` checks one symbol's bars and either refuses them with one
:class:`~tradeloom.errors.DataError` that lists every problem (``on_bad_rows = "error"``, the
default of every data source) or removes the offending rows and reports how many
(``on_bad_rows = "drop"``).

The checks, in the order they are reported:

* **missing timestamp**: the row has no time (NaT).
* **price not a finite number**: open, high, low or close is missing, non-numeric or infinite.
* **price not positive**: open, high, low or close is zero or negative.
* **high below open or close**: ``high < max(open, close)``.
* **low above open or close**: ``low > min(open, close)`` (the two together imply high >= low).
* **bad volume**: volume is negative, missing or infinite. A frame without a ``volume`` column
  gets volume 0.
* **out of time order**: the row's timestamp is earlier than a timestamp on an earlier row.
  Rows are never sorted silently, because a shuffled file is more often a broken export than a
  layout. With ``"drop"``, the rows that step back in time are removed and the rest keeps the
  file's order. If more than half of the rows are out of order the data is refused even with
  ``"drop"``: the file is most likely stored newest first, and the file sources' ``sort = true``
  is the fix, not dropping almost everything.
* **duplicate rows**: a row repeats the timestamp *and* the values of an earlier row. With
  ``"drop"`` the extra copies are removed and the first is kept.
* **conflicting rows**: several rows share a timestamp with different values. Nothing says which
  is right, so with ``"drop"`` every row at that timestamp is removed.

The time-order and duplicate checks only look at rows that pass the value checks, so one row
with a broken price does not also count as a time-order problem for the rows after it.
Comparisons are exact (no tolerance).

The clean frame has a timezone-aware UTC :class:`pandas.DatetimeIndex` named ``ts`` (nanosecond
resolution; naive timestamps are taken as UTC) and exactly the float64 columns
:data:`~tradeloom.data.base.BAR_COLUMNS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from tradeloom.data.base import BAR_COLUMNS
from tradeloom.errors import DataError

OnBadRows = Literal["error", "drop"]
"""What to do with rows that fail a quality check: refuse the data, or remove the rows."""

PRICE_COLUMNS = ("open", "high", "low", "close")
MAX_EXAMPLES = 5
"""How many offending timestamps a problem line names."""


@dataclass(frozen=True)
class _Failure:
    """The rows that failed one check."""

    description: str
    mask: np.ndarray
    detail: str = ""


def validate_bars(
    frame: pd.DataFrame, symbol: str, on_bad_rows: OnBadRows
) -> tuple[pd.DataFrame, int, list[str]]:
    """Check one symbol's bars; return ``(clean_frame, dropped_rows, problem_lines)``.

    ``frame`` is indexed by time and has the columns ``open, high, low, close`` and optionally
    ``volume``; other columns are ignored. The input is never modified.

    With ``on_bad_rows="error"`` any failing row raises :class:`DataError` with one message that
    names the symbol, every failing check, its row count and up to five offending timestamps.
    With ``"drop"`` the failing rows are removed; ``dropped_rows`` counts them and
    ``problem_lines`` has one line per failing check (the lines a :class:`QualityReport` holds).
    """
    index = _utc_index(frame.index, symbol)
    values = _bar_values(frame, symbol)
    failures = _value_failures(values)
    value_bad = np.zeros(len(index), dtype=bool)
    for failure in failures:
        value_bad |= failure.mask
    nat = np.asarray(index.isna())
    if nat.any():
        failures.insert(0, _Failure("with a missing timestamp", nat))
    order = _order_failure(index, ~(value_bad | nat))
    if order is not None:
        failures.append(order)
    failures.extend(_duplicate_failures(index, values, ~(value_bad | nat)))

    problems = [_problem_line(symbol, f, index) for f in failures]
    if not failures:
        return _clean_frame(index, values, np.ones(len(index), dtype=bool)), 0, []
    if on_bad_rows == "error":
        raise DataError(_error_message(symbol, len(index), failures, problems))
    if order is not None and order.mask.sum() * 2 > len(index):
        raise DataError(_reversed_message(symbol, len(index), order, index))
    bad = np.zeros(len(index), dtype=bool)
    for failure in failures:
        bad |= failure.mask
    return _clean_frame(index, values, ~bad), int(bad.sum()), problems


def _utc_index(index: pd.Index, symbol: str) -> pd.DatetimeIndex:
    """The index as UTC nanoseconds; naive timestamps are taken as UTC."""
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(
            f"{symbol}: bars must be indexed by time (a pandas DatetimeIndex), got "
            f"{type(index).__name__}; parse the timestamps first (the file sources do this)"
        )
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return index.as_unit("ns").rename("ts")


def _bar_values(frame: pd.DataFrame, symbol: str) -> dict[str, np.ndarray]:
    """The bar columns as float64 arrays; non-numeric cells become NaN, missing volume 0."""
    missing = [c for c in PRICE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{symbol}: bars lack the column(s) {', '.join(missing)} "
            f"(found: {', '.join(map(str, frame.columns)) or 'none'}); every bar needs "
            f"open, high, low and close"
        )
    values = {col: _as_float(frame[col]) for col in PRICE_COLUMNS}
    if "volume" in frame.columns:
        values["volume"] = _as_float(frame["volume"])
    else:
        values["volume"] = np.zeros(len(frame), dtype=np.float64)
    return values


def _as_float(column: pd.Series) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column):
        column = pd.to_numeric(column, errors="coerce")
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _value_failures(values: dict[str, np.ndarray]) -> list[_Failure]:
    """Checks on each row's own values (no comparison with other rows)."""
    o, h, lo, c, v = (values[col] for col in BAR_COLUMNS)
    # Column by column rather than on a stacked copy: a few boolean arrays of memory at most.
    finite = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c)
    with np.errstate(invalid="ignore"):
        positive = (o > 0) & (h > 0) & (lo > 0) & (c > 0)
        checks = [
            _Failure("with a price that is missing, non-numeric or infinite", ~finite),
            _Failure("with a price <= 0", finite & ~positive),
            _Failure("with high below open or close", finite & (h < np.maximum(o, c))),
            _Failure("with low above open or close", finite & (lo > np.minimum(o, c))),
            _Failure("with a negative, missing or infinite volume", ~(np.isfinite(v) & (v >= 0))),
        ]
    return [check for check in checks if check.mask.any()]


def _order_failure(index: pd.DatetimeIndex, candidates: np.ndarray) -> _Failure | None:
    """Rows (among ``candidates``) earlier than some earlier candidate row."""
    ts = index.asi8
    positions = np.flatnonzero(candidates)
    if len(positions) < 2:
        return None
    times = ts[positions]
    previous_max = np.maximum.accumulate(times)[:-1]
    late = times[1:] < previous_max
    if not late.any():
        return None
    mask = np.zeros(len(ts), dtype=bool)
    mask[positions[1:][late]] = True
    first = int(np.argmax(late))
    detail = (
        f"; the first, {_fmt(pd.Timestamp(times[first + 1], tz='UTC'))}, comes after "
        f"{_fmt(pd.Timestamp(previous_max[first], tz='UTC'))}"
    )
    return _Failure("out of time order (earlier than a row before them)", mask, detail)


def _duplicate_failures(
    index: pd.DatetimeIndex, values: dict[str, np.ndarray], candidates: np.ndarray
) -> list[_Failure]:
    """Exact repeats (extra copies flagged) and conflicting rows at one timestamp (all flagged)."""
    positions = np.flatnonzero(candidates)
    times = index.asi8[positions]
    if (np.diff(times) > 0).all():  # strictly increasing: no duplicates (the usual case)
        return []
    ts = pd.Series(times)
    shared = ts.duplicated(keep=False).to_numpy()
    if not shared.any():
        return []
    rows = pd.DataFrame({"ts": ts.to_numpy(), **{c: values[c][positions] for c in BAR_COLUMNS}})
    rows = rows[shared]
    extra_copy = rows.duplicated(keep="first")
    distinct = rows[~extra_copy]
    conflict = distinct["ts"].duplicated(keep=False)
    failures = []
    for description, selected in (
        ("repeating the timestamp and values of an earlier row", extra_copy),
        ("sharing a timestamp with a row of different values", conflict),
    ):
        chosen = selected[selected].index.to_numpy()
        if len(chosen):
            mask = np.zeros(len(index), dtype=bool)
            mask[positions[chosen]] = True
            failures.append(_Failure(description, mask))
    return failures


def _clean_frame(
    index: pd.DatetimeIndex, values: dict[str, np.ndarray], keep: np.ndarray
) -> pd.DataFrame:
    if keep.all():  # the usual case: no copy of the columns (unless they are read-only views)
        data = {c: v if (v := values[c]).flags.writeable else v.copy() for c in BAR_COLUMNS}
        return pd.DataFrame(data, index=index, columns=list(BAR_COLUMNS), copy=False)
    data = {col: values[col][keep] for col in BAR_COLUMNS}
    return pd.DataFrame(data, index=index[keep], columns=list(BAR_COLUMNS))


def _fmt(ts: pd.Timestamp) -> str:
    """A timestamp for messages: the date alone at midnight UTC, else ISO 8601 with ``Z``."""
    if ts is pd.NaT:
        return "NaT"
    if ts == ts.normalize():
        return ts.strftime("%Y-%m-%d")
    return ts.tz_convert("UTC").tz_localize(None).isoformat() + "Z"


def _examples(failure: _Failure, index: pd.DatetimeIndex) -> str:
    positions = np.flatnonzero(failure.mask)
    shown = positions[:MAX_EXAMPLES]
    if index[shown].isna().all():
        items = [f"row {p + 1}" for p in shown]
    else:
        items = [_fmt(index[p]) for p in shown]
    more = ", ..." if len(positions) > MAX_EXAMPLES else ""
    return ", ".join(items) + more


def _problem_line(symbol: str, failure: _Failure, index: pd.DatetimeIndex) -> str:
    count = int(failure.mask.sum())
    rows = "row" if count == 1 else "rows"
    return (
        f"{symbol}: {count} {rows} {failure.description} "
        f"({_examples(failure, index)}){failure.detail}"
    )


def _error_message(symbol: str, total: int, failures: list[_Failure], lines: list[str]) -> str:
    bad = np.zeros(total, dtype=bool)
    for failure in failures:
        bad |= failure.mask
    checks = "check" if len(failures) == 1 else "checks"
    hint = (
        f'Fix the data, or set on_bad_rows = "drop" in the data source params to drop these '
        f"{int(bad.sum())} row(s) (the count is reported with the loaded data)."
    )
    if any(f.description.startswith("out of time order") for f in failures):
        hint += " If the file is stored newest first, set sort = true to sort it by time."
    body = "\n".join(f"  - {line}" for line in lines)
    return (
        f"{symbol}: {int(bad.sum())} of {total} bars fail the data quality {checks}:\n"
        f"{body}\n{hint}"
    )


def _reversed_message(symbol: str, total: int, order: _Failure, index: pd.DatetimeIndex) -> str:
    count = int(order.mask.sum())
    return (
        f"{symbol}: {count} of {total} bars are out of time order "
        f"({_examples(order, index)}){order.detail}. That is more than half of the data, so it "
        f'is refused even with on_bad_rows = "drop": the file is probably stored newest first. '
        f"Set sort = true in the data source params to sort the rows by time."
    )

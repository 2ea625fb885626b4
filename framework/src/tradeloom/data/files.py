"""Bars from CSV and Parquet files: :class:`CsvSource` and :class:`ParquetSource`.

Both read a table, find the timestamp, symbol and price columns, split it into one frame per
symbol and run every frame through :func:`~tradeloom.data.quality.validate_bars`. Three table
layouts are understood:

* ``long``: one row per symbol and time, with a symbol column (``symbol`` / ``ticker``).
* ``single``: one symbol, no symbol column; the ``symbol`` parameter names it.
* ``wide``: a timestamp column and one column per symbol holding a close price. Each cell
  becomes a bar with ``open = high = low = close`` and ``volume = 0``; an empty cell means the
  symbol has no bar at that time (e.g. before it was listed).

The helpers below the sources (:func:`read_frames`, :func:`apply_adjustment`,
:func:`select_symbols`, :func:`build_market_data`) are shared with the bundled datasets.
"""

from __future__ import annotations

import re
import warnings
import zoneinfo
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from tradeloom.components import Capabilities, Mode, Params
from tradeloom.data.actions import CorporateAction, resolve_actions
from tradeloom.data.base import CHUNK_ROWS, ChunkedMarket, DataSource, MarketData, QualityReport
from tradeloom.data.quality import OnBadRows, validate_bars
from tradeloom.errors import DataError

__all__ = ["CsvSource", "ParquetSource", "TableParams"]

Layout = Literal["auto", "long", "wide", "single"]
EpochUnit = Literal["auto", "s", "ms", "us", "ns"]
BarField = Literal["open", "high", "low", "close", "volume", "adj_close"]

TIMESTAMP_NAMES = ("ts", "timestamp", "date", "datetime", "time")
"""Column names taken as the timestamp when ``timestamp_column`` is not set (any case)."""
SYMBOL_NAMES = ("symbol", "ticker")
"""Column names taken as the symbol when ``symbol_column`` is not set (any case)."""
FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume",),
    "adj_close": ("adjclose", "adjustedclose"),
}
"""Normalised column names (lower case, no spaces, ``_`` or ``-``) of each bar field."""
EPOCH_LIMITS = (("s", 1e11), ("ms", 1e14), ("us", 1e17))
"""``epoch_unit = "auto"``: the first unit whose limit exceeds the largest timestamp, else ns."""
MAX_LISTED = 30
"""How many available symbols an unknown-symbol message lists."""


class TableParams(Params):
    """How a table of bars is laid out: the options every file source shares."""

    layout: Layout = "auto"
    """``"long"``: a symbol column and one row per symbol and time. ``"single"``: one symbol, no
    symbol column (``symbol`` names it). ``"wide"``: one column per symbol holding its close
    price; bars get open = high = low = close and volume 0, and an empty cell means no bar.
    ``"auto"``: ``"single"`` if ``symbol`` is set or no symbol column is found, else ``"long"``."""
    symbol: str | None = None
    """The symbol of a single-symbol file. Default: the file name without its extensions."""
    timestamp_column: str | None = None
    """The timestamp column. Default: the one column named ts, timestamp, date, datetime or time
    (any case); a Parquet file's datetime index also works."""
    symbol_column: str | None = None
    """The symbol column of a long file. Default: the column named symbol or ticker (any case)."""
    columns: dict[BarField, str] = Field(default_factory=dict)
    """Column names for bar fields that do not go by their own name, e.g.
    ``{close = "Last", volume = "Vol."}``. Unmapped fields are matched by name in any case;
    ``adj_close`` matches "Adj Close". A file with a close but no open, high and low gets
    open = high = low = close; a file without volume gets volume 0."""
    timestamp_format: str | None = None
    """strftime pattern of text timestamps, e.g. ``"%d.%m.%Y %H:%M"``; also use it for dates
    written as numbers (``"%Y%m%d"``). Default: inferred (ISO 8601 works)."""
    timezone: str = "UTC"
    """IANA time zone of timestamps written without an offset, e.g. ``"America/New_York"``.
    Everything is converted to UTC."""
    epoch_unit: EpochUnit = "auto"
    """Unit of numeric (epoch) timestamps. ``"auto"`` picks s, ms, us or ns from the magnitude
    (nanoseconds, as in int64 ``ts`` columns, for values of 1e17 and above)."""
    sort: bool = False
    """Sort each symbol's rows by time before the checks, for files stored newest first.
    Without it, rows out of time order fail the quality checks."""
    adjusted: bool = False
    """Rescale open, high, low and close by ``adj_close / close`` so that splits and dividends
    no longer show as price jumps. Needs an adjusted close column; volume is left as is."""
    symbols: list[str] | None = Field(default=None, min_length=1)
    """Load only these symbols (default: all). Asking for one the file lacks is an error."""
    on_bad_rows: OnBadRows = "error"
    """Rows failing a quality check: ``"error"`` refuses the data naming them, ``"drop"`` removes
    them and reports the count."""
    corporate_actions: str = "none"
    """Splits and dividends to apply while a backtest plays these raw (unadjusted) prices:
    ``"none"``; ``"adj_close"``, read from the adjusted close column; or the path of a CSV
    table with columns symbol, date, split_ratio and/or dividend. The alternative to
    ``adjusted = true``, which removes the actions from the prices instead."""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'UTC' or 'America/New_York'"
            ) from None
        return value

    @model_validator(mode="after")
    def _consistent_layout(self) -> TableParams:
        if self.layout == "wide":
            unused = [
                name
                for name, is_set in (
                    ("symbol_column", self.symbol_column is not None),
                    ("columns", bool(self.columns)),
                    ("adjusted", self.adjusted),
                    ("symbol", self.symbol is not None),
                )
                if is_set
            ]
            if unused:
                raise ValueError(
                    f"layout 'wide' holds one close price per symbol column, so "
                    f"{', '.join(unused)} cannot be used with it"
                )
        if self.adjusted and self.corporate_actions != "none":
            raise ValueError(
                "adjusted = true removes splits and dividends from the prices, corporate_actions "
                "applies them to raw prices: choose one"
            )
        if self.layout == "long" and self.symbol is not None:
            raise ValueError(
                "symbol names the one symbol of a single-symbol file; with layout 'long' the "
                "symbol column gives each row's symbol (use symbols = [...] to filter)"
            )
        return self


class _FileParams(TableParams):
    path: Path | list[Path]
    """The data file, or a list of files read as one table (e.g. one file per year). A relative
    path is relative to the directory tradeloom runs in."""

    @field_validator("path")
    @classmethod
    def _not_empty(cls, value: Path | list[Path]) -> Path | list[Path]:
        if isinstance(value, list) and not value:
            raise ValueError("give at least one file")
        return value

    @property
    def paths(self) -> list[Path]:
        return self.path if isinstance(self.path, list) else [self.path]


class CsvSource(DataSource):
    """Bars from CSV files (gzip, bz2, xz and zip compression are recognised)."""

    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST}), multi_symbol=True)

    class Params(_FileParams):
        """Where the CSV files are and how their columns are laid out."""

        separator: str = ","
        """Field separator, e.g. ``";"`` or ``"\\t"``."""
        skip_rows: int = Field(default=0, ge=0)
        """Lines to skip before the header, e.g. 1 for a file that starts with a banner line."""

    params: CsvSource.Params

    def load(
        self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
    ) -> MarketData:
        """Read, split and validate the files; bars with ``start <= ts <= end``."""
        params = self.params
        paths = existing_files(params.paths, type(self).__name__)
        table = pd.concat([self._read(p) for p in paths], ignore_index=True)
        return load_table(table, params, describe_paths(paths), start, end)

    def _read(self, path: Path) -> pd.DataFrame:
        try:
            return pd.read_csv(
                path,
                sep=self.params.separator,
                skiprows=self.params.skip_rows,
                compression="gzip" if _is_gzip(path) else "infer",
            )
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise DataError(
                f"{path}: cannot read it as CSV ({exc}); check the file, separator and skip_rows"
            ) from None


class ParquetSource(DataSource):
    """Bars from Parquet files (e.g. an int64 nanosecond ``ts`` column and OHLCV columns)."""

    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST}), multi_symbol=True)

    class Params(_FileParams):
        """Where the Parquet files are and how their columns are laid out."""

    params: ParquetSource.Params

    def load(
        self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
    ) -> MarketData:
        """Read, split and validate the files; bars with ``start <= ts <= end``."""
        params = self.params
        paths = existing_files(params.paths, type(self).__name__)
        table = pd.concat([_read_parquet(p) for p in paths], ignore_index=True)
        return load_table(table, params, describe_paths(paths), start, end)

    def chunked(
        self,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        *,
        rows: int = CHUNK_ROWS,
        keep_close: tuple[str, ...] = (),
    ) -> ChunkedMarket:
        """The bars about ``rows`` rows at a time, decoded batch by batch from the row groups.
        The file(s) must be in time order (one timestamp's rows may straddle batches)."""
        params = self.params
        paths = existing_files(params.paths, type(self).__name__)
        origin = describe_paths(paths)
        found = _parquet_symbols(paths, params, origin)
        symbols = list(select_symbols(dict.fromkeys(found), params.symbols, origin))
        if params.corporate_actions == "adj_close" or params.adjusted:
            raise DataError(
                f"{origin}: adjusted prices and corporate_actions = 'adj_close' need each "
                f"symbol's whole adjusted close and cannot be streamed; give an actions table "
                f'(corporate_actions = "actions.csv") or set run.stream = "never"',
                field="run.stream",
            )
        actions = resolve_actions(params.corporate_actions, dict.fromkeys(symbols), origin)
        return ChunkedMarket(
            symbols,
            origin,
            lambda: _parquet_chunks(paths, params, origin, set(symbols), start, end, rows),
            total_rows=self.size_hint() or 0,
            keep_close=keep_close,
            actions=actions,
        )

    def size_hint(self) -> int | None:
        try:
            return sum(
                _parquet_file(p).metadata.num_rows  # type: ignore[attr-defined]
                for p in existing_files(self.params.paths, type(self).__name__)
            )
        except DataError:
            return None


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        columns = {name: _read_parquet_column(parquet, name) for name in parquet.schema_arrow.names}
    except (ValueError, OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot read it as Parquet ({exc}); check the file") from None
    return _parquet_table(parquet, columns)


def _parquet_table(parquet: object, columns: dict[str, object]) -> pd.DataFrame:
    """A frame of decoded columns, with the index a DataFrame was written with restored (as
    pandas would) and then turned back into a column."""
    table = pd.DataFrame(columns, copy=False)
    index_columns = parquet.schema_arrow.pandas_metadata or {}  # type: ignore[attr-defined]
    named = [c for c in index_columns.get("index_columns", []) if isinstance(c, str)]
    if named:
        table = table.set_index(named)
        if len(named) == 1 and named[0].startswith("__index_level_"):
            table.index.name = None
    return _index_to_column(table)


def _parquet_file(path: Path) -> object:
    """The file opened for streaming: column chunks are read through a 1 MiB buffer rather
    than whole, so a file written as one large row group still streams in small pieces."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
    except (ValueError, OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot read it as Parquet ({exc}); check the file") from None


def _batches(paths: list[Path], rows: int) -> Iterator[pd.DataFrame]:
    """The files' rows in order, decoded ``rows`` at a time (also within a large row group)."""
    import pyarrow as pa

    for path in paths:
        parquet = _parquet_file(path)
        try:
            for arrow in parquet.iter_batches(batch_size=rows, use_threads=False):  # type: ignore[attr-defined]
                columns = {
                    name: (col.to_numpy() if _plain_numeric(col.type) else col.to_pandas())
                    for name, col in zip(arrow.schema.names, arrow.columns, strict=True)
                }
                del arrow
                yield _parquet_table(parquet, columns)
                pa.default_memory_pool().release_unused()
        except (ValueError, OSError, pa.ArrowException) as exc:
            raise DataError(f"{path}: cannot read it as Parquet ({exc}); check the file") from None


def _parquet_symbols(paths: list[Path], params: TableParams, origin: str) -> list[str]:
    """The symbols in the files, read from the symbol column only (or the layout)."""
    parquet = _parquet_file(paths[0])
    schema = parquet.schema_arrow  # type: ignore[attr-defined]
    first = _parquet_table(parquet, {name: [] for name in schema.names})  # the columns only
    ts_column = _timestamp_column(first, params, origin)
    symbol_column = _symbol_column(first, params, origin, exclude=ts_column)
    if params.layout == "wide":
        return sorted(str(c).strip() for c in first.columns if c != ts_column)
    if symbol_column is None:
        return [_single_symbol(params, origin)]
    names: set[str] = set()
    for path in paths:
        parquet = _parquet_file(path)
        batches = parquet.iter_batches(batch_size=65_536, columns=[symbol_column])  # type: ignore[attr-defined]
        for batch in batches:
            column = batch.column(0)
            values = pd.Series(column.unique().to_pandas()).astype("string").str.strip()
            names.update(str(v) for v in values.dropna() if v)
    return sorted(names)


def _parquet_chunks(
    paths: list[Path],
    params: TableParams,
    origin: str,
    symbols: set[str],
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    rows: int,
) -> Iterator[MarketData]:
    """Validated bars about ``rows`` rows at a time, in time order.

    Rows are decoded at most 65,536 at a time (row groups are split); the rows at a batch's
    latest timestamp wait for the next batch, so one timestamp's bars (of every symbol) always
    land in the same chunk. A row that steps back behind bars already played is a quality
    problem of its symbol
    (refused, or dropped with ``on_bad_rows = "drop"``); a file whose rows are not in time order
    at all (e.g. sorted by symbol) cannot be streamed and is refused, naming the fix.
    """
    lo, hi = to_utc(start), to_utc(end)
    last: dict[str, pd.Timestamp] = {}
    played: pd.Timestamp | None = None
    carry: pd.DataFrame | None = None
    pending: list[pd.DataFrame] = []
    count = 0
    any_bars = False

    def batch(final: bool) -> Iterator[MarketData]:
        nonlocal carry, played, any_bars
        parts = ([carry] if carry is not None else []) + pending
        pending.clear()
        carry = None
        if not parts:
            return
        raw = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        ts_column = _timestamp_column(raw, params, origin)
        stamps = parse_timestamps(raw[ts_column], params, origin, ts_column)
        if not final and len(raw):
            held = np.asarray(stamps == stamps.max())
            if held.all():  # one timestamp so far: keep gathering
                carry = raw
                return
            carry = raw[held]
            raw = raw[~held]
        frames, report = read_frames(raw, params, origin)
        frames = {s: f for s, f in frames.items() if s in symbols}
        if params.adjusted:
            frames = apply_adjustment(frames, origin)
        where = f"{origin} (streamed, in the chunk of rows from {stamps.min()} to {stamps.max()})"
        clean = {}
        for symbol, bars in validate_frames(frames, params.on_bad_rows, lo, hi, where, report):
            bars = _after(bars, last.get(symbol), symbol, params.on_bad_rows, origin, report)
            if len(bars):
                clean[symbol] = bars
        if clean:
            first = min(f.index[0] for f in clean.values())
            if played is not None and first <= played:
                raise DataError(
                    f"{origin}: the rows are not in time order across the file (bars at "
                    f"{first} come after bars up to {played}), so it cannot be read in chunks. "
                    f'Sort the file by time, or load it whole with run.stream = "never"',
                    field="run.stream",
                )
            for symbol, bars in clean.items():
                last[symbol] = bars.index[-1]
            played = max(f.index[-1] for f in clean.values())
            any_bars = True
        chunk = MarketData(clean, report, origin)
        del raw, stamps, frames, clean  # only the chunk stays alive while the engine plays it
        yield chunk

    for table in _batches(paths, min(rows, 65_536)):
        pending.append(table)
        count += len(table)
        if count >= rows:
            count = 0
            yield from batch(final=False)
            if hi is not None and played is not None and played >= hi and carry is None:
                break
    yield from batch(final=True)
    if not any_bars:
        raise DataError(f"{origin}: no bars {_range_text(lo, hi)}", field="run.start")


def _after(
    bars: pd.DataFrame,
    last: pd.Timestamp | None,
    symbol: str,
    on_bad_rows: OnBadRows,
    origin: str,
    report: QualityReport,
) -> pd.DataFrame:
    """``bars`` without the rows at or before ``last``, the symbol's latest bar already read."""
    if last is None or not len(bars) or bars.index[0] > last:
        return bars
    behind = np.asarray(bars.index <= last)
    line = (
        f"{symbol}: {int(behind.sum())} row(s) out of time order (first at "
        f"{bars.index[behind][0]}), behind bars up to {last} read earlier in the file"
    )
    if on_bad_rows == "error":
        raise DataError(
            f'{origin}: {line}. Sort the file by time, or set on_bad_rows = "drop" to drop them'
        )
    report.dropped_rows += int(behind.sum())
    report.problems.append(line)
    return bars[~behind]


def _read_parquet_column(parquet: object, name: str) -> object:
    """One column, decoded a row group at a time into one array: memory stays near one copy of
    the column however large the file (the Arrow pool's free memory is returned as we go)."""
    import pyarrow as pa

    groups = parquet.metadata.num_row_groups  # type: ignore[attr-defined]
    parts = []
    for group in range(groups):
        chunk = parquet.read_row_group(group, columns=[name], use_threads=False).column(0)  # type: ignore[attr-defined]
        parts.append(chunk.to_pandas() if not _plain_numeric(chunk.type) else chunk.to_numpy())
        del chunk
        pa.default_memory_pool().release_unused()
    if not parts:
        return np.array([], dtype=np.float64)
    if all(isinstance(p, np.ndarray) for p in parts):
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    return pd.concat([pd.Series(p) for p in parts], ignore_index=True)


def _plain_numeric(kind: object) -> bool:
    import pyarrow.types as pat

    return bool(pat.is_integer(kind) or pat.is_floating(kind))  # type: ignore[arg-type]


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def existing_files(paths: list[Path], source: str) -> list[Path]:
    """The paths, or a :class:`DataError` naming the first that is not a readable file."""
    for path in paths:
        if path.is_dir():
            raise DataError(
                f"{source}: {path} is a directory; set path to a data file in it",
                field="params.path",
            )
        if not path.is_file():
            raise DataError(
                f"{source}: data file not found: {path} (looked for {path.absolute()}). Check "
                f"path in the data source params; a relative path is relative to the directory "
                f"tradeloom runs in",
                field="params.path",
            )
    return paths


def describe_paths(paths: list[Path]) -> str:
    if len(paths) == 1:
        return str(paths[0])
    return f"{paths[0]} and {len(paths) - 1} more file(s)"


def load_table(
    table: pd.DataFrame,
    params: TableParams,
    origin: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
) -> MarketData:
    """Split, adjust, slice and validate a raw table according to ``params``."""
    frames, report = read_frames(table, params, origin)
    frames = select_symbols(frames, params.symbols, origin)
    actions = resolve_actions(params.corporate_actions, frames, origin)
    if params.adjusted:
        frames = apply_adjustment(frames, origin)
    return build_market_data(frames, params.on_bad_rows, start, end, origin, report, actions)


# --- splitting a table into per-symbol frames -------------------------------------------------


def read_frames(
    table: pd.DataFrame, params: TableParams, origin: str
) -> tuple[dict[str, pd.DataFrame], QualityReport]:
    """Split a raw table into per-symbol frames indexed by UTC time, not yet validated.

    Frames carry float64 ``open, high, low, close, volume`` and, when the table has one,
    ``adj_close``. Returns the frames (by sorted symbol) and a report of the rows that could not
    be given to any symbol (dropped with ``on_bad_rows = "drop"``, else a DataError).
    """
    table = _index_to_column(table)
    ts_column = _timestamp_column(table, params, origin)
    index = parse_timestamps(table[ts_column], params, origin, ts_column)
    symbol_column = _symbol_column(table, params, origin, exclude=ts_column)
    report = QualityReport()
    if params.layout == "wide":
        frames = _wide_frames(table.drop(columns=[ts_column]), index, origin)
    elif symbol_column is not None:
        bars = _bar_frame(table, index, params, origin, exclude={ts_column, symbol_column})
        frames, report = _split_long(bars, table[symbol_column], params.on_bad_rows, origin)
    else:
        bars = _bar_frame(table, index, params, origin, exclude={ts_column})
        frames = {_single_symbol(params, origin): bars}
    if params.sort:
        frames = {s: f.sort_index(kind="stable") for s, f in frames.items()}
    return frames, report


def _index_to_column(table: pd.DataFrame) -> pd.DataFrame:
    """Move a meaningful index (e.g. a Parquet file's DatetimeIndex) into columns."""
    if isinstance(table.index, pd.RangeIndex):
        return table
    if isinstance(table.index, pd.DatetimeIndex) and table.index.name is None:
        table = table.rename_axis("ts")
    return table.reset_index()


def _norm(name: object) -> str:
    return re.sub(r"[\s_\-]", "", str(name).lower())


def _named_column(table: pd.DataFrame, wanted: str, param: str, origin: str) -> str:
    """The column called ``wanted`` (exactly, else ignoring case), or a DataError."""
    if wanted in table.columns:
        return wanted
    matches = [c for c in table.columns if str(c).lower() == wanted.lower()]
    if len(matches) == 1:
        return matches[0]
    raise DataError(
        f"{origin}: {param} is {wanted!r} but there is no such column "
        f"(columns: {_column_list(table)})"
    )


def _column_list(table: pd.DataFrame) -> str:
    return ", ".join(repr(str(c)) for c in table.columns) or "none"


def _auto_column(table: pd.DataFrame, names: tuple[str, ...], exclude: set[str]) -> list[str]:
    wanted = set(names)
    return [c for c in table.columns if c not in exclude and _norm(c) in wanted]


def _timestamp_column(table: pd.DataFrame, params: TableParams, origin: str) -> str:
    if params.timestamp_column is not None:
        return _named_column(table, params.timestamp_column, "timestamp_column", origin)
    found = _auto_column(table, TIMESTAMP_NAMES, set())
    if len(found) == 1:
        return found[0]
    what = "several candidate timestamp columns" if found else "no timestamp column"
    raise DataError(
        f"{origin}: found {what} (columns: {_column_list(table)}); set timestamp_column in the "
        f"data source params"
    )


def _symbol_column(
    table: pd.DataFrame, params: TableParams, origin: str, exclude: str
) -> str | None:
    if params.layout in ("wide", "single") or (params.layout == "auto" and params.symbol):
        return None
    if params.symbol_column is not None:
        return _named_column(table, params.symbol_column, "symbol_column", origin)
    found = _auto_column(table, SYMBOL_NAMES, {exclude})
    if len(found) > 1:
        raise DataError(
            f"{origin}: found several symbol columns ({', '.join(map(str, found))}); set "
            f"symbol_column in the data source params"
        )
    if not found and params.layout == "long":
        raise DataError(
            f"{origin}: layout 'long' needs a symbol column and none is named symbol or ticker "
            f"(columns: {_column_list(table)}); set symbol_column, or use layout 'single'"
        )
    return found[0] if found else None


def _single_symbol(params: TableParams, origin: str) -> str:
    if params.symbol is not None:
        return params.symbol
    paths = params.paths if isinstance(params, _FileParams) else []
    stems = {p.name.split(".")[0] for p in paths}
    if len(stems) != 1:
        raise DataError(f"{origin}: the files hold one symbol without naming it; set symbol")
    return stems.pop()


# --- timestamps -------------------------------------------------------------------------------


def parse_timestamps(
    column: pd.Series, params: TableParams, origin: str, name: str
) -> pd.DatetimeIndex:
    """A column of timestamps (text, epoch numbers or datetimes) as a UTC nanosecond index."""
    dtype = column.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        index = pd.DatetimeIndex(column).tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(dtype):
        index = _localize(pd.DatetimeIndex(column), params.timezone, origin, name)
    elif _is_number(dtype) and params.timestamp_format is None:
        index = _from_epoch(column, params.epoch_unit, origin, name)
    else:
        if _is_number(dtype):
            column = column.astype("Int64").astype("string")
        index = _parse_text(column, params.timestamp_format, origin, name)
        if index.tz is None:
            index = _localize(index, params.timezone, origin, name)
        else:
            index = index.tz_convert("UTC")
    return index.as_unit("ns").rename("ts")


def _is_number(dtype: object) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _from_epoch(column: pd.Series, unit: EpochUnit, origin: str, name: str) -> pd.DatetimeIndex:
    if unit == "auto":
        magnitude = np.nanmax(np.abs(column.to_numpy(np.float64, na_value=np.nan)), initial=0.0)
        unit = next((u for u, limit in EPOCH_LIMITS if magnitude < limit), "ns")
    try:
        return pd.DatetimeIndex(pd.to_datetime(column, unit=unit, utc=True))
    except (ValueError, OverflowError) as exc:
        raise DataError(
            f"{origin}: cannot read column {name!r} as epoch timestamps in {unit} ({exc}); "
            f"set epoch_unit, or timestamp_format if the numbers are dates like 20240131"
        ) from None


def _parse_text(column: pd.Series, fmt: str | None, origin: str, name: str) -> pd.DatetimeIndex:
    try:
        with warnings.catch_warnings():
            # pandas 2.x warns (pandas 3 raises) on mixed UTC offsets; both are retried below.
            warnings.simplefilter("ignore", FutureWarning)
            try:
                parsed = pd.to_datetime(column, format=fmt)
            except ValueError as exc:
                if "utc=True" not in str(exc):
                    raise
                parsed = pd.to_datetime(column, format=fmt, utc=True)
            if parsed.dtype == object:
                parsed = pd.to_datetime(column, format=fmt, utc=True)
    except (ValueError, TypeError, OverflowError) as exc:
        example = f"timestamp_format = {fmt!r} does not match" if fmt else "set timestamp_format"
        raise DataError(
            f"{origin}: cannot read column {name!r} as timestamps ({exc}); {example} "
            f"(a strftime pattern such as '%Y-%m-%d %H:%M:%S')"
        ) from None
    return pd.DatetimeIndex(parsed)


def _localize(index: pd.DatetimeIndex, zone: str, origin: str, name: str) -> pd.DatetimeIndex:
    """Naive local times in ``zone`` as UTC; DST gaps and repeats are errors."""
    if zone == "UTC":
        return index.tz_localize("UTC")
    try:
        local = index.tz_localize(zone, ambiguous="infer", nonexistent="raise")
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{origin}: the timestamps in column {name!r} cannot be read as {zone} local time "
            f"({exc}): a time is missing or repeated at a daylight-saving change. Store the "
            f"timestamps in UTC or with an offset, and set timezone = 'UTC'"
        ) from None
    return local.tz_convert("UTC")


# --- bar values -------------------------------------------------------------------------------


def _numbers(column: pd.Series) -> np.ndarray:
    """A column as float64; cells that are not numbers become NaN (the checks report them)."""
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _field_columns(
    table: pd.DataFrame, params: TableParams, origin: str, exclude: set[str]
) -> dict[str, str]:
    """Which column holds each bar field."""
    by_name: dict[str, list[str]] = {}
    for column in table.columns:
        if column not in exclude:
            by_name.setdefault(_norm(column), []).append(column)
    found: dict[str, str] = {}
    for field, names in FIELD_NAMES.items():
        if field in params.columns:
            found[field] = _named_column(table, params.columns[field], f"columns.{field}", origin)
            continue
        matches = [c for n in names for c in by_name.get(n, [])]
        if len(matches) > 1:
            raise DataError(
                f"{origin}: several columns could be {field} ({', '.join(map(str, matches))}); "
                f"name the right one with columns = {{{field} = '...'}}"
            )
        if matches:
            found[field] = matches[0]
    _require_prices(found, params, table, origin)
    return found


def _require_prices(
    found: dict[str, str], params: TableParams, table: pd.DataFrame, origin: str
) -> None:
    partial = [f for f in ("open", "high", "low") if f not in found]
    if "close" not in found or len(partial) not in (0, 3):
        missing = (["close"] if "close" not in found else []) + (partial if found else [])
        raise DataError(
            f"{origin}: no column for {', '.join(missing) or 'close'} (columns: "
            f"{_column_list(table)}); map it with columns = {{close = '...'}} or fix the header"
        )
    if params.adjusted and "adj_close" not in found:
        raise DataError(
            f"{origin}: adjusted = true needs an adjusted close column such as 'Adj Close' "
            f"(columns: {_column_list(table)}); map it with columns = {{adj_close = '...'}}"
        )


def _bar_frame(
    table: pd.DataFrame,
    index: pd.DatetimeIndex,
    params: TableParams,
    origin: str,
    exclude: set[str],
) -> pd.DataFrame:
    """The table's bar fields as float64 columns indexed by time."""
    found = _field_columns(table, params, origin, exclude)
    close = _numbers(table[found["close"]])
    data = {}
    for field in ("open", "high", "low"):
        data[field] = _numbers(table[found[field]]) if field in found else close
    data["close"] = close
    data["volume"] = _numbers(table[found["volume"]]) if "volume" in found else np.zeros(len(table))
    if "adj_close" in found:
        data["adj_close"] = _numbers(table[found["adj_close"]])
    return pd.DataFrame(data, index=index)


def _split_long(
    bars: pd.DataFrame, symbols: pd.Series, on_bad_rows: OnBadRows, origin: str
) -> tuple[dict[str, pd.DataFrame], QualityReport]:
    """One frame per symbol of a long table; rows without a symbol are bad rows."""
    symbols = symbols.astype("string").str.strip()
    unnamed = (symbols.isna() | (symbols == "")).to_numpy(dtype=bool, na_value=True)
    report = QualityReport()
    if unnamed.any():
        rows = np.flatnonzero(unnamed)[:5] + 1
        line = (
            f"{origin}: {int(unnamed.sum())} row(s) without a symbol "
            f"(table rows {', '.join(map(str, rows))})"
        )
        if on_bad_rows == "error":
            raise DataError(
                f'{line}. Fill in the symbols, or set on_bad_rows = "drop" to drop these rows'
            )
        report.problems.append(line)
        report.dropped_rows += int(unnamed.sum())
        bars, symbols = bars[~unnamed], symbols[~unnamed]
    positions = symbols.groupby(symbols, sort=True).indices
    return {str(s): bars.iloc[rows] for s, rows in positions.items()}, report


def _wide_frames(
    prices: pd.DataFrame, index: pd.DatetimeIndex, origin: str
) -> dict[str, pd.DataFrame]:
    """One close-only frame per column; an empty cell means no bar at that time."""
    frames = {}
    for column in sorted(prices.columns, key=str):
        present = prices[column].notna().to_numpy()
        close = _numbers(prices[column])[present]
        bars = pd.DataFrame(
            {"open": close, "high": close, "low": close, "close": close, "volume": 0.0},
            index=index[present],
        )
        frames[str(column).strip()] = bars
    if not frames:
        raise DataError(f"{origin}: layout 'wide' but the table has no symbol columns")
    return frames


# --- selection, adjustment, validation ---------------------------------------------------------


def select_symbols(
    frames: Mapping[str, pd.DataFrame], wanted: list[str] | None, origin: str
) -> dict[str, pd.DataFrame]:
    """The requested symbols (all when ``wanted`` is None); unknown ones are a DataError."""
    if wanted is None:
        return dict(frames)
    missing = [s for s in wanted if s not in frames]
    if missing:
        available = sorted(frames)
        listed = ", ".join(available[:MAX_LISTED])
        if len(available) > MAX_LISTED:
            listed += f", ... ({len(available)} in total)"
        raise DataError(
            f"{origin}: symbol(s) {', '.join(missing)} not in the data; available: {listed}. "
            f"Fix symbols in the data source params"
        )
    return {s: frames[s] for s in sorted(set(wanted))}


def apply_adjustment(frames: Mapping[str, pd.DataFrame], origin: str) -> dict[str, pd.DataFrame]:
    """Open, high, low and close times ``adj_close / close``; volume unchanged.

    A row whose factor cannot be computed gets NaN prices, which the quality checks report.
    """
    adjusted = {}
    for symbol, frame in frames.items():
        if "adj_close" not in frame.columns:
            raise DataError(f"{origin}: {symbol} has no adjusted close; set adjusted = false")
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = frame["adj_close"].to_numpy() / frame["close"].to_numpy()
        scaled = frame.copy()
        for column in ("open", "high", "low", "close"):
            scaled[column] = frame[column].to_numpy() * factor
        adjusted[symbol] = scaled
    return adjusted


def to_utc(value: pd.Timestamp | str | None) -> pd.Timestamp | None:
    """A load bound as a UTC timestamp; naive values are taken as UTC."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def build_market_data(
    frames: Mapping[str, pd.DataFrame],
    on_bad_rows: OnBadRows,
    start: pd.Timestamp | str | None,
    end: pd.Timestamp | str | None,
    origin: str,
    report: QualityReport | None = None,
    actions: list[CorporateAction] | None = None,
) -> MarketData:
    """Slice each frame to ``start <= ts <= end``, validate it and collect the quality report;
    ``actions`` (corporate actions) are kept for the symbols that have bars.

    Rows without a timestamp are kept for the checks to report. A symbol with no bars in the
    range is left out; no bars at all is a :class:`DataError` saying what the data covers.
    ``report`` holds what earlier steps found; the checks' findings are added to a copy.
    """
    lo, hi = to_utc(start), to_utc(end)
    report = QualityReport(report.dropped_rows, list(report.problems)) if report else None
    report = report or QualityReport()
    clean = dict(validate_frames(frames, on_bad_rows, lo, hi, origin, report))
    if not clean:
        raise DataError(
            f"{origin}: no bars {_range_text(lo, hi)}; {_coverage(frames)}", field="run.start"
        )
    kept = [a for a in actions or () if a.symbol in clean]
    return MarketData(clean, report, _description(origin, clean, report), kept)


def validate_frames(
    frames: Mapping[str, pd.DataFrame],
    on_bad_rows: OnBadRows,
    lo: pd.Timestamp | None,
    hi: pd.Timestamp | None,
    where: str,
    report: QualityReport,
) -> Iterator[tuple[str, pd.DataFrame]]:
    """Each symbol's bars with ``lo <= ts <= hi``, validated (symbols in sorted order, empty
    ones left out); findings are added to ``report``, errors name ``where``."""
    for symbol in sorted(frames):
        part = _in_range(frames[symbol], lo, hi)
        try:
            bars, dropped, lines = validate_bars(part, symbol, on_bad_rows)
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
        report.dropped_rows += dropped
        report.problems.extend(lines)
        if len(bars):
            yield symbol, bars


def _in_range(
    frame: pd.DataFrame, lo: pd.Timestamp | None, hi: pd.Timestamp | None
) -> pd.DataFrame:
    if lo is None and hi is None:
        return frame
    index = frame.index
    keep = np.ones(len(frame), dtype=bool)
    if lo is not None:
        keep &= np.asarray(index >= lo)
    if hi is not None:
        keep &= np.asarray(index <= hi)
    return frame[keep | np.asarray(index.isna())]


def _range_text(lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> str:
    if lo is None and hi is None:
        return "at all"
    return f"between {lo or 'the start'} and {hi or 'the end'}"


def _coverage(frames: Mapping[str, pd.DataFrame]) -> str:
    stamps = [f.index.dropna() for f in frames.values() if len(f.index.dropna())]
    if not stamps:
        return "the data holds no bars; check the file and the symbols"
    first = min(s.min() for s in stamps)
    last = max(s.max() for s in stamps)
    return f"the data covers {first} to {last}; adjust start and end"


def _description(origin: str, frames: Mapping[str, pd.DataFrame], report: QualityReport) -> str:
    symbols = sorted(frames)
    names = ", ".join(symbols[:10]) + (", ..." if len(symbols) > 10 else "")
    bars = sum(len(f) for f in frames.values())
    first = min(f.index[0] for f in frames.values())
    last = max(f.index[-1] for f in frames.values())
    text = (
        f"{origin}: {len(symbols)} symbol(s) ({names}), {bars} bars from "
        f"{first.isoformat()} to {last.isoformat()}"
    )
    if report.dropped_rows:
        text += f"; {report.dropped_rows} bad row(s) dropped"
    return text

"""The contract between a strategy and the vector engine: :class:`SignalData` in,
:class:`Signals` out.

A strategy that can be simulated by the vector engine implements one extra method::

    def signals(self, data: SignalData) -> Signals | None: ...

``data`` holds every bar of the run at once on the merged timeline of all symbols. The method
returns four boolean arrays of shape ``(n, n_symbols)`` and the sizing rule; the vector engine
then applies them with state, bar by bar, exactly as the strategy's ``on_bar`` would through the
:class:`~tradeloom.strategy.Context` (see :class:`Signals` for the rule). Returning ``None``
declines: the engines fall back to the event engine (or, in a parity check, report that the
strategy cannot be compared).

This module needs only numpy: importing it never imports numba.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from tradeloom.errors import ConfigError

if TYPE_CHECKING:
    from tradeloom.data import MarketData

__all__ = ["FIELDS", "SignalData", "SignalStrategy", "Signals", "Sizing", "signal_data"]

FIELDS = ("open", "high", "low", "close", "volume")
"""The bar fields of :class:`SignalData`, in column order of the bar frames."""


@dataclass(frozen=True, eq=False)
class SignalData:
    """Every bar of a run on the merged timeline of its symbols.

    ``ts`` are the distinct bar timestamps of all symbols (int64 nanoseconds since the epoch,
    UTC, increasing); ``open`` … ``volume`` are float64 arrays of shape ``(n, n_symbols)`` with
    column ``j`` for ``symbols[j]`` (sorted) and NaN where that symbol has no bar at that
    timestamp. The arrays are read-only.

    Indicators must be computed on each symbol's **own** bars, as the event engine's
    ``ctx.history`` gives them, skipping the NaN gaps: use :meth:`own` for a symbol's compacted
    series and :meth:`rows` for where its bars sit on the timeline.
    """

    ts: np.ndarray
    symbols: list[str]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    _rows: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        """Number of timestamps."""
        return len(self.ts)

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, n_symbols)``: the shape of every field and of every signal array."""
        return (len(self.ts), len(self.symbols))

    def column(self, symbol: str | int) -> int:
        """The column of ``symbol`` (a name or an index)."""
        if isinstance(symbol, int | np.integer):
            if not 0 <= symbol < len(self.symbols):
                raise IndexError(f"symbol index {symbol} out of range 0..{len(self.symbols) - 1}")
            return int(symbol)
        try:
            return self.symbols.index(symbol)
        except ValueError:
            raise KeyError(
                f"unknown symbol {symbol!r}; this data has {', '.join(self.symbols)}"
            ) from None

    def rows(self, symbol: str | int) -> np.ndarray:
        """Timeline rows (int64, increasing) at which ``symbol`` has a bar."""
        j = self.column(symbol)
        rows = self._rows.get(j)
        if rows is None:
            col = self.close[:, j]
            rows = np.flatnonzero(~np.isnan(col)) if np.isnan(col).any() else np.arange(len(col))
            rows.flags.writeable = False
            self._rows[j] = rows
        return rows

    def own(self, symbol: str | int, field: str = "close") -> np.ndarray:
        """``field`` of ``symbol`` over its own bars only (no NaN), oldest first: index ``i``
        is the symbol's ``i``-th bar, as ``ctx.bar_count`` counts them. A read-only view when
        the symbol has a bar at every timestamp, else a copy."""
        if field not in FIELDS:
            raise KeyError(f"unknown field {field!r}; use one of {', '.join(FIELDS)}")
        j = self.column(symbol)
        values = getattr(self, field)[:, j]
        rows = self.rows(j)
        if len(rows) == len(values):
            return values
        out = values[rows]
        out.flags.writeable = False
        return out

    def expand(self, symbol: str | int, values: np.ndarray) -> np.ndarray:
        """A boolean array over the timeline from per-own-bar booleans of ``symbol`` (the
        inverse of :meth:`own`): ``values[i]`` lands on the row of the symbol's ``i``-th bar,
        every other row is False."""
        rows = self.rows(symbol)
        values = np.asarray(values, dtype=bool)
        if values.shape != rows.shape:
            raise ValueError(
                f"expand(): expected {len(rows)} values (one per bar of {symbol!r}), "
                f"got shape {values.shape}"
            )
        out = np.zeros(len(self.ts), dtype=bool)
        out[rows] = values
        return out


def signal_data(market: MarketData) -> SignalData:
    """The :class:`SignalData` of validated bars (symbols sorted, timeline merged)."""
    symbols = market.symbols
    if not symbols:
        raise ConfigError("no bars: the market data is empty")
    frames = [market.frames[s] for s in symbols]
    if len(frames) == 1:
        frame = frames[0]
        ts = np.ascontiguousarray(frame.index.as_unit("ns").asi8, dtype=np.int64)
        arrays = {
            name: np.ascontiguousarray(frame[name].to_numpy(np.float64)).reshape(-1, 1)
            for name in FIELDS
        }
    else:
        own_ts = [f.index.as_unit("ns").asi8 for f in frames]
        ts = np.unique(np.concatenate(own_ts)).astype(np.int64, copy=False)
        arrays = {name: np.full((len(ts), len(frames)), np.nan) for name in FIELDS}
        for j, (frame, stamps) in enumerate(zip(frames, own_ts, strict=True)):
            at = np.searchsorted(ts, stamps)
            for name in FIELDS:
                arrays[name][at, j] = frame[name].to_numpy(np.float64)
    # Read-only views: the frames' own arrays stay writable.
    ts = ts.view()
    ts.flags.writeable = False
    for name, array in arrays.items():
        arrays[name] = view = array.view()
        view.flags.writeable = False
    return SignalData(ts=ts, symbols=list(symbols), **arrays)


@dataclass(frozen=True)
class Sizing:
    """How large a new position is: exactly one of ``quantity`` and ``fraction``.

    The vector engine computes it at the signal bar from the simulated account, exactly as
    ``tradeloom_strategies.sizing.position_size`` does from the ``Context``:

    * ``quantity``: that many units;
    * ``fraction``: ``fraction × equity / n_symbols / close`` (equity = cash + positions at the
      latest closes); for a long also at most ``fraction × free / close`` where ``free`` is the
      cash left after the strategy's working buy orders and the buy-back of every short (at the
      latest closes), floored at 0; then rounded down to whole units (with 1e-9 slack).
    """

    quantity: float | None = None
    fraction: float | None = None

    def __post_init__(self) -> None:
        if (self.quantity is None) == (self.fraction is None):
            raise ConfigError(
                f"Sizing needs exactly one of quantity and fraction, got quantity="
                f"{self.quantity!r}, fraction={self.fraction!r}"
            )
        if self.quantity is not None and not (self.quantity > 0 and math.isfinite(self.quantity)):
            raise ConfigError(f"Sizing.quantity must be a positive number, got {self.quantity!r}")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise ConfigError(f"Sizing.fraction must be in (0, 1], got {self.fraction!r}")


@dataclass(frozen=True, eq=False)
class Signals:
    """What a strategy wants, bar by bar, and how the vector engine turns it into orders.

    Four boolean arrays of shape ``(n, n_symbols)`` on the :class:`SignalData` timeline (a
    signal on a row where the symbol has no bar is ignored). At each bar of each symbol, with
    the position held at that moment (flat means ``|position| <= 1e-9``) and ``size`` from
    :attr:`sizing`, the engine sends at most one market order, for ``target − position``:

    ========  ==========================================================  ================
    state     first matching rule                                          target
    ========  ==========================================================  ================
    flat      ``long_entry``                                               ``+size``
    flat      ``short_entry`` (``long_short`` only)                        ``−size``
    long      ``short_entry`` (``long_short`` only): a flip, one order     ``−size``
    long      ``long_entry`` (``retarget`` only)                           ``+size``
    long      ``long_exit``                                                ``0``
    short     ``long_entry``: a flip, one order                            ``+size``
    short     ``short_entry`` (``retarget`` only)                          ``−size``
    short     ``short_exit``                                               ``0``
    ========  ==========================================================  ================

    No order is sent when the target equals the position (e.g. a size of 0 while flat); a flip
    whose new size is 0 just closes the position. ``retarget`` reproduces strategies that call
    ``ctx.order_target(symbol, ±size)`` on every signal, so that an entry signal in the
    direction already held resizes the position. With market orders filling at the next open,
    a symbol never has a working order when its next bar is evaluated, so "flat" also means
    "no working order".
    """

    long_entry: np.ndarray
    long_exit: np.ndarray
    short_entry: np.ndarray
    short_exit: np.ndarray
    sizing: Sizing
    long_short: bool = False
    """Whether ``short_entry`` may open or flip into a short (else it is ignored)."""
    retarget: bool = False
    """Whether an entry signal in the held direction re-targets the position to ``±size``."""

    @classmethod
    def empty(
        cls,
        data: SignalData,
        sizing: Sizing,
        *,
        long_short: bool = False,
        retarget: bool = False,
    ) -> Signals:
        """All-False signal arrays of the shape of ``data``, to be filled in."""
        shape = data.shape
        return cls(
            long_entry=np.zeros(shape, dtype=bool),
            long_exit=np.zeros(shape, dtype=bool),
            short_entry=np.zeros(shape, dtype=bool),
            short_exit=np.zeros(shape, dtype=bool),
            sizing=sizing,
            long_short=long_short,
            retarget=retarget,
        )

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(long_entry, long_exit, short_entry, short_exit)``."""
        return (self.long_entry, self.long_exit, self.short_entry, self.short_exit)

    def checked(self, shape: tuple[int, int], who: str) -> tuple[np.ndarray, ...]:
        """The four arrays as C-contiguous booleans of ``shape``; :class:`ConfigError` naming
        ``who`` (the strategy) when they do not fit."""
        if not isinstance(self.sizing, Sizing):
            raise ConfigError(f"{who}: Signals.sizing must be a Sizing, got {self.sizing!r}")
        out = []
        names = ("long_entry", "long_exit", "short_entry", "short_exit")
        for name, array in zip(names, self.arrays(), strict=True):
            array = np.asarray(array)
            if array.shape != shape:
                raise ConfigError(
                    f"{who}: signals().{name} has shape {array.shape}, expected {shape} "
                    "(timestamps × symbols of the SignalData)"
                )
            if array.dtype != np.bool_:
                raise ConfigError(f"{who}: signals().{name} must be boolean, got {array.dtype}")
            out.append(np.ascontiguousarray(array))
        return tuple(out)


@runtime_checkable
class SignalStrategy(Protocol):
    """A strategy the vector engine can run: it has a ``signals`` method."""

    def signals(self, data: SignalData) -> Signals | None:
        """The strategy's signals over ``data``, or ``None`` to decline."""
        ...

"""Currency conversion for instruments quoted in another currency than the account's.

Pairs are named ``BASEQUOTE`` (six letters): ``EURUSD`` is the price of 1 EUR in USD. A USD
account converts EUR amounts with ``EURUSD`` directly, or with ``1 / USDEUR`` when only the
inverse pair is supplied. Cross rates through a third currency (EUR in GBP from ``EURUSD`` and
``GBPUSD``) are not derived: supply the pair against the account currency.

No look-ahead: the rate at time ``ts`` is the latest value stamped at or before ``ts``. A value
stamped ``ts`` is the close of the FX bar stamped ``ts``, which the engine treats as known when
it plays that bar, the same convention as every other price in a run. Times are integer
nanoseconds since the epoch, UTC (as :attr:`Bar.ts <tradeloom.model.Bar.ts>`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tradeloom.errors import DataError

if TYPE_CHECKING:
    from tradeloom.data.base import MarketData

__all__ = ["FxRates"]

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_PAIR = re.compile(r"^[A-Z]{6}$")


class FxRates:
    """Rates to convert amounts in other currencies into ``account_currency``.

    ``series`` maps pair names (``"EURUSD"``) to rates indexed by a timezone-aware
    :class:`pandas.DatetimeIndex` (converted to UTC), sorted and unique, with finite positive
    values; anything else is a :class:`~tradeloom.errors.DataError` naming the pair.
    """

    def __init__(self, account_currency: str, series: Mapping[str, pd.Series]) -> None:
        if not _CURRENCY.match(account_currency):
            raise DataError(
                f"account currency {account_currency!r} is not a three-letter upper-case code "
                "such as 'USD'"
            )
        self.account_currency = account_currency
        self._times: dict[str, np.ndarray] = {}
        self._values: dict[str, np.ndarray] = {}
        for pair, values in series.items():
            self._times[pair], self._values[pair] = _validated(pair, values)

    @classmethod
    def from_market(
        cls, account_currency: str, market: MarketData, pairs: Sequence[str]
    ) -> FxRates:
        """Rates from the close prices of the FX symbols ``pairs`` of ``market``."""
        missing = [pair for pair in pairs if pair not in market.frames]
        if missing:
            raise DataError(
                f"FX pair(s) {', '.join(missing)} not in the market data, which holds "
                f"{', '.join(market.symbols) or 'no symbols'}; add their bars to the data "
                "source (named BASEQUOTE, e.g. EURUSD = USD per 1 EUR)"
            )
        return cls(account_currency, {pair: market.close(pair) for pair in pairs})

    @property
    def pairs(self) -> list[str]:
        """The pairs held, sorted."""
        return sorted(self._times)

    def rate(self, currency: str, ts: int) -> float:
        """Units of the account currency per 1 unit of ``currency`` at ``ts`` (ns, UTC): the
        latest rate at or before ``ts``; 1.0 for the account currency."""
        if currency == self.account_currency:
            return 1.0
        pair, inverse = self._pair(currency)
        times = self._times[pair]
        i = int(np.searchsorted(times, ts, side="right")) - 1
        if i < 0:
            raise self._too_early(pair, int(ts))
        value = float(self._values[pair][i])
        return 1.0 / value if inverse else value

    def rates(self, currency: str, ts: np.ndarray | pd.DatetimeIndex) -> np.ndarray:
        """:meth:`rate` for each of ``ts`` (int64 ns, ``datetime64`` or a
        :class:`pandas.DatetimeIndex`), as a float64 array: for rebuilding an equity curve."""
        stamps = _as_ns(ts)
        if currency == self.account_currency:
            return np.ones(stamps.shape, dtype=np.float64)
        pair, inverse = self._pair(currency)
        index = np.searchsorted(self._times[pair], stamps, side="right") - 1
        if stamps.size and index.min() < 0:
            raise self._too_early(pair, int(stamps[np.argmin(index)]))
        values = self._values[pair][index]
        return 1.0 / values if inverse else values.copy()

    def convert(self, amount: float, currency: str, ts: int) -> float:
        """``amount`` of ``currency`` in the account currency at ``ts``."""
        return amount * self.rate(currency, ts)

    # --- internals ------------------------------------------------------------------------------
    def _pair(self, currency: str) -> tuple[str, bool]:
        """The pair that prices ``currency`` in the account currency, and whether it is the
        inverse pair."""
        account = self.account_currency
        direct = f"{currency}{account}"
        if direct in self._times:
            return direct, False
        inverse = f"{account}{currency}"
        if inverse in self._times:
            return inverse, True
        held = ", ".join(self.pairs) or "none"
        raise DataError(
            f"no FX rate for {currency} in {account}: looked for the pair {direct} "
            f"({account} per 1 {currency}) or its inverse {inverse}; pairs held: {held}. Add "
            f"{direct} bars to the data and build the rates with "
            f"FxRates.from_market({account!r}, market, pairs=[{direct!r}]), or pass its close "
            "series to FxRates"
        )

    def _too_early(self, pair: str, ts: int) -> DataError:
        first = pd.Timestamp(int(self._times[pair][0]), tz="UTC").isoformat()
        when = pd.Timestamp(ts, tz="UTC").isoformat()
        return DataError(
            f"no {pair} rate at or before {when}: the series starts at {first}; supply "
            f"{pair} rates from before the first converted time, or start the run later"
        )


def _validated(pair: str, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    if not _PAIR.match(pair):
        raise DataError(
            f"FX pair name {pair!r} is not BASEQUOTE (six upper-case letters, e.g. 'EURUSD' "
            "for USD per 1 EUR)"
        )
    index = values.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise DataError(
            f"FX series {pair} must be indexed by timezone-aware times (a DatetimeIndex in "
            "UTC), as MarketData frames are"
        )
    if len(values) == 0:
        raise DataError(f"FX series {pair} is empty")
    times = index.tz_convert("UTC").as_unit("ns").asi8
    if not (np.diff(times) > 0).all():
        raise DataError(f"FX series {pair} must be sorted by time without duplicate times")
    rates = values.to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(rates) & (rates > 0))
    if bad.any():
        at = pd.Timestamp(int(times[np.argmax(bad)]), tz="UTC").isoformat()
        raise DataError(
            f"FX series {pair} has {int(bad.sum())} missing, infinite or non-positive rate(s), "
            f"the first at {at}"
        )
    return times.copy(), rates.copy()


def _as_ns(ts: np.ndarray | pd.DatetimeIndex) -> np.ndarray:
    if isinstance(ts, pd.DatetimeIndex):
        if ts.tz is None:
            raise DataError("times to convert at must be timezone-aware (UTC)")
        return ts.tz_convert("UTC").as_unit("ns").asi8
    stamps = np.asarray(ts)
    if np.issubdtype(stamps.dtype, np.datetime64):
        return stamps.astype("datetime64[ns]").view(np.int64)
    return stamps.astype(np.int64, copy=False)

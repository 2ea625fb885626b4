"""Position-sizing helpers: pure functions of plain numbers and price/return history.

Strategies reach these through their Context (``ctx.size_...``); every function here takes
only numbers and the history *up to now* (arrays whose last element is the latest bar), so
nothing can look ahead. No function keeps state or reads a clock.

Conventions
-----------
* **Units.** The sizers (:func:`fixed_fractional`, :func:`volatility_target`,
  :func:`atr_target`) return an *unsigned* number of units (``>= 0``); the caller chooses the
  side. :func:`cap` and :func:`round_to_lot` take and return *signed* quantities (a short is
  negative) and keep the sign.
* **Lots.** Every result is a whole multiple of ``lot`` (``lot > 0``, default 1 unit), rounded
  *toward zero* so a size never grows past what was asked (``-2.7 → -2``, ``2.7 → 2``).
* **Nothing to trade.** ``equity <= 0``, a zero stop distance, a zero ATR or a zero
  volatility give 0 units rather than an error or an infinite size.
* **Errors.** Out-of-range inputs raise :class:`ValueError` whose message starts with the name
  of the offending argument (``"risk_fraction must be in (0, 1], got 1.5"``); values that are
  not real numbers raise :class:`TypeError`, also naming the argument.

Formulas
--------
Lot rounding (:func:`round_to_lot`)::

    n     = floor(|q| ÷ lot)            (computed in decimal, see below)
    q_lot = sign(q) × n × lot

Fixed fractional (:func:`fixed_fractional`), risking ``risk_fraction`` of equity between the
entry and the stop::

    units = equity × risk_fraction ÷ |entry − stop|

so that the loss at the stop, ``units × |entry − stop|``, is at most ``equity × risk_fraction``.

Average true range (:func:`atr`), J. Welles Wilder (1978)::

    TR_t   = max(H_t − L_t, |H_t − C_{t−1}|, |L_t − C_{t−1}|)         for t = 1 … N−1
    ATR_w  = (TR_1 + … + TR_w) ÷ w                                  (seed: simple mean)
    ATR_t  = (ATR_{t−1} × (w − 1) + TR_t) ÷ w                        for t = w+1 … N−1

i.e. Wilder's running moving average (RMA, an EMA with ``α = 1/w``) seeded with the simple
mean of the first ``w`` true ranges. Bar 0 has no previous close, so it yields no true range:
``w + 1`` bars are the minimum history. The value returned is ``ATR_{N−1}`` (the latest bar).
The whole history feeds the recursion, so the result depends (with geometrically fading weight
``((w−1)/w)^k``) on bars older than the last ``w``; pass the same window of history every time
for reproducible values.

Volatility targeting (:func:`volatility_target`)::

    σ       = sqrt( Σ (r_i − r̄)² ÷ (n − 1) )        (sample std, ddof = 1, n >= 2 returns)
    σ_annual = σ × sqrt(periods_per_year)
    units   = equity × target_vol ÷ (price × σ_annual)

so the position's notional ``units × price`` has annualised volatility ``≈ target_vol × equity``
(``target_vol`` as a fraction of equity, e.g. 0.10 for 10 %).

ATR target (:func:`atr_target`), the fixed-fractional rule with the stop ``atr_multiple`` ATRs
from the entry::

    units = equity × risk_fraction ÷ (atr_multiple × ATR)

Caps (:func:`cap`)::

    |q| = min(|units|, max_quantity, max_notional ÷ price)          (absent limits ignored)
    q   = sign(units) × |q|, rounded toward zero to the lot

Exact decimal lots
------------------
Binary floats cannot hold 0.1 or 0.001 exactly, so the naive ``math.floor(q / lot) * lot``
misrounds: ``0.3 / 0.1 == 2.9999999999999996`` floors to 2 lots, giving 0.2 instead of 0.3,
and ``2 * 0.1 + 0.1`` is not a clean ``0.3`` either. :func:`round_to_lot` instead converts
both numbers through their shortest round-trip ``repr`` into :class:`decimal.Decimal`
(``0.3 → Decimal("0.3")``, ``0.1 → Decimal("0.1")``), divides and floors in decimal
arithmetic (50 significant digits), multiplies the whole count back by the decimal lot and
converts the product to the nearest float once. So ``round_to_lot(0.3, 0.1) == 0.3`` and
``round_to_lot(1.2345, 0.001) == 1.234`` exactly, and the float returned prints as the decimal
multiple it stands for whenever that multiple has at most 15 significant digits.

A size computed upstream in floats can land a hair under a lot boundary
(``100 × 0.29 == 28.999999999999996``). To stop such artefacts costing a whole lot, a count
within a relative ``1e-9`` of the next whole number of lots (``n_up − |q|/lot <= 1e-9 × n_up``)
is snapped up to it. That is the only place a result can exceed the exact formula, and by at
most one part in a billion.
"""

from __future__ import annotations

import decimal
import math
from numbers import Real

import numpy as np

__all__ = [
    "atr",
    "atr_target",
    "cap",
    "fixed_fractional",
    "round_to_lot",
    "volatility_target",
]

LOT_SNAP_RELATIVE = 1e-9
"""A count of lots within this relative distance below a whole number is snapped up to it."""

_DECIMAL_CONTEXT = decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN)
_SNAP = decimal.Decimal(repr(LOT_SNAP_RELATIVE))


# -- validation ----------------------------------------------------------------------------


def _number(name: str, value: object) -> float:
    """``value`` as a float, or TypeError naming ``name`` if it is not a real number."""
    if isinstance(value, bool) or not isinstance(value, (Real, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _finite(name: str, value: object) -> float:
    number = _number(name, value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def _positive(name: str, value: object) -> float:
    number = _finite(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return number


def _non_negative(name: str, value: object) -> float:
    number = _finite(name, value)
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number


def _fraction(name: str, value: object) -> float:
    number = _finite(name, value)
    if not 0 < number <= 1:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return number


def _history(name: str, values: object, *, length: int | None = None) -> np.ndarray:
    """A finite 1-D float array, optionally of a given length."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a 1-D array of numbers: {exc}") from exc
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if length is not None and array.size != length:
        raise ValueError(f"{name} must have the same length as high ({length}), got {array.size}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (no NaN or inf), got non-finite values")
    return array


# -- lots ------------------------------------------------------------------------------------


def round_to_lot(quantity: float, lot: float = 1.0) -> float:
    """``quantity`` rounded toward zero to a whole multiple of ``lot`` (sign kept).

    Exact for decimal lots: ``round_to_lot(0.3, 0.1) == 0.3`` and
    ``round_to_lot(1.2345, 0.001) == 1.234``; the rounding is done in decimal arithmetic on
    the shortest ``repr`` of each float (see the module docstring), and a count of lots within
    a relative 1e-9 below a whole number is snapped up to it. Returns ``0.0`` (never ``-0.0``)
    when less than one lot.
    """
    q = _finite("quantity", quantity)
    step = _positive("lot", lot)
    if q == 0:
        return 0.0
    ctx = _DECIMAL_CONTEXT
    lot_dec = decimal.Decimal(repr(step))
    count = ctx.divide(decimal.Decimal(repr(abs(q))), lot_dec)
    whole = count.to_integral_value(rounding=decimal.ROUND_FLOOR, context=ctx)
    if whole != count:
        up = ctx.add(whole, 1)
        if ctx.subtract(up, count) <= ctx.multiply(up, _SNAP):
            whole = up
    if whole == 0:
        return 0.0
    magnitude = float(ctx.multiply(whole, lot_dec))
    return magnitude if q > 0 else -magnitude


# -- sizers ----------------------------------------------------------------------------------


def _risk_units(equity: float, risk_fraction: float, distance: float, lot: float) -> float:
    """``equity × risk_fraction ÷ distance`` rounded down to the lot; 0 if nothing to trade."""
    if equity <= 0 or distance == 0:
        return 0.0
    return round_to_lot(equity * risk_fraction / distance, lot)


def fixed_fractional(
    equity: float, risk_fraction: float, entry: float, stop: float, *, lot: float = 1.0
) -> float:
    """Units such that being stopped out loses at most ``risk_fraction`` of ``equity``.

    ``units = equity × risk_fraction ÷ |entry − stop|``, rounded down to the lot. Unsigned:
    a stop below the entry sizes a long, above it a short. 0 when ``entry == stop`` or
    ``equity <= 0``.

    Raises:
        ValueError: ``risk_fraction`` outside (0, 1]; non-finite ``equity``, ``entry`` or
            ``stop``; ``lot <= 0``.
    """
    equity_ = _finite("equity", equity)
    risk = _fraction("risk_fraction", risk_fraction)
    entry_ = _finite("entry", entry)
    stop_ = _finite("stop", stop)
    step = _positive("lot", lot)
    return _risk_units(equity_, risk, abs(entry_ - stop_), step)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int = 14) -> float:
    """Wilder's average true range at the latest bar.

    ``TR_t = max(H_t − L_t, |H_t − C_{t−1}|, |L_t − C_{t−1}|)`` for every bar after the first;
    the first ``window`` true ranges are averaged to seed Wilder's RMA,
    ``ATR_t = (ATR_{t−1} × (window − 1) + TR_t) ÷ window``, run to the last bar.

    Raises:
        ValueError: fewer than ``window + 1`` bars; ``window < 1``; arrays of different
            lengths, not 1-D or not finite; a bar with ``high < low``.
        TypeError: ``window`` not an integer.
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
        raise TypeError(f"window must be an integer, got {window!r}")
    w = int(window)
    if w < 1:
        raise ValueError(f"window must be >= 1, got {window!r}")
    h = _history("high", high)
    lo = _history("low", low, length=h.size)
    c = _history("close", close, length=h.size)
    if h.size < w + 1:
        raise ValueError(
            f"high/low/close need at least window + 1 = {w + 1} bars for an ATR over {w} "
            f"true ranges (the first bar has no previous close), got {h.size}"
        )
    if np.any(h < lo):
        first = int(np.argmax(h < lo))
        raise ValueError(
            f"high must be >= low, got high {h[first]} < low {lo[first]} at bar {first}"
        )
    prev_close = c[:-1]
    true_range = np.maximum.reduce(
        [h[1:] - lo[1:], np.abs(h[1:] - prev_close), np.abs(lo[1:] - prev_close)]
    )
    value = float(np.mean(true_range[:w]))
    for tr in true_range[w:]:
        value = (value * (w - 1) + float(tr)) / w
    return value


def volatility_target(
    equity: float,
    target_vol: float,
    price: float,
    returns: np.ndarray,
    *,
    periods_per_year: float = 252,
    lot: float = 1.0,
) -> float:
    """Units whose annualised volatility is about ``target_vol`` of ``equity``.

    ``units = equity × target_vol ÷ (price × σ_annual)`` with
    ``σ_annual = std(returns, ddof=1) × √periods_per_year``, rounded down to the lot.
    ``returns`` are simple per-period returns of the instrument up to now (oldest first).
    0 when ``σ == 0`` or ``equity <= 0``.

    Raises:
        ValueError: fewer than 2 returns or non-finite ones; ``target_vol``, ``price`` or
            ``periods_per_year`` not finite and > 0; non-finite ``equity``; ``lot <= 0``.
    """
    equity_ = _finite("equity", equity)
    target = _positive("target_vol", target_vol)
    price_ = _positive("price", price)
    periods = _positive("periods_per_year", periods_per_year)
    step = _positive("lot", lot)
    r = _history("returns", returns)
    if r.size < 2:
        raise ValueError(
            f"returns needs at least 2 observations for a sample std (ddof=1), got {r.size}"
        )
    sigma = float(np.std(r, ddof=1))
    if equity_ <= 0 or sigma == 0:
        return 0.0
    sigma_annual = sigma * math.sqrt(periods)
    return round_to_lot(equity_ * target / (price_ * sigma_annual), step)


def atr_target(
    equity: float,
    risk_fraction: float,
    atr_value: float,
    atr_multiple: float = 2.0,
    *,
    lot: float = 1.0,
) -> float:
    """Fixed-fractional units with the stop ``atr_multiple`` ATRs from the entry.

    ``units = equity × risk_fraction ÷ (atr_multiple × atr_value)``, rounded down to the lot.
    0 when ``atr_value == 0`` or ``equity <= 0``.

    Raises:
        ValueError: ``risk_fraction`` outside (0, 1]; ``atr_value < 0`` or non-finite;
            ``atr_multiple`` not finite and > 0; non-finite ``equity``; ``lot <= 0``.
    """
    equity_ = _finite("equity", equity)
    risk = _fraction("risk_fraction", risk_fraction)
    atr_ = _non_negative("atr_value", atr_value)
    multiple = _positive("atr_multiple", atr_multiple)
    step = _positive("lot", lot)
    return _risk_units(equity_, risk, multiple * atr_, step)


def cap(
    units: float,
    price: float,
    *,
    max_quantity: float | None = None,
    max_notional: float | None = None,
    lot: float = 1.0,
) -> float:
    """``units`` limited to ``max_quantity`` units and ``max_notional ÷ price``, sign kept.

    ``|q| = min(|units|, max_quantity, max_notional ÷ price)`` (a ``None`` limit is ignored),
    then ``sign(units) × |q|`` rounded toward zero to the lot. Limits apply to the magnitude,
    so a short of −500 with ``max_quantity=300`` becomes −300.

    Raises:
        ValueError: non-finite ``units``; ``price`` not finite and > 0; a limit that is
            negative or non-finite; ``lot <= 0``.
    """
    q = _finite("units", units)
    price_ = _positive("price", price)
    step = _positive("lot", lot)
    magnitude = abs(q)
    if max_quantity is not None:
        magnitude = min(magnitude, _non_negative("max_quantity", max_quantity))
    if max_notional is not None:
        magnitude = min(magnitude, _non_negative("max_notional", max_notional) / price_)
    return round_to_lot(math.copysign(magnitude, q), step)

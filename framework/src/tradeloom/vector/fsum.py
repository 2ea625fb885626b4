"""An exactly rounded float sum for numba kernels, equal to :func:`math.fsum`.

Strategies whose event code re-anchors running sums with :func:`math.fsum` (e.g.
``sma-crossover``) need the very same value inside a kernel to produce the very same signals.
``math.fsum`` returns the sum of its inputs rounded once, correctly (round-half-even), so any
exactly rounded algorithm gives the same float, whatever the order of the inputs.

Two stages:

* a fast path: a compensated sum (each addition's exact error from two-sum, the errors summed
  in floating point) with a rigorous bound on what that second sum may have lost. When the
  result's distance to the nearest rounding boundary exceeds the bound, it is the exactly
  rounded sum — nearly always for prices;
* otherwise Shewchuk's algorithm ("Adaptive Precision Floating-Point Arithmetic and Fast
  Robust Geometric Predicates", 1997): keep the running sum as non-overlapping partials, each
  addition exact (two-sum), then add the partials from the largest with a final half-way
  correction.

Inputs must be finite (prices are); overflow and subnormal results are not handled.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["fsum_nb"]

_U = 2.0**-53
"""Unit roundoff of float64."""


@njit(cache=True)
def fsum_nb(values: np.ndarray, scratch: np.ndarray) -> float:
    """The exactly rounded sum of ``values`` (1-D, finite); ``scratch`` is a work array of at
    least ``len(values)`` floats (overwritten)."""
    n = len(values)
    s = 0.0
    e = 0.0  # the sum of the exact errors, itself rounded ...
    bound = 0.0  # ... by at most (n - 1) * u * sum(|errors|)
    for v in values:
        t = s + v
        z = t - s
        err = (s - (t - z)) + (v - z)
        s = t
        e += err
        bound += abs(err)
    if bound == 0.0:
        return s  # every addition was exact
    hi = s + e
    z = hi - s
    lo = (s - (hi - z)) + (e - z)  # s + e == hi + lo exactly; the true sum is within slack
    slack = 2.0 * n * _U * bound
    if hi != 0.0:
        mantissa, exponent = math.frexp(hi)
        ulp = math.ldexp(1.0, exponent - 53)
        # Distances from hi to the rounding boundaries, away from and towards zero.
        up = 0.5 * ulp
        down = 0.25 * ulp if abs(mantissa) == 0.5 else 0.5 * ulp
        away = lo if hi > 0.0 else -lo
        if away + slack < up and away - slack > -down:
            return hi
    return _fsum_exact_nb(values, scratch)


@njit(cache=True)
def _fsum_exact_nb(values: np.ndarray, scratch: np.ndarray) -> float:
    n_partials = 0
    for v in values:
        x = v
        i = 0
        for p in range(n_partials):
            y = scratch[p]
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo != 0.0:
                scratch[i] = lo
                i += 1
            x = hi
        n_partials = i
        if x != 0.0:
            scratch[n_partials] = x
            n_partials += 1
    hi = 0.0
    if n_partials > 0:
        n_partials -= 1
        hi = scratch[n_partials]
        lo = 0.0
        while n_partials > 0:
            x = hi
            n_partials -= 1
            y = scratch[n_partials]
            hi = x + y
            lo = y - (hi - x)
            if lo != 0.0:
                break
        # Round half to even across the remaining partials: if the tail has the same sign as
        # ``lo``, the true sum is beyond the half-way point that ``hi`` was rounded from.
        if n_partials > 0 and (
            (lo < 0.0 and scratch[n_partials - 1] < 0.0)
            or (lo > 0.0 and scratch[n_partials - 1] > 0.0)
        ):
            y = lo * 2.0
            x = hi + y
            if y == x - hi:
                hi = x
    return hi

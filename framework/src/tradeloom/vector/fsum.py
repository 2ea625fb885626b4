"""An exactly rounded float sum for numba kernels, equal to :func:`math.fsum`.

Strategies whose event code re-anchors running sums with :func:`math.fsum` (e.g.
``sma-crossover``) need the very same value inside a kernel to produce the very same signals.
``math.fsum`` returns the sum of its inputs rounded once, correctly (round-half-even), so any
exactly rounded algorithm gives the same float, whatever the order of the inputs. This is
Shewchuk's algorithm ("Adaptive Precision Floating-Point Arithmetic and Fast Robust Geometric
Predicates", 1997): keep the running sum as non-overlapping partials, each addition exact
(two-sum), then add the partials from the largest with a final half-way correction.

Inputs must be finite (prices are); overflow of intermediate partials is not handled.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["fsum_nb"]


@njit(cache=True)
def fsum_nb(values: np.ndarray, scratch: np.ndarray) -> float:
    """The exactly rounded sum of ``values`` (1-D, finite); ``scratch`` is a work array of at
    least ``len(values)`` floats (overwritten)."""
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

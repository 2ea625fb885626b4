"""Portfolio Value-at-Risk (VaR) and Expected Shortfall (ES) of the current holdings.

The functions here are pure computations over history a caller has already seen: they take
price or P&L arrays *up to now* (oldest first) and never look past their last element, so a
risk rule or a report can call them bar by bar without look-ahead.

P&L, not returns
----------------
:func:`portfolio_returns` turns aligned close histories and the *current* quantities into a
one-bar P&L series in account currency (a "static portfolio" historical simulation)::

    pnl_t = Σ_s q_s · (p_{s,t} − p_{s,t−1}),     t = 1 … n−1

P&L rather than percentage returns because the figure wanted is the money the holdings we own
*now* could lose: it is additive across instruments (long and short, no gross/net base to
divide by, no undefined return of a zero-value or dollar-neutral book), and VaR comes out in
account currency, directly comparable with a limit. The price is that absolute price changes
from a time when the price level was very different are taken at face value; pass a ``window``
to :func:`portfolio_var` to keep the history recent. Prices must already be in the account
currency and quantities must include any contract multiplier.

Sign convention
---------------
VaR and ES are reported as *losses*: a positive number is money lost. ``var`` is the loss not
exceeded with probability ``confidence`` over ``horizon`` bars; ``es`` is the mean loss in
that tail, so ``es >= var``. Neither is clipped at zero: if even the tail outcome is a gain (a
strong drift, say) VaR is negative, which keeps both measures positively homogeneous
(``VaR(k·q) = k·VaR(q)`` for ``k > 0``) and translation-equivariant. A flat book has VaR 0.

Historical simulation (:func:`historical_var`)
----------------------------------------------
With ``h = horizon``, the ``h``-bar P&L samples are the overlapping sums of ``h`` consecutive
one-bar P&Ls, ``x_i = pnl_i + … + pnl_{i+h−1}`` for ``i = 0 … n−h`` (``m = n − h + 1`` samples;
overlapping windows keep the sample large but are serially dependent). With ``p = 1 − c``,
sorted ``x_(1) ≤ … ≤ x_(m)`` and ``k = ⌈p·m⌉`` (the tail count)::

    VaR = −x_(k)                      the lower empirical p-quantile, inf{x : F_m(x) ≥ p}
    ES  = −(x_(1) + … + x_(k)) / k    the mean of the k worst outcomes

e.g. 99 % of 500 scenarios: VaR is the 5th-worst loss and ES the mean of the 5 worst (Hull,
*Risk Management and Financial Institutions*, ch. "Historical Simulation"). ``p·m`` is rounded
at a 1e-9 tolerance first, since ``1 − 0.99`` is not exactly 0.01 in binary. Ties at the
quantile are counted only up to ``k``. At least ``⌈1/p⌉`` samples are required (``k ≥ 1``
with the quantile inside the sample); fewer raise rather than extrapolate.

Variance–covariance (:func:`parametric_var`)
--------------------------------------------
The one-bar P&L is taken as normal with the sample mean ``μ`` and the sample standard deviation
``σ`` (ddof = 1), i.i.d. across bars, so the ``h``-bar P&L is ``N(μh, σ²h)``. With
``z = Φ⁻¹(c)`` and the standard normal density ``φ``::

    VaR = −(μh − z·σ√h)
    ES  = −(μh − σ√h · φ(z) / (1 − c))

(Jorion, *Value at Risk*, 3rd ed., ch. 5; McNeil, Frey & Embrechts, *Quantitative Risk
Management*, 2nd ed., Example 2.14.) For c = 0.99: z = 2.326347874, φ(z)/(1−c) = 2.665214220;
for c = 0.95: z = 1.644853627, φ(z)/(1−c) = 2.062712807. ``Φ⁻¹`` and ``φ`` come from
:class:`statistics.NormalDist` (standard library; Wichura's AS 241, accurate to ~1e-16).

Errors
------
Bad input raises :class:`VarInputError` (a :class:`ValueError`) whose ``field`` names the
argument at fault and whose message says how to fix it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

__all__ = [
    "VarInputError",
    "VarResult",
    "historical_var",
    "incremental_var",
    "parametric_var",
    "portfolio_returns",
    "portfolio_var",
]

Method = Literal["historical", "parametric"]

_TOLERANCE = 1e-9
"""Slack when turning ``(1 − c)·m`` into an integer tail count, so that binary rounding of
the confidence (``1 − 0.99 = 0.010000000000000009``) does not add a sample to the tail."""

_STANDARD_NORMAL = NormalDist()


class VarInputError(ValueError):
    """An argument of a VaR computation is invalid. ``field`` names the argument."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True, slots=True)
class VarResult:
    """One VaR / ES estimate. Money is in account currency; losses are positive."""

    var: float
    """The loss not exceeded with probability ``confidence`` over ``horizon`` bars."""
    es: float
    """Expected shortfall (CVaR): the mean loss beyond VaR; always ``>= var``."""
    confidence: float
    """The confidence level ``c`` in (0.5, 1)."""
    horizon: int
    """Holding period in bars."""
    method: str
    """``"historical"`` or ``"parametric"``."""
    observations: int
    """Samples the estimate rests on: the ``n − horizon + 1`` overlapping horizon-bar P&Ls for
    ``"historical"``, the ``n`` one-bar P&Ls for ``"parametric"``."""


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _check_confidence(confidence: float) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, Real):
        raise VarInputError(
            "confidence", f"expected a number in (0.5, 1), got {confidence!r}; e.g. 0.99"
        )
    c = float(confidence)
    if not 0.5 < c < 1.0:
        raise VarInputError(
            "confidence",
            f"{c!r} is outside (0.5, 1); pass the probability that the loss is NOT exceeded, "
            "e.g. 0.99 (not 0.01 or 99)",
        )
    return c


def _check_horizon(horizon: int) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, Integral) or horizon < 1:
        raise VarInputError(
            "horizon", f"expected a whole number of bars >= 1, got {horizon!r}; e.g. 1 or 10"
        )
    return int(horizon)


def _check_pnl(pnl: Any) -> np.ndarray:
    arr = np.asarray(pnl, dtype=float)
    if arr.ndim != 1:
        raise VarInputError(
            "pnl",
            f"expected a 1-D array of one-bar P&Ls, got shape {arr.shape}; "
            "aggregate the holdings first with portfolio_returns()",
        )
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise VarInputError(
            "pnl",
            f"{bad.size} non-finite value(s) (NaN or infinity), first at index {bad[0]}; "
            "drop or fill the missing bars (e.g. forward-fill the prices) before computing VaR",
        )
    return arr


def _tail_count(p: float, m: int) -> int:
    """``⌈p·m⌉`` with a tolerance for the binary representation of ``p``."""
    return math.ceil(p * m - _TOLERANCE)


def _plus_zero(x: float) -> float:
    """Turn ``-0.0`` into ``0.0`` (a flat book has VaR 0, not -0)."""
    return float(x) + 0.0


# ---------------------------------------------------------------------------------------------
# P&L of the holdings
# ---------------------------------------------------------------------------------------------


def portfolio_returns(
    prices: Mapping[str, np.ndarray], quantities: Mapping[str, float]
) -> np.ndarray:
    """One-bar P&L (account currency) of holding ``quantities`` over the price histories.

    ``prices`` maps each symbol to a 1-D array of closes, oldest first, all of the same length
    ``n`` and aligned bar by bar; ``quantities`` maps symbols to signed holdings (negative is
    short, multiplier included). Returns ``pnl`` of length ``n − 1`` with
    ``pnl_t = Σ_s q_s · (p_{s,t} − p_{s,t−1})``. Money P&L rather than percentage returns: see
    the module docstring.

    Symbols priced but not held (or held with quantity 0) contribute nothing, and only held
    symbols need finite prices. A non-zero quantity for a symbol without prices is an error.
    """
    if not prices:
        raise VarInputError(
            "prices", "no price series given; pass {symbol: closes} for every held symbol"
        )
    series: dict[str, np.ndarray] = {}
    length: int | None = None
    first: str | None = None
    for symbol in sorted(prices):
        arr = np.asarray(prices[symbol], dtype=float)
        if arr.ndim != 1:
            raise VarInputError(
                f"prices[{symbol!r}]",
                f"expected a 1-D array of closes, got shape {arr.shape}",
            )
        if length is None:
            length, first = arr.size, symbol
        elif arr.size != length:
            raise VarInputError(
                f"prices[{symbol!r}]",
                f"{arr.size} closes but prices[{first!r}] has {length}; align the histories "
                "on the same bars (same length, oldest first) before computing VaR",
            )
        series[symbol] = arr
    assert length is not None

    pnl = np.zeros(max(length - 1, 0), dtype=float)
    for symbol in sorted(quantities):
        raw = quantities[symbol]
        if isinstance(raw, bool) or not isinstance(raw, Real) or not math.isfinite(raw):
            raise VarInputError(
                f"quantities[{symbol!r}]", f"expected a finite signed number, got {raw!r}"
            )
        qty = float(raw)
        if qty == 0.0:
            continue
        if symbol not in series:
            raise VarInputError(
                f"quantities[{symbol!r}]",
                f"holding {qty:g} but no price history for {symbol!r}; add prices[{symbol!r}]",
            )
        closes = series[symbol]
        bad = np.flatnonzero(~np.isfinite(closes))
        if bad.size:
            raise VarInputError(
                f"prices[{symbol!r}]",
                f"{bad.size} non-finite close(s), first at index {bad[0]}; "
                "forward-fill or trim the history of a held symbol",
            )
        pnl += qty * np.diff(closes)
    return pnl


# ---------------------------------------------------------------------------------------------
# VaR / ES of a P&L series
# ---------------------------------------------------------------------------------------------


def historical_var(pnl: np.ndarray, confidence: float = 0.99, horizon: int = 1) -> VarResult:
    """VaR and ES from the empirical distribution of the ``horizon``-bar P&L.

    The samples are the ``m = n − horizon + 1`` overlapping sums of ``horizon`` consecutive
    one-bar P&Ls; with ``k = ⌈(1 − c)·m⌉``, ``VaR = −x_(k)`` (the k-th smallest sample) and
    ``ES = −mean(x_(1) … x_(k))``. Needs ``m ≥ ⌈1/(1 − c)⌉``.
    """
    c = _check_confidence(confidence)
    h = _check_horizon(horizon)
    x = _check_pnl(pnl)
    p = 1.0 - c
    needed = math.ceil(1.0 / p - _TOLERANCE)
    m = x.size - h + 1
    if m < needed:
        raise VarInputError(
            "pnl",
            f"{x.size} one-bar P&L observation(s) give {max(m, 0)} sample(s) at horizon {h}; "
            f"historical VaR at confidence {c:g} needs at least {needed} (= ⌈1/(1−c)⌉) — pass "
            "a longer history (or a larger window), lower the confidence, or use "
            "method='parametric'",
        )
    samples = x if h == 1 else np.lib.stride_tricks.sliding_window_view(x, h).sum(axis=1)
    k = _tail_count(p, m)
    tail = np.sort(samples)[:k]
    var = -float(tail[-1])
    # The mean of values <= tail[-1] cannot exceed it; max() only absorbs rounding.
    es = max(-float(np.mean(tail)), var)
    return VarResult(
        var=_plus_zero(var),
        es=_plus_zero(es),
        confidence=c,
        horizon=h,
        method="historical",
        observations=m,
    )


def parametric_var(pnl: np.ndarray, confidence: float = 0.99, horizon: int = 1) -> VarResult:
    """Variance–covariance VaR and ES: the one-bar P&L taken as i.i.d. normal.

    ``μ`` and ``σ`` (ddof = 1) of the one-bar P&L, scaled to ``μh`` and ``σ√h``;
    ``VaR = −(μh − z·σ√h)`` and ``ES = −(μh − σ√h·φ(z)/(1 − c))`` with ``z = Φ⁻¹(c)``.
    Needs at least 2 observations.
    """
    c = _check_confidence(confidence)
    h = _check_horizon(horizon)
    x = _check_pnl(pnl)
    if x.size < 2:
        raise VarInputError(
            "pnl",
            f"{x.size} one-bar P&L observation(s); parametric VaR needs at least 2 to estimate "
            "a standard deviation — pass a longer history",
        )
    mu = float(np.mean(x))
    sigma = float(np.std(x, ddof=1))
    z = _STANDARD_NORMAL.inv_cdf(c)
    es_factor = _STANDARD_NORMAL.pdf(z) / (1.0 - c)
    mu_h = mu * h
    sigma_h = sigma * math.sqrt(h)
    var = -(mu_h - z * sigma_h)
    es = -(mu_h - sigma_h * es_factor)
    return VarResult(
        var=_plus_zero(var),
        es=_plus_zero(es),
        confidence=c,
        horizon=h,
        method="parametric",
        observations=int(x.size),
    )


# ---------------------------------------------------------------------------------------------
# Portfolio entry points
# ---------------------------------------------------------------------------------------------


def portfolio_var(
    prices: Mapping[str, np.ndarray],
    quantities: Mapping[str, float],
    *,
    method: Method = "historical",
    confidence: float = 0.99,
    horizon: int = 1,
    window: int | None = None,
) -> VarResult:
    """VaR and ES of holding ``quantities`` over the price history seen so far.

    The one-bar P&L comes from :func:`portfolio_returns`; ``window``, if given, keeps only its
    last ``window`` one-bar P&Ls (i.e. the last ``window + 1`` closes), or all of them when the
    history is shorter — ``VarResult.observations`` reports what was used. ``method`` selects
    :func:`historical_var` or :func:`parametric_var`.
    """
    if method not in ("historical", "parametric"):
        raise VarInputError(
            "method", f"unknown method {method!r}; use 'historical' or 'parametric'"
        )
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, Integral) or window < 1
    ):
        raise VarInputError(
            "window",
            f"expected None (all history) or a whole number of bars >= 1, got {window!r}",
        )
    pnl = portfolio_returns(prices, quantities)
    if window is not None:
        pnl = pnl[-int(window) :]
    if method == "historical":
        return historical_var(pnl, confidence, horizon)
    return parametric_var(pnl, confidence, horizon)


def incremental_var(
    prices: Mapping[str, np.ndarray],
    quantities: Mapping[str, float],
    order_symbol: str,
    order_qty_signed: float,
    **kw: Any,
) -> tuple[VarResult, VarResult]:
    """VaR of the holdings before and after adding an order (fully filled).

    ``order_qty_signed`` is positive for a buy and negative for a sell; the "after" holdings
    are ``quantities`` with ``order_qty_signed`` added to ``order_symbol``. ``kw`` is passed to
    :func:`portfolio_var` (``method``, ``confidence``, ``horizon``, ``window``) for both, so
    the two results are directly comparable; the incremental VaR is ``after.var − before.var``.
    """
    if order_symbol not in prices:
        raise VarInputError(
            "order_symbol",
            f"no price history for {order_symbol!r}; add prices[{order_symbol!r}]",
        )
    if (
        isinstance(order_qty_signed, bool)
        or not isinstance(order_qty_signed, Real)
        or not math.isfinite(order_qty_signed)
    ):
        raise VarInputError(
            "order_qty_signed",
            f"expected a finite signed quantity (+ buy, − sell), got {order_qty_signed!r}",
        )
    before = portfolio_var(prices, quantities, **kw)
    after_qty = dict(quantities)
    after_qty[order_symbol] = float(after_qty.get(order_symbol, 0.0)) + float(order_qty_signed)
    after = portfolio_var(prices, after_qty, **kw)
    return before, after

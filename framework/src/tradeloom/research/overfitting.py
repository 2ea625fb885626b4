"""Honest overfitting statistics: PSR, DSR and the probability of backtest overfitting.

A backtest Sharpe ratio found by trying many configurations is biased upwards: the best of
``N`` noise strategies has a positive Sharpe ratio. The functions here say how much of a result
survives that search.

Conventions
-----------
* **Per-period Sharpe ratio.** Every Sharpe ratio here is per period of ``returns`` (per bar,
  per day …), *not* annualised: ``SR̂ = mean(r) / std(r)`` with the sample standard deviation
  (ddof = 1) and no risk-free rate (pass excess returns if you want one). A daily SR̂ of 0.1 is
  an annualised ≈ 1.58 (× √252). Benchmarks and trial Sharpe ratios passed in must be in the
  same per-period units; divide annualised figures by √(periods per year) and annualised
  variances by the periods per year.
* **Skewness and kurtosis** are the population (biased) moment ratios of the sample,
  ``γ3 = m3 / m2^{3/2}`` and ``γ4 = m4 / m2²`` with ``m_k = mean((r − r̄)^k)``. ``γ4`` is the
  Pearson (non-excess) kurtosis: 3 for a normal law. (``scipy.stats.skew`` and
  ``scipy.stats.kurtosis(fisher=False)`` with their default ``bias=True`` give the same.)
* ``Φ`` and ``Φ⁻¹`` come from :class:`statistics.NormalDist`.

Probabilistic Sharpe ratio (Bailey & López de Prado, 2012)
----------------------------------------------------------
The probability that the true Sharpe ratio exceeds a benchmark ``SR*``, given ``n``
observations with skewness ``γ3`` and kurtosis ``γ4``::

    PSR(SR*) = Φ( (SR̂ − SR*) · √(n − 1) / √(1 − γ3·SR̂ + (γ4 − 1)/4 · SR̂²) )

Expected maximum Sharpe ratio and deflated Sharpe ratio (Bailey & López de Prado, 2014)
---------------------------------------------------------------------------------------
The expected largest of ``N`` independent Sharpe ratio estimates whose true value is 0 and
whose estimates vary across trials with variance ``V`` (γ is the Euler–Mascheroni constant)::

    E[max SR] ≈ √V · ( (1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)) )

The deflated Sharpe ratio is the PSR against that benchmark, ``DSR = PSR(E[max SR])``: the
probability that the strategy's true Sharpe ratio beats the best that ``N`` luck-only trials
would show.

Probability of backtest overfitting (Bailey, Borwein, López de Prado & Zhu, 2015)
--------------------------------------------------------------------------------
Combinatorially symmetric cross-validation (CSCV) of a ``T × N`` matrix of per-period returns
(``T`` periods, ``N`` configurations): the rows are cut into ``S`` contiguous blocks; for every
choice of ``S/2`` blocks as in-sample (IS), the rest being out-of-sample (OOS), the trial with
the best IS Sharpe ratio is found and its OOS rank ``r`` among all ``N`` trials (1 = worst,
``N`` = best) gives ``ω = r / (N + 1)`` and ``λ = ln(ω / (1 − ω))``. ``PBO`` is the fraction of
the ``C(S, S/2)`` combinations with ``λ ≤ 0``: the IS winner ended at or below the OOS median.

References
----------
* D. H. Bailey, M. López de Prado, "The Sharpe Ratio Efficient Frontier", *Journal of Risk*
  15(2), 2012.
* D. H. Bailey, M. López de Prado, "The Deflated Sharpe Ratio: Correcting for Selection Bias,
  Backtest Overfitting and Non-Normality", *Journal of Portfolio Management* 40(5), 2014.
* D. H. Bailey, J. M. Borwein, M. López de Prado, Q. J. Zhu, "The Probability of Backtest
  Overfitting", *Journal of Computational Finance* 20(4), 2017 (SSRN 2326253, 2015).

See ``docs/overfitting.md`` for how to read the verdicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from numbers import Integral, Real
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = [
    "DSR_THRESHOLD",
    "EULER_MASCHERONI",
    "DsrResult",
    "OverfittingInputError",
    "PboResult",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "probabilistic_sharpe_ratio",
    "probabilistic_sharpe_ratio_from_moments",
    "probability_of_backtest_overfitting",
    "sample_moments",
]

EULER_MASCHERONI = 0.5772156649015329
"""γ, the Euler–Mascheroni constant."""

DSR_THRESHOLD = 0.95
"""A DSR at or above this is read as a real edge (a one-sided 5 % test)."""

PBO_LOW = 0.1
"""A PBO below this is read as little sign of overfitting."""

PBO_HIGH = 0.5
"""A PBO at or above this is read as an overfit selection (no better than a coin flip)."""

_STANDARD_NORMAL = NormalDist()
_COMBINATION_CHUNK = 4096
"""Combinations evaluated per vectorised batch in the PBO (bounds memory to chunk × N)."""


class OverfittingInputError(ValueError):
    """An argument of an overfitting statistic is invalid. ``field`` names the argument."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True, slots=True)
class DsrResult:
    """A deflated Sharpe ratio and what it rests on. Sharpe ratios are per period."""

    dsr: float
    """Probability that the true Sharpe ratio exceeds ``sr_star`` (in [0, 1])."""
    sr: float
    """The observed per-period Sharpe ratio of the returns (ddof = 1)."""
    sr_star: float
    """The benchmark: the expected maximum Sharpe ratio of ``n_trials`` luck-only trials."""
    n_trials: float
    """Number of (independent) trials the benchmark accounts for."""
    sr_variance: float
    """Variance (ddof = 1) of the trial Sharpe ratios."""
    skew: float
    """Skewness γ3 of the returns (population moments)."""
    kurtosis: float
    """Pearson (non-excess) kurtosis γ4 of the returns; 3 for a normal law."""
    n_obs: int
    """Number of returns."""
    verdict: str
    """One plain-language line."""


@dataclass(frozen=True, slots=True, eq=False)
class PboResult:
    """The probability of backtest overfitting from CSCV."""

    pbo: float
    """Fraction of combinations in which the IS winner ranked at or below the OOS median."""
    logits: np.ndarray
    """``λ`` for each combination, in the order of ``itertools.combinations(range(S), S/2)``
    over the in-sample block indices."""
    n_combinations: int
    """``C(S, S/2)``."""
    n_partitions: int
    """``S``, the number of contiguous row blocks."""
    n_trials: int
    """``N``, the number of columns (configurations)."""
    n_obs: int
    """``T``, the number of rows (periods)."""
    verdict: str
    """One plain-language line."""


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _check_series(values: Any, field: str, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise OverfittingInputError(field, f"expected a 1-D array of {what}: {exc}") from None
    if arr.ndim != 1:
        raise OverfittingInputError(field, f"expected a 1-D array of {what}, got shape {arr.shape}")
    if arr.size < 2:
        raise OverfittingInputError(field, f"need at least 2 {what}, got {arr.size}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise OverfittingInputError(
            field,
            f"{bad.size} non-finite value(s) (NaN or infinity), first at index {bad[0]}; "
            "drop or fill them first",
        )
    return arr


def _check_real(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise OverfittingInputError(field, f"expected a finite number, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------
# PSR
# ---------------------------------------------------------------------------------------------


def sample_moments(returns: Any) -> tuple[float, float, float, int]:
    """``(SR̂, γ3, γ4, n)`` of ``returns``: per-period Sharpe ratio (ddof = 1), skewness and
    Pearson kurtosis (population moments), and the number of observations."""
    r = _check_series(returns, "returns", "returns")
    n = r.size
    centred = r - r.mean()
    m2 = float(np.mean(centred**2))
    if m2 == 0.0:
        raise OverfittingInputError(
            "returns", "all returns are equal (zero variance); the Sharpe ratio is undefined"
        )
    m3 = float(np.mean(centred**3))
    m4 = float(np.mean(centred**4))
    sr = float(r.mean() / r.std(ddof=1))
    return sr, m3 / m2**1.5, m4 / m2**2, n


def probabilistic_sharpe_ratio_from_moments(
    sr: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0, benchmark_sr: float = 0.0
) -> float:
    """PSR from summary statistics: per-period ``sr``, ``n_obs`` returns, skewness ``skew`` and
    Pearson kurtosis ``kurtosis`` (3 for a normal law), against the per-period
    ``benchmark_sr``. See the module docstring for the formula."""
    sr = _check_real(sr, "sr")
    skew = _check_real(skew, "skew")
    kurtosis = _check_real(kurtosis, "kurtosis")
    benchmark_sr = _check_real(benchmark_sr, "benchmark_sr")
    if isinstance(n_obs, bool) or not isinstance(n_obs, Integral) or n_obs < 2:
        raise OverfittingInputError("n_obs", f"expected a whole number >= 2, got {n_obs!r}")
    if kurtosis < 1.0:
        raise OverfittingInputError(
            "kurtosis",
            f"{kurtosis!r} < 1 is impossible for Pearson kurtosis; pass the non-excess "
            "kurtosis (3 for a normal law), not the excess kurtosis",
        )
    numerator = (sr - benchmark_sr) * math.sqrt(n_obs - 1)
    variance = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if variance <= 0.0:
        # Only reachable at the edge of the moment bounds (γ4 ≥ 1 + γ3²): the estimate of SR̂
        # has no spread, so the probability is a step.
        return 1.0 if numerator > 0 else 0.0 if numerator < 0 else 0.5
    return _STANDARD_NORMAL.cdf(numerator / math.sqrt(variance))


def probabilistic_sharpe_ratio(returns: Any, benchmark_sr: float = 0.0) -> float:
    """Probability that the true per-period Sharpe ratio of ``returns`` exceeds
    ``benchmark_sr`` (Bailey & López de Prado, 2012).

    ``returns`` is a 1-D array of per-period returns (at least 2, finite, not all equal);
    ``benchmark_sr`` is per period too (not annualised). Skewness and Pearson kurtosis are
    estimated from ``returns``.
    """
    sr, skew, kurt, n = sample_moments(returns)
    return probabilistic_sharpe_ratio_from_moments(sr, n, skew, kurt, benchmark_sr)


# ---------------------------------------------------------------------------------------------
# DSR
# ---------------------------------------------------------------------------------------------


def expected_max_sharpe(n_trials: float, sr_variance: float) -> float:
    """Expected maximum of ``n_trials`` Sharpe ratio estimates of zero-edge strategies whose
    estimates have variance ``sr_variance`` across trials (per-period units).

    ``n_trials`` may be fractional (an estimated *effective* number of independent trials) but
    must exceed 1; ``sr_variance`` must be >= 0.
    """
    if (
        isinstance(n_trials, bool)
        or not isinstance(n_trials, Real)
        or not math.isfinite(n_trials)
        or n_trials <= 1
    ):
        raise OverfittingInputError(
            "n_trials", f"expected a number of trials > 1, got {n_trials!r}"
        )
    v = _check_real(sr_variance, "sr_variance")
    if v < 0:
        raise OverfittingInputError("sr_variance", f"a variance cannot be negative, got {v!r}")
    n = float(n_trials)
    g = EULER_MASCHERONI
    z = (1.0 - g) * _STANDARD_NORMAL.inv_cdf(1.0 - 1.0 / n) + g * _STANDARD_NORMAL.inv_cdf(
        1.0 - 1.0 / (n * math.e)
    )
    return math.sqrt(v) * z


def _dsr_verdict(dsr: float, n_trials: float) -> str:
    trials = f"{n_trials:g}"
    if dsr >= DSR_THRESHOLD:
        return f"the Sharpe ratio survives {trials} trials: likely a real edge (DSR {dsr:.2f})"
    if dsr >= 0.5:
        return (
            f"after {trials} trials the Sharpe ratio is not significant at 95%: the edge may be "
            f"luck (DSR {dsr:.2f})"
        )
    return f"after {trials} trials this Sharpe ratio is what luck alone would give (DSR {dsr:.2f})"


def deflated_sharpe_ratio(
    returns: Any, trial_sharpes: Any, *, n_trials: float | None = None
) -> DsrResult:
    """Deflated Sharpe ratio of ``returns`` after the trials in ``trial_sharpes``
    (Bailey & López de Prado, 2014).

    ``trial_sharpes`` holds the per-period Sharpe ratio of every configuration tried,
    including the selected one, in the same units as ``returns``. The benchmark is
    ``SR* = expected_max_sharpe(N, V)`` with ``V`` their variance (ddof = 1) and ``N`` their
    number, or ``n_trials`` if given (an effective number of independent trials, e.g. after
    clustering correlated configurations). ``DSR = PSR(returns, SR*)``.
    """
    trials = _check_series(trial_sharpes, "trial_sharpes", "trial Sharpe ratios")
    n = float(trials.size) if n_trials is None else n_trials
    variance = float(trials.var(ddof=1))
    sr_star = expected_max_sharpe(n, variance)
    sr, skew, kurt, n_obs = sample_moments(returns)
    dsr = probabilistic_sharpe_ratio_from_moments(sr, n_obs, skew, kurt, sr_star)
    n_out = float(n)
    return DsrResult(
        dsr=dsr,
        sr=sr,
        sr_star=sr_star,
        n_trials=int(n_out) if n_out.is_integer() else n_out,
        sr_variance=variance,
        skew=skew,
        kurtosis=kurt,
        n_obs=n_obs,
        verdict=_dsr_verdict(dsr, n_out),
    )


# ---------------------------------------------------------------------------------------------
# PBO
# ---------------------------------------------------------------------------------------------


def _check_performance(performance: Any, n_partitions: Any) -> tuple[np.ndarray, int]:
    if (
        isinstance(n_partitions, bool)
        or not isinstance(n_partitions, Integral)
        or n_partitions < 2
        or n_partitions % 2
    ):
        raise OverfittingInputError(
            "n_partitions", f"expected an even whole number >= 2, got {n_partitions!r}; e.g. 16"
        )
    s = int(n_partitions)
    try:
        m = np.asarray(performance, dtype=float)
    except (TypeError, ValueError) as exc:
        raise OverfittingInputError(
            "performance", f"expected a T × N matrix of per-period returns: {exc}"
        ) from None
    if m.ndim != 2:
        raise OverfittingInputError(
            "performance",
            f"expected a 2-D T × N matrix (rows = periods, columns = trials), got shape {m.shape}",
        )
    t, n = m.shape
    if n < 2:
        raise OverfittingInputError(
            "performance", f"need at least 2 trials (columns) to rank, got {n}"
        )
    if t < max(s, 4):
        raise OverfittingInputError(
            "performance",
            f"{t} rows cannot be cut into {s} blocks with at least 2 rows per half; need "
            f"T >= max(S, 4) = {max(s, 4)} (use fewer partitions or more periods)",
        )
    bad = np.argwhere(~np.isfinite(m))
    if bad.size:
        row, col = bad[0]
        raise OverfittingInputError(
            "performance",
            f"{len(bad)} non-finite value(s) (NaN or infinity), first at row {row}, column "
            f"{col}; drop or fill them first",
        )
    return m, s


def _sharpe_from_sums(
    count: np.ndarray, total: np.ndarray, squares: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """Per-period Sharpe ratios (ddof = 1) from sums of shifted returns ``x − shift``.

    A zero standard deviation gives ±inf by the sign of the mean (0 for a zero mean), so a
    constant positive return ranks above everything and a flat trial sits at 0.
    """
    mean_shifted = total / count
    var = (squares - count * mean_shifted**2) / (count - 1)
    std = np.sqrt(np.maximum(var, 0.0))
    mean = mean_shifted + shift
    with np.errstate(divide="ignore", invalid="ignore"):
        sr = mean / std
    flat = std == 0.0
    sr[flat] = np.where(mean[flat] > 0.0, np.inf, np.where(mean[flat] < 0.0, -np.inf, 0.0))
    return sr


def _pbo_verdict(pbo: float) -> str:
    pct = f"{pbo:.0%}"
    if pbo < PBO_LOW:
        return (
            f"the in-sample winner stays above the out-of-sample median in most splits "
            f"(PBO {pbo:.2f}): little sign of overfitting"
        )
    if pbo < PBO_HIGH:
        return (
            f"the in-sample winner falls to or below the out-of-sample median in {pct} of "
            f"splits (PBO {pbo:.2f}): the selection is partly luck"
        )
    return (
        f"the in-sample winner falls to or below the out-of-sample median in {pct} of splits "
        f"(PBO {pbo:.2f}): the selection is overfit, no better than picking at random"
    )


def probability_of_backtest_overfitting(performance: Any, n_partitions: int = 16) -> PboResult:
    """Probability of backtest overfitting by CSCV (Bailey, Borwein, López de Prado & Zhu).

    ``performance`` is a ``T × N`` matrix of per-period returns: one row per period (oldest
    first), one column per trial/configuration. The rows are cut into ``n_partitions`` (``S``,
    even) contiguous blocks — as equal as possible, the first ``T mod S`` blocks one row longer
    (``numpy.array_split``). For each of the ``C(S, S/2)`` choices of in-sample blocks the
    trial with the best in-sample Sharpe ratio (the first one on a tie) is ranked among all
    trials by out-of-sample Sharpe ratio (1 = worst, ``N`` = best, ties share their average
    rank), ``ω = rank / (N + 1)``, ``λ = ln(ω / (1 − ω))``; ``PBO`` is the fraction of
    combinations with ``λ ≤ 0``.

    Requires ``T >= max(S, 4)`` (each half has at least 2 rows), ``N >= 2`` and finite values.
    A trial with zero spread in a half has Sharpe ratio ±inf by the sign of its mean (0 if
    flat).
    """
    m, s = _check_performance(performance, n_partitions)
    t, n = m.shape
    shift = m[0]  # shifting by a row keeps constant columns exactly constant (zero variance)
    x = m - shift
    blocks = np.array_split(np.arange(t), s)
    counts = np.array([len(b) for b in blocks], dtype=float)  # (S,)
    sums = np.stack([x[b].sum(axis=0) for b in blocks])  # (S, N)
    squares = np.stack([(x[b] ** 2).sum(axis=0) for b in blocks])  # (S, N)
    total_count, total_sum, total_squares = counts.sum(), sums.sum(axis=0), squares.sum(axis=0)

    combos = list(combinations(range(s), s // 2))
    logits = np.empty(len(combos))
    for start in range(0, len(combos), _COMBINATION_CHUNK):
        chunk = combos[start : start + _COMBINATION_CHUNK]
        mask = np.zeros((len(chunk), s))
        rows = np.repeat(np.arange(len(chunk)), s // 2)
        mask[rows, np.asarray(chunk).ravel()] = 1.0
        is_count = (mask @ counts)[:, None]
        is_sum = mask @ sums
        is_squares = mask @ squares
        is_sr = _sharpe_from_sums(is_count, is_sum, is_squares, shift)
        oos_sr = _sharpe_from_sums(
            total_count - is_count, total_sum - is_sum, total_squares - is_squares, shift
        )
        best = np.argmax(is_sr, axis=1)
        winner_oos = oos_sr[np.arange(len(chunk)), best][:, None]
        below = np.sum(oos_sr < winner_oos, axis=1)
        equal = np.sum(oos_sr == winner_oos, axis=1)  # includes the winner itself
        rank = below + (equal + 1) / 2.0
        omega = rank / (n + 1)
        logits[start : start + len(chunk)] = np.log(omega / (1.0 - omega))

    pbo = float(np.mean(logits <= 0.0))
    return PboResult(
        pbo=pbo,
        logits=logits,
        n_combinations=len(combos),
        n_partitions=s,
        n_trials=n,
        n_obs=t,
        verdict=_pbo_verdict(pbo),
    )

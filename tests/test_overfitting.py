"""Overfitting statistics (tradeloom.research.overfitting): PSR, expected max Sharpe, DSR, PBO.

PSR and the expected maximum are checked against the closed forms evaluated here with plain
Python (``statistics``, hand-written moment sums, no numpy); the DSR against the worked example
of Bailey & López de Prado (2014); the PBO against a case ranked by hand and against its
behaviour on pure noise and on one real edge among noise.
"""

from __future__ import annotations

import math
import statistics
from itertools import combinations, pairwise

import numpy as np
import pytest

from tradeloom.research.overfitting import (
    DsrResult,
    OverfittingInputError,
    PboResult,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probabilistic_sharpe_ratio_from_moments,
    probability_of_backtest_overfitting,
)

PHI = statistics.NormalDist()
GAMMA = 0.5772156649015329

# A small hand-made series of daily returns (skewed: one large gain).
SERIES = [0.02, -0.01, 0.03, 0.01, -0.02, 0.08, 0.00, 0.01, -0.015, 0.005]


def hand_moments(xs: list[float]) -> tuple[float, float, float]:
    """SR (ddof 1), skewness and Pearson kurtosis (population moments) by the textbook sums."""
    n = len(xs)
    mean = sum(xs) / n
    m2 = sum((x - mean) ** 2 for x in xs) / n
    m3 = sum((x - mean) ** 3 for x in xs) / n
    m4 = sum((x - mean) ** 4 for x in xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return mean / sd, m3 / m2**1.5, m4 / m2**2


def hand_psr(xs: list[float], sr_star: float) -> float:
    sr, g3, g4 = hand_moments(xs)
    z = (sr - sr_star) * math.sqrt(len(xs) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return PHI.cdf(z)


def hand_emax(n: float, v: float) -> float:
    return math.sqrt(v) * (
        (1 - GAMMA) * PHI.inv_cdf(1 - 1 / n) + GAMMA * PHI.inv_cdf(1 - 1 / (n * math.e))
    )


# ---------------------------------------------------------------------------------------------
# PSR
# ---------------------------------------------------------------------------------------------


def test_hand_moments_of_the_series() -> None:
    # Pin the hand formulas themselves to independently known values for this series.
    sr, g3, g4 = hand_moments(SERIES)
    assert statistics.mean(SERIES) / statistics.stdev(SERIES) == pytest.approx(sr, rel=1e-12)
    assert g3 > 1.0  # the 8 % day makes it right-skewed
    assert g4 > 3.0  # and fat-tailed


@pytest.mark.parametrize("sr_star", [0.0, 0.1, 0.5, -0.2])
def test_psr_matches_hand_computation(sr_star: float) -> None:
    assert probabilistic_sharpe_ratio(SERIES, sr_star) == pytest.approx(
        hand_psr(SERIES, sr_star), rel=1e-12
    )


def test_psr_default_benchmark_is_zero() -> None:
    assert probabilistic_sharpe_ratio(SERIES) == pytest.approx(hand_psr(SERIES, 0.0), rel=1e-12)


def test_psr_is_one_half_at_the_benchmark() -> None:
    sr, _, _ = hand_moments(SERIES)
    assert probabilistic_sharpe_ratio(SERIES, sr) == pytest.approx(0.5, abs=1e-12)
    assert probabilistic_sharpe_ratio_from_moments(0.3, 100, -1.0, 6.0, 0.3) == 0.5


def test_psr_accepts_numpy_and_is_scale_invariant() -> None:
    a = probabilistic_sharpe_ratio(np.array(SERIES), 0.1)
    assert probabilistic_sharpe_ratio([10 * x for x in SERIES], 0.1) == pytest.approx(a)


def test_psr_normal_case_from_moments() -> None:
    # Normal returns: denominator √(1 + SR²/2). SR 0.1 over 101 obs vs 0: z = 1/√1.005.
    expected = PHI.cdf(0.1 * 10 / math.sqrt(1 + 0.01 / 2))
    assert probabilistic_sharpe_ratio_from_moments(0.1, 101) == pytest.approx(expected, 1e-14)


def test_psr_negative_skew_and_fat_tails_lower_confidence() -> None:
    normal = probabilistic_sharpe_ratio_from_moments(0.1, 250, 0.0, 3.0)
    assert probabilistic_sharpe_ratio_from_moments(0.1, 250, -2.0, 3.0) < normal
    assert probabilistic_sharpe_ratio_from_moments(0.1, 250, 0.0, 12.0) < normal


# ---------------------------------------------------------------------------------------------
# Expected maximum Sharpe ratio
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "v"), [(2, 1.0), (10, 0.04), (100, 0.002), (1000, 0.25), (7.5, 1)])
def test_expected_max_sharpe_closed_form(n: float, v: float) -> None:
    assert expected_max_sharpe(n, v) == pytest.approx(hand_emax(n, v), rel=1e-14)


def test_expected_max_sharpe_known_values() -> None:
    # Φ⁻¹(0.99) = 2.326347874, Φ⁻¹(1 − 1/(100e)) = 2.680262…; with √V = 1:
    assert expected_max_sharpe(100, 1.0) == pytest.approx(
        (1 - GAMMA) * 2.326347874 + GAMMA * PHI.inv_cdf(1 - 1 / (100 * math.e)), rel=1e-9
    )
    assert expected_max_sharpe(100, 0.0) == 0.0
    # Scales with √V.
    assert expected_max_sharpe(50, 4.0) == pytest.approx(2 * expected_max_sharpe(50, 1.0))


def test_expected_max_sharpe_is_monotone_in_n() -> None:
    values = [expected_max_sharpe(n, 1.0) for n in (2, 3, 5, 10, 100, 1_000, 10_000, 1e6)]
    assert all(a < b for a, b in pairwise(values))


def test_expected_max_sharpe_tracks_simulated_maximum() -> None:
    # Sanity: the approximation is close to the simulated mean of the max of N standard normals.
    rng = np.random.default_rng(7)
    simulated = rng.standard_normal((20_000, 100)).max(axis=1).mean()
    assert expected_max_sharpe(100, 1.0) == pytest.approx(simulated, rel=0.02)


# ---------------------------------------------------------------------------------------------
# DSR
# ---------------------------------------------------------------------------------------------


def test_dsr_paper_example() -> None:
    # Bailey & López de Prado (2014), numerical example: annualised SR 2.5 from 1250 daily
    # returns (5 years), γ3 = −3, γ4 = 10, N = 100 trials whose annualised SRs have variance
    # 1/2. In daily units: SR̂ = 2.5/√250, V = 0.5/250. The paper gives SR* ≈ 0.1132 and
    # DSR ≈ 0.9004.
    sr_star = expected_max_sharpe(100, 0.5 / 250)
    assert sr_star == pytest.approx(0.1132, abs=5e-5)
    dsr = probabilistic_sharpe_ratio_from_moments(2.5 / math.sqrt(250), 1250, -3.0, 10.0, sr_star)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_dsr_matches_hand_computation() -> None:
    trials = [0.05, -0.1, 0.2, 0.12, 0.0, -0.03, 0.3]
    result = deflated_sharpe_ratio(SERIES, trials)
    v = statistics.variance(trials)
    sr_star = hand_emax(len(trials), v)
    sr, g3, g4 = hand_moments(SERIES)
    assert isinstance(result, DsrResult)
    assert result.sr_star == pytest.approx(sr_star, rel=1e-12)
    assert result.dsr == pytest.approx(hand_psr(SERIES, sr_star), rel=1e-12)
    assert result.sr == pytest.approx(sr, rel=1e-12)
    assert result.skew == pytest.approx(g3, rel=1e-12)
    assert result.kurtosis == pytest.approx(g4, rel=1e-12)
    assert result.sr_variance == pytest.approx(v, rel=1e-12)
    assert result.n_trials == 7
    assert result.n_obs == len(SERIES)


def test_dsr_effective_number_of_trials() -> None:
    trials = [0.05, -0.1, 0.2, 0.12, 0.0, -0.03, 0.3]
    result = deflated_sharpe_ratio(SERIES, trials, n_trials=3.5)
    assert result.n_trials == 3.5
    assert result.sr_star == pytest.approx(hand_emax(3.5, statistics.variance(trials)))


def test_dsr_verdicts() -> None:
    rng = np.random.default_rng(3)
    strong = rng.normal(0.01, 0.01, 500)  # per-period SR ≈ 1
    good = deflated_sharpe_ratio(strong, rng.normal(0.0, 0.05, 20))
    assert good.dsr >= 0.95
    assert good.verdict.startswith("the Sharpe ratio survives 20 trials: likely a real edge")
    weak = rng.normal(0.0005, 0.01, 500)
    bad = deflated_sharpe_ratio(weak, rng.normal(0.0, 0.05, 200))
    assert bad.dsr < 0.5
    assert bad.verdict == (
        f"after 200 trials this Sharpe ratio is what luck alone would give (DSR {bad.dsr:.2f})"
    )
    middling = deflated_sharpe_ratio(
        np.random.default_rng(1).normal(0.0015, 0.01, 500),
        np.random.default_rng(2).normal(0, 0.05, 50),
    )
    assert 0.5 <= middling.dsr < 0.95
    assert middling.verdict == (
        "after 50 trials the Sharpe ratio is not significant at 95%: the edge may be luck "
        f"(DSR {middling.dsr:.2f})"
    )


def test_more_trials_deflate_more() -> None:
    trials = [0.05, -0.1, 0.2, 0.12, 0.0, -0.03, 0.3]
    few = deflated_sharpe_ratio(SERIES, trials, n_trials=2)
    many = deflated_sharpe_ratio(SERIES, trials, n_trials=1000)
    assert many.sr_star > few.sr_star
    assert many.dsr < few.dsr


# ---------------------------------------------------------------------------------------------
# PBO
# ---------------------------------------------------------------------------------------------

# Hand case: T = 4, S = 2 (blocks = rows 0–1 and rows 2–3), N = 4 trials. Each trial's pair in
# a block is (a, a + 2), so its block Sharpe ratio is (2a + 2) / (√2 · 2) = (a + 1)/√2 and the
# ranking in a block is the ranking of a:
#   block 0: a = (4, 0, 2, 3) → trial 0 best, ranks (4, 1, 2, 3)
#   block 1: a = (3, 4, 1, 2) → trial 1 best, ranks (3, 4, 1, 2)
# IS = block 0: winner trial 0, OOS rank 3 of 4 → ω = 3/5, λ = ln(3/2)  > 0
# IS = block 1: winner trial 1, OOS rank 1 of 4 → ω = 1/5, λ = ln(1/4) ≤ 0
# PBO = 1/2.
HAND = [
    [4, 0, 2, 3],
    [6, 2, 4, 5],
    [3, 4, 1, 2],
    [5, 6, 3, 4],
]


def test_pbo_hand_case() -> None:
    result = probability_of_backtest_overfitting(HAND, n_partitions=2)
    assert isinstance(result, PboResult)
    assert result.logits.tolist() == pytest.approx([math.log(3 / 2), math.log(1 / 4)], rel=1e-12)
    assert result.pbo == 0.5
    assert result.n_combinations == 2
    assert (result.n_partitions, result.n_trials, result.n_obs) == (2, 4, 4)


def test_pbo_hand_case_is_scale_invariant() -> None:
    # Scaling every return by a positive constant leaves all Sharpe ratios, hence the logits.
    scaled = np.array(HAND, dtype=float) * 0.01
    result = probability_of_backtest_overfitting(scaled, n_partitions=2)
    assert result.logits.tolist() == pytest.approx([math.log(3 / 2), math.log(1 / 4)])


def test_pbo_independent_reference_implementation() -> None:
    # A plain-Python CSCV (statistics.mean / stdev per half) on a random panel with S = 4.
    rng = np.random.default_rng(11)
    panel = rng.normal(0.0, 1.0, (12, 5))
    s, n = 4, 5
    blocks = [list(range(3 * i, 3 * i + 3)) for i in range(s)]
    expected = []
    for is_blocks in combinations(range(s), s // 2):
        is_rows = [r for b in is_blocks for r in blocks[b]]
        oos_rows = [r for b in range(s) if b not in is_blocks for r in blocks[b]]

        def sr(rows: list[int], j: int) -> float:
            xs = [float(panel[r, j]) for r in rows]
            return statistics.mean(xs) / statistics.stdev(xs)

        is_sr = [sr(is_rows, j) for j in range(n)]
        winner = is_sr.index(max(is_sr))
        oos = [sr(oos_rows, j) for j in range(n)]
        rank = 1 + sum(o < oos[winner] for o in oos)
        omega = rank / (n + 1)
        expected.append(math.log(omega / (1 - omega)))
    result = probability_of_backtest_overfitting(panel, n_partitions=4)
    assert result.n_combinations == math.comb(4, 2) == 6
    assert result.logits.tolist() == pytest.approx(expected, rel=1e-9)
    assert result.pbo == sum(x <= 0 for x in expected) / 6


@pytest.mark.parametrize("s", [2, 4, 6, 8, 10, 16])
def test_pbo_number_of_combinations(s: int) -> None:
    panel = np.random.default_rng(s).normal(size=(64, 3))
    result = probability_of_backtest_overfitting(panel, n_partitions=s)
    assert result.n_combinations == math.comb(s, s // 2) == result.logits.size


def test_pbo_pure_noise_is_near_one_half() -> None:
    # N identical-law noise trials: the IS winner's OOS rank is uniform, so P(λ ≤ 0) = 1/2.
    # One panel's PBO is noisy (its combinations share data), so average over seeds.
    pbos = [
        probability_of_backtest_overfitting(
            np.random.default_rng(seed).normal(0.0, 0.01, (240, 20)), n_partitions=10
        ).pbo
        for seed in range(30)
    ]
    assert 0.3 <= statistics.mean(pbos) <= 0.7


def test_pbo_real_edge_is_near_zero() -> None:
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        panel = rng.normal(0.0, 0.01, (480, 20))
        panel[:, 7] += 0.005  # per-period SR ≈ 0.5 in every block
        result = probability_of_backtest_overfitting(panel)
        assert result.n_combinations == math.comb(16, 8) == 12870
        assert result.pbo < 0.1
        assert result.verdict.startswith("the in-sample winner stays above")


def test_pbo_uneven_blocks_use_all_rows() -> None:
    # T = 10, S = 4 → blocks of 3, 3, 2, 2 rows (numpy.array_split).
    rng = np.random.default_rng(5)
    panel = rng.normal(size=(10, 3))
    result = probability_of_backtest_overfitting(panel, n_partitions=4)
    bounds = [(0, 3), (3, 6), (6, 8), (8, 10)]
    is_rows = [r for b in (0, 1) for r in range(*bounds[b])]
    oos_rows = [r for b in (2, 3) for r in range(*bounds[b])]

    def sr(rows: list[int], j: int) -> float:
        xs = [float(panel[r, j]) for r in rows]
        return statistics.mean(xs) / statistics.stdev(xs)

    winner = max(range(3), key=lambda j: sr(is_rows, j))
    oos = [sr(oos_rows, j) for j in range(3)]
    rank = 1 + sum(o < oos[winner] for o in oos)
    assert result.logits[0] == pytest.approx(math.log(rank / (4 - rank)))


def test_pbo_ties_share_the_average_rank() -> None:
    # Identical trials: the IS winner (first) ties with everyone OOS → rank (N+1)/2, ω = 1/2,
    # λ = 0, counted as overfit.
    result = probability_of_backtest_overfitting(np.tile([[0.01], [0.02]], (4, 3)), 4)
    assert result.logits.tolist() == [0.0] * 6
    assert result.pbo == 1.0


def test_pbo_constant_columns() -> None:
    # A constant positive return has infinite Sharpe ratio and wins everywhere; a flat one is 0.
    rng = np.random.default_rng(2)
    panel = rng.normal(0.0, 0.01, (8, 3))
    panel[:, 0] = 0.0
    panel[:, 1] = 0.001
    result = probability_of_backtest_overfitting(panel, 2)
    assert result.logits.tolist() == pytest.approx([math.log(3)] * 2)
    assert result.pbo == 0.0


def test_pbo_verdict_bands() -> None:
    high = probability_of_backtest_overfitting(np.tile([[0.01], [0.02]], (4, 3)), 4)
    assert "overfit" in high.verdict and "100%" in high.verdict


# ---------------------------------------------------------------------------------------------
# Input errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (
            {"performance": np.zeros((8, 3)) + np.arange(8)[:, None], "n_partitions": 3},
            "n_partitions",
        ),
        ({"performance": np.ones((8, 3)), "n_partitions": 0}, "n_partitions"),
        ({"performance": np.ones((8, 3)), "n_partitions": 2.0}, "n_partitions"),
        ({"performance": np.ones((8, 3)), "n_partitions": True}, "n_partitions"),
        ({"performance": np.ones((6, 3)), "n_partitions": 8}, "performance"),
        ({"performance": np.ones((3, 3)), "n_partitions": 2}, "performance"),
        ({"performance": np.ones((8, 1)), "n_partitions": 2}, "performance"),
        ({"performance": np.ones(8), "n_partitions": 2}, "performance"),
        ({"performance": [[1.0, math.nan]] * 8, "n_partitions": 2}, "performance"),
        ({"performance": [[1.0, math.inf]] * 8, "n_partitions": 2}, "performance"),
        ({"performance": [["a", "b"]] * 8, "n_partitions": 2}, "performance"),
    ],
)
def test_pbo_input_errors(kwargs: dict, field: str) -> None:
    with pytest.raises(OverfittingInputError) as info:
        probability_of_backtest_overfitting(**kwargs)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("returns", "field"),
    [
        ([0.01], "returns"),
        ([0.01, 0.01, 0.01], "returns"),
        ([0.01, math.nan, 0.02], "returns"),
        ([[0.01, 0.02], [0.03, 0.04]], "returns"),
    ],
)
def test_psr_input_errors(returns: list, field: str) -> None:
    with pytest.raises(OverfittingInputError) as info:
        probabilistic_sharpe_ratio(returns)
    assert info.value.field == field


def test_other_input_errors() -> None:
    with pytest.raises(OverfittingInputError, match="benchmark_sr"):
        probabilistic_sharpe_ratio(SERIES, math.nan)
    with pytest.raises(OverfittingInputError, match="n_trials"):
        expected_max_sharpe(1, 1.0)
    with pytest.raises(OverfittingInputError, match="sr_variance"):
        expected_max_sharpe(10, -0.1)
    with pytest.raises(OverfittingInputError, match="trial_sharpes"):
        deflated_sharpe_ratio(SERIES, [0.1])
    with pytest.raises(OverfittingInputError, match="kurtosis"):
        probabilistic_sharpe_ratio_from_moments(0.1, 100, 0.0, 0.0)  # excess kurtosis by mistake
    with pytest.raises(OverfittingInputError, match="n_obs"):
        probabilistic_sharpe_ratio_from_moments(0.1, 1)

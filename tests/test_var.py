"""Value-at-Risk and Expected Shortfall (tradeloom.risk.var).

Historical figures are checked against sorted lists written out by hand; parametric figures
against the closed form evaluated here from the sample mean and standard deviation (standard
library ``statistics``, not numpy) and against published constants of the normal law.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloom.risk.var import (
    VarInputError,
    VarResult,
    historical_var,
    incremental_var,
    parametric_var,
    portfolio_returns,
    portfolio_var,
)

# Φ⁻¹(c) and φ(Φ⁻¹(c)) / (1 − c), to ten significant digits.
Z_99, ES_FACTOR_99 = 2.326347874, 2.665214220
Z_95, ES_FACTOR_95 = 1.644853627, 2.062712807

# Ten one-bar P&Ls; sorted: -12, -7, -2, -1, 0, 1, 2, 3, 4, 5.
SMALL_PNL = [3.0, -7.0, 1.0, 4.0, -2.0, 0.0, 5.0, -12.0, 2.0, -1.0]


def standardised(n: int, seed: int = 7) -> np.ndarray:
    """``n`` normal draws rescaled to sample mean 0 and sample std (ddof=1) exactly 1."""
    x = np.random.default_rng(seed).standard_normal(n)
    return (x - x.mean()) / x.std(ddof=1)


def random_walk(n: int, start: float, scale: float, seed: int) -> np.ndarray:
    return start + np.cumsum(np.random.default_rng(seed).normal(0.0, scale, n))


# ---------------------------------------------------------------------------------------------
# portfolio_returns
# ---------------------------------------------------------------------------------------------


def test_portfolio_returns_long_and_short_by_hand():
    prices = {"A": np.array([100.0, 101.0, 99.0, 102.0]), "B": np.array([50.0, 49.0, 49.5, 48.0])}
    # ΔA = [1, -2, 3], ΔB = [-1, 0.5, -1.5]; pnl = 10·ΔA − 20·ΔB.
    pnl = portfolio_returns(prices, {"A": 10.0, "B": -20.0})
    assert pnl.tolist() == [30.0, -30.0, 60.0]
    assert portfolio_returns(prices, {"A": 10.0}).tolist() == [10.0, -20.0, 30.0]
    assert portfolio_returns(prices, {"B": -20.0}).tolist() == [20.0, -10.0, 30.0]


def test_portfolio_returns_flat_book_and_unheld_symbols():
    prices = {"A": np.array([1.0, 2.0, 4.0]), "X": np.array([np.nan, np.nan, 3.0])}
    # X is priced but not held: its missing closes do not matter.
    assert portfolio_returns(prices, {"A": 1.0, "X": 0.0}).tolist() == [1.0, 2.0]
    assert portfolio_returns(prices, {}).tolist() == [0.0, 0.0]
    assert portfolio_returns({"A": [5.0]}, {"A": 1.0}).size == 0


# ---------------------------------------------------------------------------------------------
# historical_var
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidence", "var", "es"),
    [
        (0.9, 12.0, 12.0),  # k = ⌈0.1·10⌉ = 1: the worst, -12
        (0.8, 7.0, 9.5),  # k = 2: -7; ES = (12 + 7) / 2
        (0.7, 2.0, 7.0),  # k = 3: -2; ES = (12 + 7 + 2) / 3
        (0.6, 1.0, 5.5),  # k = 4: -1; ES = (12 + 7 + 2 + 1) / 4
    ],
)
def test_historical_by_hand(confidence, var, es):
    r = historical_var(np.array(SMALL_PNL), confidence)
    assert r == VarResult(
        var=var, es=es, confidence=confidence, horizon=1, method="historical", observations=10
    )


def test_historical_horizon_uses_overlapping_sums():
    # Pairs: 3-7, -7+1, 1+4, 4-2, -2+0, 0+5, 5-12, -12+2, 2-1
    #      = -4,  -6,    5,   2,   -2,    5,   -7,   -10,   1   (9 samples)
    # sorted: -10, -7, -6, -4, -2, 1, 2, 5, 5
    r = historical_var(np.array(SMALL_PNL), 0.75, horizon=2)  # k = ⌈0.25·9⌉ = 3
    assert (r.var, r.es, r.observations, r.horizon) == (6.0, 23.0 / 3.0, 9, 2)
    r = historical_var(np.array(SMALL_PNL), 0.8, horizon=2)  # k = ⌈0.2·9⌉ = 2
    assert (r.var, r.es) == (7.0, 8.5)
    # Triples: 3-7+1, -7+1+4, 1+4-2, 4-2+0, -2+0+5, 0+5-12, 5-12+2, -12+2-1
    #        = -3,    -2,     3,     2,     3,     -7,     -5,     -11     (8 samples)
    # sorted: -11, -7, -5, -3, -2, 2, 3, 3
    r = historical_var(np.array(SMALL_PNL), 0.75, horizon=3)  # k = ⌈0.25·8⌉ = 2
    assert (r.var, r.es, r.observations) == (7.0, 9.0, 8)


def test_historical_quantile_is_not_pushed_by_binary_rounding():
    # 1 − 0.99 is 0.010000000000000009: 500 samples must give k = 5, not 6.
    pnl = np.arange(-250.0, 250.0)  # -250, -249, ..., 249
    r = historical_var(pnl, 0.99)
    assert (r.var, r.es) == (246.0, 248.0)  # 5th worst; mean of -250 … -246
    # Exactly ⌈1/(1−c)⌉ samples: the worst outcome.
    r = historical_var(np.arange(-50.0, 50.0), 0.99)
    assert (r.var, r.es, r.observations) == (50.0, 50.0, 100)
    r = historical_var(np.arange(1.0, 21.0), 0.95)  # 20 samples, all gains
    assert (r.var, r.es) == (-1.0, -1.0)


def test_flat_book_has_zero_var_not_minus_zero():
    for r in (historical_var(np.zeros(100)), parametric_var(np.zeros(100))):
        assert (r.var, r.es) == (0.0, 0.0)
        assert math.copysign(1.0, r.var) == 1.0


# ---------------------------------------------------------------------------------------------
# parametric_var
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidence", "z", "factor"), [(0.99, Z_99, ES_FACTOR_99), (0.95, Z_95, ES_FACTOR_95)]
)
def test_parametric_constants_on_standardised_pnl(confidence, z, factor):
    r = parametric_var(standardised(250), confidence)
    assert r.var == pytest.approx(z, abs=1e-9)
    assert r.es == pytest.approx(factor, abs=1e-9)
    assert (r.method, r.observations, r.horizon) == ("parametric", 250, 1)


@pytest.mark.parametrize(
    ("confidence", "z", "factor"), [(0.99, Z_99, ES_FACTOR_99), (0.95, Z_95, ES_FACTOR_95)]
)
def test_parametric_closed_form_on_normal_pnl(confidence, z, factor):
    pnl = np.random.default_rng(11).normal(5.0, 100.0, 2000)
    mu = statistics.fmean(pnl.tolist())
    sigma = statistics.stdev(pnl.tolist())
    r = parametric_var(pnl, confidence)
    assert r.var == pytest.approx(-(mu - z * sigma), rel=1e-9)
    assert r.es == pytest.approx(-(mu - sigma * factor), rel=1e-9)
    # Sample close to the population: VaR ≈ −(5 − z·100).
    assert r.var == pytest.approx(-(5.0 - z * 100.0), rel=0.05)


def test_parametric_by_hand_on_four_numbers():
    pnl = np.array([10.0, -10.0, 30.0, -10.0])  # μ = 5, Σ(x−μ)² = 25+225+625+225 = 1100
    sigma = math.sqrt(1100.0 / 3.0)
    r = parametric_var(pnl, 0.99)
    assert r.var == pytest.approx(-(5.0 - Z_99 * sigma), rel=1e-9)
    assert r.es == pytest.approx(-(5.0 - ES_FACTOR_99 * sigma), rel=1e-9)


def test_parametric_horizon_scales_mean_by_h_and_std_by_sqrt_h():
    pnl = np.random.default_rng(3).normal(2.0, 50.0, 500)
    mu, sigma = statistics.fmean(pnl.tolist()), statistics.stdev(pnl.tolist())
    for h in (1, 4, 10):
        r = parametric_var(pnl, 0.99, horizon=h)
        assert r.var == pytest.approx(-(mu * h - Z_99 * sigma * math.sqrt(h)), rel=1e-9)
        assert r.es == pytest.approx(-(mu * h - ES_FACTOR_99 * sigma * math.sqrt(h)), rel=1e-9)
        assert r.horizon == h and r.observations == 500
    # Zero mean: the 4-bar figure is exactly twice the 1-bar one (√4 = 2).
    x = standardised(300)
    x -= x.mean()
    one, four = parametric_var(x, 0.95), parametric_var(x, 0.95, horizon=4)
    assert four.var == pytest.approx(2.0 * one.var, rel=1e-12)
    assert four.es == pytest.approx(2.0 * one.es, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# portfolio_var and incremental_var
# ---------------------------------------------------------------------------------------------


def test_portfolio_var_matches_the_pnl_functions_and_window_keeps_the_last_bars():
    prices = {"A": random_walk(301, 100.0, 1.0, 1), "B": random_walk(301, 50.0, 0.7, 2)}
    qty = {"A": 100.0, "B": -40.0}
    pnl = portfolio_returns(prices, qty)
    assert portfolio_var(prices, qty) == historical_var(pnl)
    assert portfolio_var(prices, qty, method="parametric", confidence=0.95, horizon=5) == (
        parametric_var(pnl, 0.95, 5)
    )
    w = portfolio_var(prices, qty, window=120, confidence=0.95)
    assert w == historical_var(pnl[-120:], 0.95)
    assert w.observations == 120
    # Changing anything before the window leaves the result unchanged.
    early = {s: p.copy() for s, p in prices.items()}
    early["A"][:150] += 1000.0 * np.arange(150)
    assert portfolio_var(early, qty, window=120, confidence=0.95) == w
    # A window longer than the history uses all of it.
    assert portfolio_var(prices, qty, window=10_000).observations == 300


@pytest.mark.parametrize("method", ["historical", "parametric"])
def test_incremental_var_of_hedges_is_lower(method):
    a = random_walk(401, 100.0, 1.0, 5)
    b = a + np.random.default_rng(6).normal(0.0, 0.1, 401)  # tracks A closely
    prices = {"A": a, "B": b}
    # Selling half of the position in the same instrument halves the risk.
    before, after = incremental_var(prices, {"A": 100.0}, "A", -50.0, method=method)
    assert after.var < before.var
    assert after.var == pytest.approx(before.var / 2.0, rel=1e-9)
    # A short in a closely correlated instrument cross-hedges most of it.
    before, after = incremental_var(prices, {"A": 100.0}, "B", -100.0, method=method)
    assert before == portfolio_var(prices, {"A": 100.0}, method=method)
    assert after == portfolio_var(prices, {"A": 100.0, "B": -100.0}, method=method)
    assert after.var < 0.5 * before.var


def test_incremental_var_of_doubling_is_exactly_double_for_zero_mean_parametric():
    diffs = np.array([1.0, -1.0, 2.5, -2.5, 0.5, -0.5, 4.0, -4.0] * 10)  # sums to 0
    prices = {"A": np.concatenate([[100.0], 100.0 + np.cumsum(diffs)])}
    before, after = incremental_var(prices, {"A": 3.0}, "A", 3.0, method="parametric")
    assert after.var == 2.0 * before.var
    assert after.es == 2.0 * before.es
    assert before.var == pytest.approx(Z_99 * 3.0 * statistics.stdev(diffs.tolist()), rel=1e-9)
    # A new position in an unheld symbol starts from zero.
    before, after = incremental_var(prices, {}, "A", -3.0, method="parametric")
    assert before.var == 0.0
    assert after.var == pytest.approx(Z_99 * 3.0 * statistics.stdev(diffs.tolist()), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

GOOD = np.random.default_rng(0).normal(0.0, 1.0, 200)


@pytest.mark.parametrize("fn", [historical_var, parametric_var])
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"pnl": np.array([1.0, np.nan, 2.0] * 50)}, "pnl"),
        ({"pnl": np.array([1.0, np.inf] * 100)}, "pnl"),
        ({"pnl": np.ones((100, 2))}, "pnl"),
        ({"confidence": 0.5}, "confidence"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 99}, "confidence"),
        ({"confidence": 0.01}, "confidence"),
        ({"confidence": float("nan")}, "confidence"),
        ({"confidence": "0.99"}, "confidence"),
        ({"horizon": 0}, "horizon"),
        ({"horizon": -3}, "horizon"),
        ({"horizon": 1.5}, "horizon"),
        ({"horizon": True}, "horizon"),
    ],
)
def test_invalid_arguments(fn, kwargs, field):
    args = {"pnl": GOOD, "confidence": 0.99, "horizon": 1} | kwargs
    with pytest.raises(ValueError, match=rf"^{field}: ") as info:
        fn(**args)
    assert isinstance(info.value, VarInputError)
    assert info.value.field == field


def test_too_few_observations():
    with pytest.raises(VarInputError, match=r"pnl: 99 one-bar .* needs at least 100") as info:
        historical_var(np.zeros(99), 0.99)
    assert "method='parametric'" in str(info.value)
    historical_var(np.zeros(100), 0.99)  # exactly enough
    # The horizon eats samples: 100 one-bar P&Ls give 91 ten-bar ones.
    with pytest.raises(VarInputError, match="give 91 sample"):
        historical_var(np.zeros(100), 0.99, horizon=10)
    with pytest.raises(VarInputError, match="give 0 sample"):
        historical_var(np.zeros(5), 0.95, horizon=10)
    with pytest.raises(VarInputError, match="needs at least 20"):
        historical_var(np.zeros(19), 0.95)
    with pytest.raises(VarInputError, match="parametric VaR needs at least 2"):
        parametric_var(np.array([1.0]))
    with pytest.raises(VarInputError, match="pnl"):
        historical_var(np.array([]), 0.9)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: portfolio_returns({}, {"A": 1.0}), "prices"),
        (lambda: portfolio_returns({"A": [1.0, 2.0], "B": [1.0]}, {}), "prices['B']"),
        (lambda: portfolio_returns({"A": [[1.0, 2.0]]}, {}), "prices['A']"),
        (lambda: portfolio_returns({"A": [1.0, 2.0]}, {"Z": 1.0}), "quantities['Z']"),
        (lambda: portfolio_returns({"A": [1.0, 2.0]}, {"A": float("nan")}), "quantities['A']"),
        (lambda: portfolio_returns({"A": [1.0, np.nan, 2.0]}, {"A": 1.0}), "prices['A']"),
        (lambda: portfolio_var({"A": GOOD}, {"A": 1.0}, method="monte-carlo"), "method"),
        (lambda: portfolio_var({"A": GOOD}, {"A": 1.0}, window=0), "window"),
        (lambda: portfolio_var({"A": GOOD}, {"A": 1.0}, window=2.5), "window"),
        (lambda: incremental_var({"A": GOOD}, {"A": 1.0}, "B", 1.0), "order_symbol"),
        (lambda: incremental_var({"A": GOOD}, {"A": 1.0}, "A", float("inf")), "order_qty_signed"),
    ],
)
def test_invalid_portfolio_arguments(call, field):
    with pytest.raises(VarInputError) as info:
        call()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

finite_pnl = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
confidences = st.sampled_from([0.8, 0.9, 0.95, 0.975])
methods = st.sampled_from(["historical", "parametric"])


@given(st.lists(finite_pnl, min_size=60, max_size=200), confidences, st.integers(1, 5))
def test_es_is_at_least_var(pnl, confidence, horizon):
    x = np.array(pnl)
    for r in (historical_var(x, confidence, horizon), parametric_var(x, confidence, horizon)):
        assert r.es >= r.var
        assert math.isfinite(r.var) and math.isfinite(r.es)


@settings(deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.floats(-100.0, 100.0),
    st.floats(-100.0, 100.0),
    st.floats(0.01, 100.0),
    confidences,
    st.integers(1, 5),
    methods,
)
def test_var_is_positively_homogeneous(seed, qa, qb, k, confidence, horizon, method):
    rng = np.random.default_rng(seed)
    prices = {
        "A": 100.0 + np.cumsum(rng.normal(0.0, 1.0, 120)),
        "B": 40.0 + np.cumsum(rng.normal(0.1, 0.5, 120)),
    }
    kw = {"method": method, "confidence": confidence, "horizon": horizon}
    base = portfolio_var(prices, {"A": qa, "B": qb}, **kw)
    scaled = portfolio_var(prices, {"A": k * qa, "B": k * qb}, **kw)
    scale = k * (abs(qa) + abs(qb)) * horizon * 10.0  # the size of a typical P&L
    assert scaled.var == pytest.approx(k * base.var, rel=1e-9, abs=1e-9 * scale + 1e-12)
    assert scaled.es == pytest.approx(k * base.es, rel=1e-9, abs=1e-9 * scale + 1e-12)
    assert scaled.es >= scaled.var

"""``tradeloom stress`` and :func:`tradeloom.research.stress_run.run_stress`.

The deployment is IBM in the first half of 2010 (bundled data), ``sma-crossover`` 5/20 long/short
with a fixed 10 units: 124 daily bars, 9 fills. Its position, read from the backtest::

    2010-03-17 .. 2010-04-12   long 10   (no fill in between; close on 2010-03-25: 129.24)
    2010-05-04 .. 2010-05-14   short 10  (close on 2010-05-06: 123.92)
    2010-04-13 sell 20 (long → short), 2010-04-15 buy 20 (short → long); volumes ≈ 4–15 M

so a gap on a bar with no fill moves that bar's equity by exactly ``position × close × pct``.
"""

from __future__ import annotations

import json
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradeloom.api import run_deployment
from tradeloom.cli.main import main
from tradeloom.config import load_deployment
from tradeloom.errors import ConfigError
from tradeloom.plugins import PluginHost
from tradeloom.report.stress_html import render_stress_html, stress_figures, stress_section
from tradeloom.research.stress import trade_resampling
from tradeloom.research.stress_run import (
    BootstrapOutcome,
    BootstrapSpec,
    GapSpec,
    InjectedOutcome,
    LiquiditySpec,
    ResampleOutcome,
    ResampleSpec,
    VolatilitySpec,
    load_scenarios,
    run_stress,
    select_scenarios,
)

from helpers import IBM_DEPLOYMENT


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stress") / "ibm.toml"
    path.write_text(
        IBM_DEPLOYMENT.replace("quantity = 10 }", 'quantity = 10, direction = "long_short" }')
    )
    return path


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost()


@pytest.fixture(scope="module")
def resolved(config: Path, host: PluginHost):  # type: ignore[no-untyped-def]
    return load_deployment([config], host=host)


@pytest.fixture(scope="module")
def baseline(resolved, host):  # type: ignore[no-untyped-def]
    return run_deployment(resolved, host)


def _utc(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


# --- the runner ----------------------------------------------------------------------------------


def test_baseline_is_the_deployments_backtest(resolved, baseline) -> None:  # type: ignore[no-untyped-def]
    report = run_stress(resolved, {"gap": GapSpec(at=_utc("2010-03-25"))})
    pd.testing.assert_frame_equal(report.baseline.equity, baseline.equity)
    pd.testing.assert_frame_equal(report.baseline.trades, baseline.trades)
    assert len(baseline.equity) == 124 and len(baseline.fills) == 9


def test_same_seed_same_numbers_other_seed_other_numbers(resolved) -> None:  # type: ignore[no-untyped-def]
    a = run_stress(resolved, ["resample", "bootstrap"], seed=7, n_paths=300)
    b = run_stress(resolved, ["resample", "bootstrap"], seed=7, n_paths=300)
    c = run_stress(resolved, ["resample", "bootstrap"], seed=8, n_paths=300)
    assert a.to_json() == b.to_json()
    for name in ("resample", "bootstrap"):
        pd.testing.assert_frame_equal(a[name].frame(), b[name].frame())
        assert not a[name].frame().equals(c[name].frame())
    assert a.to_json() != c.to_json()


def test_resample_draws_are_trade_resampling_with_the_named_seed(resolved, baseline) -> None:  # type: ignore[no-untyped-def]
    # 2,500 paths are simulated in chunks of 1,000 (for the progress bar): the same draws as
    # one call with the generator seeded by [seed, crc32(name)].
    spec = ResampleSpec(loss_pct=0.5)
    report = run_stress(resolved, {"mc": spec}, seed=3, n_paths=2_500)
    outcome = report["mc"]
    assert isinstance(outcome, ResampleOutcome)
    pnls = baseline.trades["pnl"].to_numpy(dtype=float)
    rng = np.random.default_rng([3, zlib.crc32(b"mc")])
    direct = trade_resampling(
        pnls, 100_000.0, n_paths=2_500, seed=rng, loss_threshold=0.005, replace=True
    )
    r = outcome.result
    np.testing.assert_array_equal(r.max_drawdown, direct.max_drawdown)
    np.testing.assert_array_equal(r.final_return, direct.final_return)
    assert r.drawdown_percentiles == direct.drawdown_percentiles
    assert r.return_percentiles == direct.return_percentiles
    assert r.p_loss == direct.p_loss == np.mean(r.final_return < -0.005)
    assert r.original_drawdown_percentile == direct.original_drawdown_percentile
    assert outcome.trades_return == pytest.approx(pnls.sum() / 100_000.0, abs=1e-15)


def test_resample_by_permutation_keeps_the_final_return(resolved, baseline) -> None:  # type: ignore[no-untyped-def]
    report = run_stress(resolved, {"perm": ResampleSpec(replace=False, loss_pct=0)}, n_paths=500)
    r = report["perm"].result  # type: ignore[union-attr]
    pnls = baseline.trades["pnl"].to_numpy(dtype=float)
    np.testing.assert_allclose(r.final_return, pnls.sum() / 100_000.0, rtol=0, atol=1e-12)
    assert r.p_loss == (1.0 if pnls.sum() < 0 else 0.0)  # "any loss": all paths or none
    curve = 100_000.0 + np.concatenate(([0.0], np.cumsum(pnls)))
    peak = np.maximum.accumulate(curve)
    assert r.original_max_drawdown == pytest.approx(np.max((peak - curve) / peak), abs=1e-15)
    assert r.drawdown_percentiles[5] <= r.original_max_drawdown <= r.drawdown_percentiles[95]


def test_bootstrap_backtest_column_is_the_baselines_metrics(resolved, baseline) -> None:  # type: ignore[no-untyped-def]
    spec = BootstrapSpec(block=5, method="moving")
    report = run_stress(resolved, {"bootstrap": spec}, seed=1, n_paths=400)
    outcome = report["bootstrap"]
    assert isinstance(outcome, BootstrapOutcome)
    assert outcome.stats.n_paths == 400 and outcome.n_bars == 124
    assert outcome.backtest["total_return"] == pytest.approx(baseline.metrics.total_return)
    assert outcome.backtest["sharpe"] == pytest.approx(baseline.metrics.sharpe)
    assert outcome.backtest["max_drawdown"] == pytest.approx(-baseline.metrics.max_drawdown)
    s = outcome.stats
    assert s.total_return[5] < s.total_return[50] < s.total_return[95]
    # The fan: ordered bands; the last point of each is that percentile of the final equity.
    bands = np.vstack([outcome.fan[p] for p in (5, 25, 50, 75, 95)])
    assert np.all(np.diff(bands, axis=0) >= 0)
    assert outcome.fan_times[-1] == baseline.equity.index[-1]
    final = 100_000.0 * (1.0 + s.total_returns)
    assert outcome.fan[50][-1] == pytest.approx(np.percentile(final, 50), rel=1e-12)


@pytest.mark.parametrize(
    ("day", "position", "close"),
    [
        ("2010-03-25", 10.0, 129.24),  # long: a 10 % gap down costs 10 × 129.24 × 0.1
        ("2010-05-06", -10.0, 123.92),  # short: it earns 10 × 123.92 × 0.1
    ],
)
def test_gap_moves_the_equity_of_a_held_position_by_hand(  # type: ignore[no-untyped-def]
    resolved, baseline, day: str, position: float, close: float
) -> None:
    report = run_stress(resolved, {"crash": GapSpec(at=_utc(day), pct=-10)})
    outcome = report["crash"]
    assert isinstance(outcome, InjectedOutcome)
    assert outcome.applied == {"at": f"{day}T00:00:00+00:00", "symbols": ["IBM"]}
    before = baseline.equity["equity"]
    after = outcome.result.equity["equity"]
    j = before.index.get_loc(_utc(day))
    assert (after.iloc[:j] == before.iloc[:j]).all()  # nothing changes before the gap
    expected = position * close * -0.10  # -129.24 for the long, +123.92 for the short
    assert after.iloc[j] - before.iloc[j] == pytest.approx(expected, abs=1e-6)
    assert before.iloc[j] - baseline.equity["cash"].iloc[j] == pytest.approx(position * close)


def test_volatility_widens_the_returns_in_the_window(resolved, baseline) -> None:  # type: ignore[no-untyped-def]
    # Long 10 from 2010-03-17 to 2010-04-12: each bar's equity change is 10 × the close change,
    # and the close changes grow about k-fold when the log returns are multiplied by k.
    spec = VolatilitySpec(start=_utc("2010-03-18"), end=_utc("2010-04-12"), k=3)
    report = run_stress(resolved, {"vol": spec})
    outcome = report["vol"]
    assert isinstance(outcome, InjectedOutcome)
    before = baseline.equity["equity"]
    after = outcome.result.equity["equity"]
    start = before.index.get_loc(_utc("2010-03-18"))
    end = before.index.get_loc(_utc("2010-04-12"))
    assert (after.iloc[:start] == before.iloc[:start]).all()
    calm = before.diff().iloc[start : end + 1].std()
    wild = after.diff().iloc[start : end + 1].std()
    assert wild > 2.5 * calm
    m = outcome.metrics()
    assert m["scenario"]["annual_volatility"] > m["reference"]["annual_volatility"]


def test_liquidity_caps_fills_at_the_fraction_of_volume(resolved) -> None:  # type: ignore[no-untyped-def]
    # Volume × 5e-6 in April (≈ 20–75 units left of 4–15 M), 10 % of it fillable (the default
    # participation, added because the deployment has none): 2–8 units a bar, so the
    # 20-unit flips of 2010-04-13 and 04-15 must fill in parts.
    start, end = _utc("2010-04-01"), _utc("2010-04-30")
    spec = LiquiditySpec(start=start, end=end, fraction=5e-6)
    report = run_stress(resolved, {"drought": spec})
    outcome = report["drought"]
    assert isinstance(outcome, InjectedOutcome)
    assert outcome.applied["max_participation"] == 0.1
    assert outcome.reference_label == "baseline + volume-participation 0.1"
    volume = resolved.data.build().load(start, end).frames["IBM"]["volume"]
    fills = outcome.result.fills
    inside = fills[(fills["time"] >= start) & (fills["time"] <= end)]
    per_bar = inside.groupby("time")["quantity"].sum()
    cap = 0.1 * 5e-6 * volume.reindex(per_bar.index)
    assert len(per_bar) >= 3
    assert (per_bar <= cap * (1 + 1e-12)).all()
    assert np.isclose(per_bar, cap, rtol=1e-12).any()  # the cap binds
    assert outcome.fills["cap"] == pytest.approx(5e-7)
    assert outcome.fills["max_share"] == pytest.approx(5e-7, rel=1e-12)
    assert outcome.fills["split_orders"]["reference"] == 0
    assert outcome.fills["split_orders"]["scenario"] >= 1
    ref = outcome.reference.fills
    assert ref[(ref["time"] >= start) & (ref["time"] <= end)]["quantity"].max() == 20


def test_liquidity_uses_the_deployments_own_participation(config: Path, host) -> None:  # type: ignore[no-untyped-def]
    own = load_deployment(
        [config],
        ['fill_models=[{type = "volume-participation", params = {max_participation = 0.5}}]'],
        host=host,
    )
    spec = LiquiditySpec(start=_utc("2010-04-01"), end=_utc("2010-04-30"), fraction=1e-6)
    outcome = run_stress(own, {"drought": spec})["drought"]
    assert isinstance(outcome, InjectedOutcome)
    assert outcome.reference_label == "baseline"
    assert outcome.applied["max_participation"] == 0.5
    assert outcome.fills["cap"] == pytest.approx(5e-7)
    assert outcome.fills["max_share"] <= 5e-7 * (1 + 1e-12)


def test_a_gap_outside_the_data_names_the_field(resolved) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        run_stress(resolved, {"crash": GapSpec(at=_utc("2012-01-02"))})
    assert info.value.path == "scenarios.crash.at"
    assert "2010-06-30" in str(info.value)


def test_a_trade_free_baseline_skips_resampling(config: Path, host) -> None:  # type: ignore[no-untyped-def]
    flat = load_deployment([config], ["run.end=2010-01-20"], host=host)
    report = run_stress(flat, ["resample"])
    assert report["resample"].to_dict() == {
        "type": "resample",
        "skipped": "the baseline closed no trades to resample",
    }


# --- scenario files ------------------------------------------------------------------------------


def test_scenario_file_defines_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        textwrap.dedent(
            """
            [scenarios.crash]
            type = "gap"
            at = 2010-03-25
            pct = -20

            [scenarios.resample]   # a built-in name: type may be left out
            loss_pct = 5
            paths = 50
            """
        )
    )
    defined = load_scenarios(path)
    assert defined["crash"] == GapSpec(at=_utc("2010-03-25"), pct=-20)
    assert defined["resample"] == ResampleSpec(loss_pct=5, paths=50)
    assert list(select_scenarios(None, defined)) == ["crash", "resample"]
    chosen = select_scenarios(["bootstrap", "resample"], defined)
    assert chosen == {"bootstrap": BootstrapSpec(), "resample": ResampleSpec(loss_pct=5, paths=50)}
    assert list(select_scenarios(None)) == ["resample", "bootstrap"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('type = "gap"\npct = -150', "scenarios.crash.pct: a gap in percent, greater than -100"),
        ('type = "gapp"', "scenarios.crash.type: unknown scenario type 'gapp'; choose one of"),
        (
            'type = "gap"\npcnt = -5',
            "scenarios.crash.pcnt: unknown key; valid keys: type, at, pct, symbols",
        ),
        ('type = "gap"\nat = "soon"', "scenarios.crash.at: not a valid date or datetime"),
        ("pct = -5", "scenarios.crash.type: missing; say what the scenario does"),
        (
            'type = "volatility"\nstart = 2010-05-01\nend = 2010-04-01',
            "scenarios.crash.end: the window ends before it starts",
        ),
    ],
)
def test_a_bad_scenario_file_is_one_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: Path, body: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[scenarios.crash]\n{body}\n")
    code = main(["stress", str(config), "--scenarios", str(path), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: {expected}")
    assert str(path) in err
    assert not (tmp_path / "o").exists()


def test_an_unknown_scenario_name_lists_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    assert main(["stress", str(config), "--scenario", "crash", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: --scenario: unknown scenario 'crash'; choose one of resample, bootstrap, gap, "
        "volatility, liquidity (or define it in a file given with --scenarios)"
    )


# --- the command ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory, config: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("stress-cli")
    scenarios = root / "scenarios.toml"
    scenarios.write_text('[scenarios.crash]\ntype = "gap"\nat = 2010-03-25\npct = -10\n')
    outs = root / "first", root / "second"
    for out in outs:
        args = ["stress", str(config), "--scenarios", str(scenarios), "--scenario", "resample"]
        args += ["--scenario", "bootstrap", "--scenario", "crash", "--paths", "200"]
        assert main([*args, "--seed", "5", "--out", str(out)]) == 0
    return outs


def test_the_command_writes_its_files(cli_runs: tuple[Path, Path]) -> None:
    out = cli_runs[0]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bootstrap.csv", "crash.csv", "resample.csv", "stress.html", "stress.json"]
    data = json.loads((out / "stress.json").read_text())
    assert list(data["scenarios"]) == ["resample", "bootstrap", "crash"]
    assert data["seed"] == 5 and data["percentiles"] == [5, 25, 50, 75, 95]
    assert data["scenarios"]["resample"]["paths"] == 200
    crash = data["scenarios"]["crash"]["metrics"]
    assert crash["reference"]["total_return"] == data["baseline"]["total_return"]
    resample = pd.read_csv(out / "resample.csv")
    assert len(resample) == 200
    assert np.percentile(resample["max_drawdown"], 50) == pytest.approx(
        data["scenarios"]["resample"]["max_drawdown"]["50"], rel=1e-9
    )
    assert len(pd.read_csv(out / "bootstrap.csv")) == 200
    equity = pd.read_csv(out / "crash.csv")
    assert list(equity.columns) == ["ts", "reference_equity", "scenario_equity"]
    row = equity[equity["ts"].str.startswith("2010-03-25")].iloc[0]
    assert row["scenario_equity"] - row["reference_equity"] == pytest.approx(-129.24, abs=1e-6)
    page = (out / "stress.html").read_text()
    for div in ("stress-resample-drawdown", "stress-resample-return", "stress-bootstrap-fan"):
        assert f'id="{div}"' in page
    assert 'id="stress-crash-equity"' in page
    assert page.count("<script") < 20 and "https://" not in page.split("<body>")[1][:5000]


def test_the_command_is_deterministic(cli_runs: tuple[Path, Path]) -> None:
    first, second = cli_runs
    for name in ("stress.json", "resample.csv", "bootstrap.csv", "crash.csv", "stress.html"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_json_flag_prints_stress_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    args = ["stress", str(config), "--scenario", "resample", "--paths", "50", "--json"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == json.loads((tmp_path / "stress.json").read_text())


def test_the_section_embeds_without_plotly_js(resolved) -> None:  # type: ignore[no-untyped-def]
    report = run_stress(resolved, ["resample", "bootstrap"], n_paths=100)
    section = stress_section(report)
    assert section.startswith('<section id="stress">') and section.endswith("</section>")
    assert set(stress_figures(report)) == {
        "stress-resample-drawdown",
        "stress-resample-return",
        "stress-bootstrap-fan",
    }
    for div in stress_figures(report):
        assert f'id="{div}"' in section
    page = render_stress_html(report)
    assert len(section) < 200_000 < len(page)  # plotly.js is in the page, not the section
    assert section in page

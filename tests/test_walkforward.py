"""``tradeloom.research.walkforward`` and the ``optimize`` / ``walkforward`` / ``studies``
commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from research_strategies import market, resolved

from tradeloom.cli.main import main
from tradeloom.errors import ConfigError
from tradeloom.research.space import WalkForwardSettings, parse_space
from tradeloom.research.walkforward import plan_folds, walk_forward
from tradeloom.vector import run_signals

EXAMPLES = Path(__file__).parent.parent / "examples"
DAYS = pd.date_range("2001-01-01", periods=1000, freq="B", tz="UTC")


# --- folds ------------------------------------------------------------------------------------------


def test_rolling_folds_in_bars_tile_the_test_windows() -> None:
    folds = plan_folds(DAYS, WalkForwardSettings(train=300, test=100))
    assert len(folds) == 7  # 300 + 7 × 100 = 1000
    for k, f in enumerate(folds):
        assert f.train_start == DAYS[100 * k]
        assert f.train_end == f.test_start == DAYS[300 + 100 * k]
        assert (f.train_bars, f.test_bars) == (300, 100)
    assert folds[-1].test_end == DAYS[-1] + pd.Timedelta(1, "ns")  # exclusive, past the last bar


def test_anchored_folds_grow_and_a_short_last_window_is_kept() -> None:
    folds = plan_folds(DAYS, WalkForwardSettings(train=400, test=250, anchored=True))
    assert [(f.train_bars, f.test_bars) for f in folds] == [(400, 250), (650, 250), (900, 100)]
    assert all(f.train_start == DAYS[0] for f in folds)
    strict = plan_folds(DAYS, WalkForwardSettings(train=400, test=250, anchored=True,
                                                  min_test_bars=101))  # fmt: skip
    assert len(strict) == 2


def test_spans_follow_the_calendar_and_step_can_differ_from_test() -> None:
    folds = plan_folds(DAYS, WalkForwardSettings(train="1y", test="6m", step="3m"))
    first = folds[0]
    assert first.train_start == DAYS[0]
    assert first.test_start == DAYS[DAYS.searchsorted(DAYS[0] + pd.DateOffset(years=1))]
    assert first.test_end == DAYS[DAYS.searchsorted(first.test_start + pd.DateOffset(months=6))]
    assert folds[1].train_start == DAYS[DAYS.searchsorted(DAYS[0] + pd.DateOffset(months=3))]
    # overlapping test windows (step < test): each fold counts up to the next one's test start
    assert folds[1].test_start < folds[0].test_end


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [({"train": "3 years", "test": "1y"}, "cannot read '3 years'"),
     ({"train": 0, "test": "1y"}, "must be >= 1"),
     ({"train": "1y", "test": "1y", "window": 3}, "Extra inputs")],
)  # fmt: skip
def test_bad_windows_are_refused(settings: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        WalkForwardSettings(**settings)


def test_windows_longer_than_the_data_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="too few for train") as info:
        plan_folds(DAYS, WalkForwardSettings(train="5y", test="1y"))
    assert info.value.path == "walkforward.train"


# --- a walk-forward, checked against direct runs -----------------------------------------------------

SMA = """
[data]
type = "dataset"
params = { name = "sp500-daily" }

[strategy]
type = "sma-crossover"
params = { fast = 20, slow = 100, fraction = 0.95 }

[run]
start = "2004-01-01"
end = "2012-12-31"
"""

SMA_SPACE = {
    "params": {"fast": {"type": "int", "low": 5, "high": 40, "step": 5},
               "slow": {"type": "int", "low": 60, "high": 180, "step": 40}},
    "optimize": {"sampler": "grid", "partitions": 8},
}  # fmt: skip


def test_each_fold_trades_the_training_winner_and_the_stitched_curve_chains_them() -> None:
    deployment = resolved(SMA)
    space = parse_space(SMA_SPACE)
    result = walk_forward(deployment, space, WalkForwardSettings(train="3y", test="1y"))
    assert len(result.folds) == 6
    source = deployment.data.build()
    for fold in result.folds:
        search = fold.search
        assert search is not None and len(search.trials) == 32
        # the winner is the best Sharpe ratio of the fold's training window
        assert fold.selected == search.selected
        best = search.trials.sort_values(["value_sharpe", "number"], ascending=[False, True])
        assert fold.params == {"fast": int(best.iloc[0].fast), "slow": int(best.iloc[0].slow)}
        # its out-of-sample curve: the same params run from the training start, rebased at
        # the last close before the test window
        params = deployment.strategies[0].spec.cls.Params(
            **{**deployment.strategies[0].params.model_dump(), **fold.params}
        )
        direct = run_signals(
            source, deployment.strategies[0].spec.cls(params),
            broker_params=deployment.broker.params, start=fold.train_start,
            end=fold.test_end - pd.Timedelta(1, "ns"),
        )  # fmt: skip
        curve = direct.equity["equity"]
        base = curve[curve.index < fold.test_start].iloc[-1]
        expected = curve[curve.index >= fold.test_start] / base
        np.testing.assert_allclose(fold.oos_equity.to_numpy(), expected.to_numpy(), rtol=1e-12)
        assert fold.oos_metrics["total_return"] == pytest.approx(expected.iloc[-1] - 1.0)
    # stitched: the product of the folds' out-of-sample growth, from the initial cash
    growth = np.prod([f.oos_equity.iloc[-1] for f in result.folds])
    assert result.stitched.iloc[-1] == pytest.approx(100_000.0 * growth, rel=1e-12)
    assert result.stitched.index.is_monotonic_increasing and result.stitched.index.is_unique
    assert result.oos["total_return"] == pytest.approx(growth - 1.0, rel=1e-12)
    assert result.oos["trials"] == 6 * 32
    assert 0.0 <= result.oos["psr"] <= 1.0 and "out of sample" in result.oos["psr_verdict"]
    stability = result.stability.set_index("param")
    chosen = [f.params["fast"] for f in result.folds]
    assert json.loads(stability.loc["fast", "values"]) == chosen
    assert stability.loc["fast", "std"] == pytest.approx(np.std(chosen, ddof=1))


def test_a_planted_edge_survives_out_of_sample() -> None:
    space = parse_space({"params": {"seed": {"type": "int", "low": 0, "high": 39}},
                         "optimize": {"sampler": "grid", "partitions": 8}})  # fmt: skip
    data = market(1500, edge_seed=7, seed=4)
    deployment = resolved()
    from tradeloom.research import walkforward as wf

    original = wf.load_bars
    wf.load_bars = lambda _resolved: data  # the synthetic market instead of the dataset
    try:
        result = walk_forward(deployment, space, WalkForwardSettings(train=500, test=250))
    finally:
        wf.load_bars = original
    assert [f.params["seed"] for f in result.folds] == [7, 7, 7, 7]
    assert result.oos["sharpe"] > 2 and result.oos["psr"] > 0.99
    assert result.stability.set_index("param").loc["seed", "verdict"] == "stable"


# --- the commands ------------------------------------------------------------------------------------


def test_the_shipped_walkforward_example_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main([
        "walkforward", str(EXAMPLES / "walkforward-sp500.toml"),
        "--space", str(EXAMPLES / "walkforward-sp500.space.toml"),
        "--out", str(tmp_path), "--store", f"sqlite:///{tmp_path}/j.db",
    ])  # fmt: skip
    assert code == 0
    shown = capsys.readouterr().out
    assert "17 folds, 1700 trials" in shown and "PSR" in shown
    folds = pd.read_csv(tmp_path / "folds.csv")
    assert len(folds) == 17 and folds.error.isna().all()
    assert folds.test_start.iloc[0].startswith("2002-01-04")
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["oos"]["folds_with_oos"] == 17
    assert (tmp_path / "report.html").stat().st_size > 100_000
    # every fold is a study in the journal
    code = main(["studies", "--store", f"sqlite:///{tmp_path}/j.db", "--json"])
    studies = json.loads(capsys.readouterr().out)
    assert code == 0 and len(studies) == 17
    assert all(s["trials"] == {"complete": 100} for s in studies)


def test_optimize_command_writes_its_files_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    space = tmp_path / "space.toml"
    space.write_text(
        '[params]\nfast = { type = "int", low = 5, high = 30, step = 5 }\n'
        'slow = { choices = [60, 120] }\n[optimize]\nsampler = "random"\ntrials = 10\n'
        "partitions = 4\n"
    )
    args = ["optimize", str(EXAMPLES / "sma-us-stocks.toml"), "--space", str(space),
            "--store", f"sqlite:///{tmp_path}/j.db", "--study", "demo", "--json"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["trials"] == 10 and first["evaluated"] == 10 and first["study"] == "demo"
    assert set(first["best_params"]) == {"fast", "slow"}
    assert first["overfitting"]["dsr"]["n_trials"] == first["distinct"]
    for name in ("trials.csv", "trials.parquet", "equity.parquet", "result.json", "report.html"):
        assert (tmp_path / "a" / name).exists()
    # more trials: the stored 10 are kept, 5 more are run
    assert main([*args, "--trials", "15", "--out", str(tmp_path / "b")]) == 2
    assert "exists with a different search space" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["evaluated"] == 0 and again["selected"] == first["selected"]


def test_optimize_command_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    space = tmp_path / "space.toml"
    space.write_text('[params]\nfast = { type = "int", low = 5, high = 1 }\n')
    code = main(["optimize", str(EXAMPLES / "sma-us-stocks.toml"), "--space", str(space)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0
    assert err.startswith("error: params.fast: high (1) must be >= low (5)")
    code = main(["optimize", str(EXAMPLES / "sma-us-stocks.toml")])
    assert code == 2 and "--space: give the search space" in capsys.readouterr().err
    code = main(["walkforward", str(EXAMPLES / "sma-us-stocks.toml"), "--space",
                 str(EXAMPLES / "sma-us-stocks.space.toml")])  # fmt: skip
    assert code == 2 and "walkforward.train: say how long" in capsys.readouterr().err


def test_optimize_stress_tests_the_selected_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """--stress backtests the selected trial's params (event engine) for the stress tests: its
    baseline is that trial (found by the vector engine), to the rounding of the JSON."""
    space = tmp_path / "space.toml"
    space.write_text(
        "[params]\nfast = { choices = [10, 20] }\nslow = { choices = [100, 200] }\n"
        '[optimize]\nsampler = "grid"\npartitions = 4\n'
    )
    code = main(["optimize", str(EXAMPLES / "sma-us-stocks.toml"), "--space", str(space),
                 "--no-journal", "--stress", "--out", str(tmp_path), "--json"])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    trials = pd.read_csv(tmp_path / "trials.csv").set_index("number")
    selected = trials.loc[summary["selected"]]
    stress = json.loads((tmp_path / "stress.json").read_text())
    assert stress["baseline"]["final_equity"] == pytest.approx(selected.final_equity, abs=1e-5)
    assert stress["baseline"]["num_trades"] == selected.num_trades
    assert {s for s in stress["scenarios"]} == {"resample", "bootstrap"}
    assert 'id="stress"' in (tmp_path / "report.html").read_text()

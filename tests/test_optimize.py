"""``tradeloom.research.optimize``: search spaces, samplers, studies in the journal, executors,
and the overfitting statistics every result carries."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from research_strategies import market, resolved

from tradeloom.errors import ConfigError
from tradeloom.research.optimize import optimize
from tradeloom.research.space import load_space, parse_space
from tradeloom.store import Store
from tradeloom.store.studies import StudyStore
from tradeloom.vector import run_signals

SMA_US = """
[data]
type = "dataset"
params = { name = "us-stocks-daily", symbols = ["AAPL", "IBM", "MSFT"], adjusted = true }

[strategy]
type = "sma-crossover"
params = { fast = 10, slow = 50, fraction = 0.9 }

[broker]
type = "simulated"
params = { slippage_bps = 2, fees = { model = "percent", rate = 0.0005, minimum = 1.0 } }

[run]
start = "2006-01-01"
end = "2012-12-31"
"""

SMA_GRID = {
    "params": {
        "fast": {"type": "int", "low": 5, "high": 30, "step": 5},
        "slow": {"type": "int", "low": 40, "high": 120, "step": 40},
    },
    "optimize": {"sampler": "grid", "partitions": 8},
}


def sma() -> object:
    return resolved(SMA_US)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    db = Store(f"sqlite:///{tmp_path}/studies.db")
    yield db
    db.close()


# --- the search space ------------------------------------------------------------------------------


def test_a_space_file_is_read_with_every_kind_of_dimension(tmp_path: Path) -> None:
    path = tmp_path / "space.toml"
    path.write_text(
        """
strategy = "sma"
[params]
fast = { type = "int", low = 5, high = 50, step = 5 }
fraction = { type = "float", low = 0.05, high = 1.0, log = true }
level = { type = "float", low = 0.1, high = 0.5, step = 0.1 }
direction = { choices = ["long_only", "long_short"] }
quantity = 10
[optimize]
sampler = "random"
trials = 7
objectives = ["total_return", "max_drawdown"]
constraints = ["num_trades >= 10", "max_drawdown > -0.3"]
""",
        encoding="utf-8",
    )
    space = load_space(path)
    assert list(space.dimensions) == ["fast", "fraction", "level", "direction"]
    assert space.fixed == {"quantity": 10}
    assert space.dimensions["fast"].grid() == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert space.dimensions["level"].grid() == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert [str(c) for c in space.optimize.constraints] == [
        "num_trades >= 10",
        "max_drawdown > -0.3",
    ]
    assert space.optimize.resolved_directions == ["maximize", "maximize"]
    # A random draw depends on (seed, number) only, and stays inside the space.
    draws = [space.sample(3, k) for k in range(200)]
    assert draws[17] == space.sample(3, 17) != space.sample(4, 17)
    assert {d["fast"] for d in draws} <= set(range(5, 51, 5))
    assert all(0.05 <= d["fraction"] <= 1.0 for d in draws)
    assert {d["direction"] for d in draws} == {"long_only", "long_short"}
    # log-uniform: about as many draws below the geometric middle as above it
    below = sum(d["fraction"] < math.sqrt(0.05) for d in draws)
    assert 70 < below < 130


@pytest.mark.parametrize(
    ("raw", "path", "fragment"),
    [
        ({"params": {"fast": {"type": "int", "low": 5, "high": 1}}}, "params.fast",
         "high (1) must be >= low (5)"),
        ({"params": {"fast": {"type": "int", "low": 5, "high": 9, "stp": 1}}}, "params.fast.stp",
         "unknown field; int ranges take type, low, high, step, log"),
        ({"params": {"fast": {"low": 5}}}, "params.fast.type", "say what to search"),
        ({"params": {"x": {"type": "float", "low": 0, "high": 1}},
          "optimize": {"sampler": "grid"}}, "params.x", "give it a step"),
        ({"params": {"x": {"choices": [1, 2]}}, "optimize": {"partitions": 5}},
         "optimize.partitions", "must be even"),
        ({"params": {"x": {"choices": [1, 2]}}, "optimize": {"constraints": ["trades >> 3"]}},
         "optimize.constraints", "write 'metric >= number'"),
        ({"params": {"x": {"choices": [1, 2]}}, "optimize": {"objectives": ["profit"]}},
         "optimize.objectives", "unknown metric 'profit'"),
        ({"params": {"x": {"choices": [1, 2]}},
          "optimize": {"objectives": ["sharpe", "total_return"], "sampler": "cmaes"}},
         "optimize.sampler", "cmaes optimises one objective"),
        ({"params": {"quantity": 10}}, "params", "nothing to search"),
    ],
)  # fmt: skip
def test_a_bad_space_names_the_field_and_the_fix(raw: dict, path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_space(raw, origin="space.toml")
    assert info.value.path == path
    assert fragment in str(info.value)
    assert "space.toml" in str(info.value)


def test_a_param_the_strategy_does_not_have_is_refused() -> None:
    space = parse_space({"params": {"fsat": {"type": "int", "low": 1, "high": 3}}})
    with pytest.raises(ConfigError, match="has no param 'fsat'; its params are"):
        optimize(sma(), space)


# --- grid: every combination, equal to direct runs ------------------------------------------------


def _direct(deployment, fast: int, slow: int):  # type: ignore[no-untyped-def]
    """The same params backtested directly by the vector engine."""
    strategy = deployment.strategies[0]
    params = strategy.spec.cls.Params(
        **{**strategy.params.model_dump(), "fast": int(fast), "slow": int(slow)}
    )
    return run_signals(
        deployment.data.build(), strategy.spec.cls(params),
        broker_params=deployment.broker.params, initial_cash=deployment.run.initial_cash,
        start=deployment.run.start, end=deployment.run.end,
    )  # fmt: skip


def test_a_grid_runs_every_combination_and_its_best_equals_a_direct_backtest() -> None:
    deployment = sma()
    result = optimize(deployment, parse_space(SMA_GRID))
    assert result.engine == "vector"
    assert len(result.trials) == 18
    assert sorted(zip(result.trials.fast, result.trials.slow, strict=True)) == sorted(
        itertools.product(range(5, 31, 5), (40, 80, 120))
    )
    assert (result.trials.state == "complete").all()
    ranked = result.trials.sort_values(["value_sharpe", "number"], ascending=[False, True])
    assert result.best == [int(ranked.iloc[0].number)] and result.selected == result.best[0]
    assert result.best_params == {
        "fast": int(ranked.iloc[0].fast),
        "slow": int(ranked.iloc[0].slow),
    }
    for row in (ranked.iloc[0], ranked.iloc[-1]):
        direct = _direct(deployment, row.fast, row.slow)
        m = direct.metrics
        assert row.num_trades == m.num_trades
        assert row.final_equity == m.final_equity
        assert row.sharpe == pytest.approx(m.sharpe, rel=1e-9)
        assert row.sortino == pytest.approx(m.sortino, rel=1e-9)
        assert row.max_drawdown == pytest.approx(m.max_drawdown, rel=1e-12)
        assert row.cagr == pytest.approx(m.cagr, rel=1e-9)
        assert row.calmar == pytest.approx(m.calmar, rel=1e-9)
        # the trial keeps the equity at the end of every day: the direct curve's daily closes
        curve = direct.equity["equity"]
        daily = curve.groupby(curve.index.floor("D")).last()
        np.testing.assert_array_equal(result.equity[int(row.number)].to_numpy(), daily.to_numpy())


def test_constraints_make_trials_infeasible_and_never_best() -> None:
    space = parse_space({**SMA_GRID, "optimize": {**SMA_GRID["optimize"],
                         "constraints": ["num_trades >= 60"]}})  # fmt: skip
    result = optimize(sma(), space)
    trials = result.trials
    assert (trials.feasible == (trials.num_trades >= 60)).all()
    assert 0 < trials.feasible.sum() < len(trials)
    feasible = trials[trials.feasible]
    top = feasible.sort_values(["value_sharpe", "number"], ascending=[False, True]).iloc[0]
    assert result.best == [int(top.number)]
    assert trials.value_sharpe.max() > top.value_sharpe  # a better, infeasible trial exists


def test_invalid_combinations_fail_with_the_reason_and_the_rest_run() -> None:
    space = parse_space({"params": {"fast": {"choices": [10, 50]}, "slow": {"choices": [30, 60]}},
                         "optimize": {"sampler": "grid", "partitions": 4}})  # fmt: skip
    result = optimize(sma(), space)
    failed = result.trials[result.trials.state == "failed"]
    assert list(zip(failed.fast, failed.slow, strict=True)) == [(50, 30)]
    assert "fast" in failed.error.iloc[0] and "slow" in failed.error.iloc[0]
    assert (result.trials[result.trials.state == "complete"].feasible).all()


def test_a_pareto_front_is_exactly_the_non_dominated_feasible_trials() -> None:
    space = parse_space({
        "params": {"fast": {"type": "int", "low": 2, "high": 40, "step": 2},
                   "slow": {"type": "int", "low": 45, "high": 150, "step": 15}},
        "optimize": {"sampler": "grid", "objectives": ["total_return", "max_drawdown"],
                     "partitions": 8},
    })  # fmt: skip
    result = optimize(sma(), space)
    values = result.trials[["value_total_return", "value_max_drawdown"]].to_numpy()
    front = []
    for i, v in enumerate(values):  # by brute force: no other trial at least as good on both
        if not any((w >= v).all() and (w > v).any() for w in values):
            front.append(int(result.trials.number.iloc[i]))
    assert sorted(result.best) == sorted(front)
    assert len(front) >= 2
    # the selected trial is the front's best on the first objective
    best_return = result.trials[result.trials.number.isin(front)].value_total_return.max()
    assert result.trials.set_index("number").loc[result.selected].value_total_return == best_return


def test_a_custom_metric_is_imported_and_used_as_the_objective() -> None:
    space = parse_space({**SMA_GRID, "optimize": {**SMA_GRID["optimize"],
                         "objectives": ["research_strategies:worst_day"]}})  # fmt: skip
    result = optimize(sma(), space)
    column = result.trials["research_strategies:worst_day"]
    for number in (0, 7):
        equity = result.equity[number]
        returns = equity / equity.shift(1).fillna(100_000.0) - 1.0
        assert column[result.trials.number == number].iloc[0] == pytest.approx(returns.min())
    assert result.selected == int(result.trials.loc[column.idxmax()].number)


def test_a_custom_metric_that_cannot_be_imported_is_a_config_error() -> None:
    space = parse_space({**SMA_GRID, "optimize": {**SMA_GRID["optimize"],
                         "objectives": ["no_such_module:metric"]}})  # fmt: skip
    with pytest.raises(ConfigError, match="custom metric 'no_such_module:metric' cannot be"):
        optimize(sma(), space)


# --- the event engine --------------------------------------------------------------------------------


def test_a_deployment_with_risk_rules_is_searched_with_the_event_engine() -> None:
    from tradeloom.api import run_deployment

    text = (
        SMA_US
        + """
[[risk]]
type = "max-position"
params = { max_quantity = 400 }
"""
    )
    deployment = resolved(text, ["run.start=2010-01-01", "run.end=2011-12-31"])
    space = parse_space({"params": {"fast": {"choices": [5, 20]}, "slow": {"choices": [50]}},
                         "optimize": {"sampler": "grid", "partitions": 4}})  # fmt: skip
    result = optimize(deployment, space)
    assert result.engine == "event"
    rejects = []
    for row in result.trials.itertuples():
        direct = run_deployment(
            resolved(text, ["run.start=2010-01-01", "run.end=2011-12-31",
                            f"strategy.params.fast={row.fast}"])
        )  # fmt: skip
        assert row.final_equity == direct.metrics.final_equity
        assert row.num_trades == direct.metrics.num_trades > 0
        assert row.sharpe == direct.metrics.sharpe
        rejects.append(int((direct.risk_events.kind == "reject").sum()))
    assert max(rejects) > 0  # the rule did refuse orders: the trials ran behind it
    with pytest.raises(ConfigError, match=r"vector engine cannot run this deployment \(risk rules"):
        optimize(deployment, space, engine="vector")


# --- samplers, executors, resuming -------------------------------------------------------------------

RANDOM_SEEDS = {
    "params": {"seed": {"type": "int", "low": 0, "high": 10_000},
               "switch": {"type": "float", "low": 0.02, "high": 0.3}},
    "optimize": {"sampler": "tpe", "trials": 16, "batch": 4, "seed": 5, "partitions": 8},
}  # fmt: skip


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["seconds"]).reset_index(drop=True)


@pytest.mark.parametrize("sampler", ["random", "tpe", "cmaes", "nsga2"])
def test_every_sampler_runs_its_trials_and_the_seed_decides_them(sampler: str) -> None:
    raw = {**RANDOM_SEEDS, "optimize": {**RANDOM_SEEDS["optimize"], "sampler": sampler}}
    if sampler == "nsga2":
        raw["optimize"]["objectives"] = ["total_return", "max_drawdown"]
        raw["optimize"]["population"] = 8
    data = market(400)
    first = optimize(resolved(), parse_space(raw), market=data)
    again = optimize(resolved(), parse_space(raw), market=data)
    assert len(first.trials) == 16 and (first.trials.state == "complete").all()
    pd.testing.assert_frame_equal(_comparable(first.trials), _comparable(again.trials))
    other = {**raw, "optimize": {**raw["optimize"], "seed": 6}}
    changed = optimize(resolved(), parse_space(other), market=data)
    assert list(changed.trials.seed) != list(first.trials.seed)


def test_random_draws_do_not_depend_on_the_batch_size() -> None:
    raw = {**RANDOM_SEEDS, "optimize": {**RANDOM_SEEDS["optimize"], "sampler": "random"}}
    data = market(300)
    small = optimize(resolved(), parse_space(raw), market=data)
    big = {**raw, "optimize": {**raw["optimize"], "batch": 16}}
    large = optimize(resolved(), parse_space(big), market=data)
    pd.testing.assert_frame_equal(_comparable(small.trials), _comparable(large.trials))


@pytest.mark.slow
def test_inline_process_and_dask_executors_give_identical_trials() -> None:
    space = parse_space(RANDOM_SEEDS)
    data = market(500)
    runs = {
        executor: optimize(resolved(), space, market=data, executor=executor, workers=2)
        for executor in ("inline", "process", "dask")
    }
    assert runs["process"].workers == runs["dask"].workers == 2
    for executor in ("process", "dask"):
        pd.testing.assert_frame_equal(
            _comparable(runs["inline"].trials), _comparable(runs[executor].trials)
        )
        pd.testing.assert_frame_equal(runs["inline"].equity, runs[executor].equity)
    assert runs["inline"].overfitting.to_dict() == runs["dask"].overfitting.to_dict()


@pytest.mark.slow
def test_an_existing_dask_cluster_is_used_through_its_scheduler_address() -> None:
    from distributed import LocalCluster

    raw = {**RANDOM_SEEDS, "optimize": {**RANDOM_SEEDS["optimize"], "trials": 8}}
    space = parse_space(raw)
    data = market(300)
    inline = optimize(resolved(), space, market=data)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:  # fmt: skip
        remote = optimize(
            resolved(), space, market=data, executor="dask", scheduler=cluster.scheduler_address
        )
        assert len(cluster.scheduler_info["workers"]) == 1  # still up: we did not own it
    assert remote.workers == 1
    pd.testing.assert_frame_equal(_comparable(inline.trials), _comparable(remote.trials))


def test_executor_options_are_checked() -> None:
    space = parse_space(RANDOM_SEEDS)
    with pytest.raises(ConfigError, match="unknown executor 'threads'"):
        optimize(resolved(), space, market=market(200), executor="threads")
    with pytest.raises(ConfigError, match="--scheduler needs --executor dask"):
        optimize(resolved(), space, market=market(200), scheduler="tcp://127.0.0.1:1")
    with pytest.raises(
        ConfigError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:1"
    ):
        optimize(resolved(), space, market=market(200), executor="dask",
                 scheduler="tcp://127.0.0.1:1")  # fmt: skip


def test_an_interrupted_study_resumes_to_the_trials_of_an_uninterrupted_one(
    store: Store, tmp_path: Path
) -> None:
    space = parse_space(RANDOM_SEEDS)
    data = market(400)
    whole = optimize(resolved(), space, market=data)

    class Stop(Exception):
        pass

    def interrupt(done: int, total: int) -> None:
        if done >= 6:  # mid-batch: trials 4..7 were claimed, some have results
            raise Stop

    with pytest.raises(Stop):
        optimize(resolved(), space, market=data, store=store, study="s", progress=interrupt)
    states = [t.state for t in StudyStore(store).trials("s")]
    assert states[:4] == ["complete"] * 4 and "running" in states
    resumed = optimize(resolved(), space, market=data, store=store, study="s")
    assert resumed.evaluated == 12  # the 4 abandoned trials, taken back, and 8 more
    pd.testing.assert_frame_equal(_comparable(whole.trials), _comparable(resumed.trials))
    # run again: nothing left to do, same answer
    again = optimize(resolved(), space, market=data, store=store, study="s")
    assert again.evaluated == 0 and again.selected == whole.selected


def test_a_study_resumes_only_with_the_same_space_and_fresh_replaces_it(store: Store) -> None:
    space = parse_space(RANDOM_SEEDS)
    data = market(300)
    optimize(resolved(), space, market=data, store=store, study="s")
    changed = parse_space({**RANDOM_SEEDS, "optimize": {**RANDOM_SEEDS["optimize"], "seed": 9}})
    with pytest.raises(ConfigError, match="study 's' exists with a different search space"):
        optimize(resolved(), changed, market=data, store=store, study="s")
    with pytest.raises(ConfigError, match="different data"):
        optimize(resolved(), space, market=market(301), store=store, study="s")
    fresh = optimize(resolved(), changed, market=data, store=store, study="s", fresh=True)
    assert fresh.evaluated == 16
    assert [s["name"] for s in StudyStore(store).studies()] == ["s"]


def test_a_study_on_postgresql_is_shared_by_two_processes(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    import subprocess
    import sys
    import uuid

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(admin)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except Exception as exc:  # no server: the CI machine has one (pg_isready is checked there)
        if __import__("os").environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    url = f"{admin}?options=-csearch_path%3D{schema}"
    script = tmp_path / "worker.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from research_strategies import market, resolved\n"
        "from tradeloom.research.optimize import optimize\n"
        "from tradeloom.research.space import parse_space\n"
        "from tradeloom.store import Store\n"
        "space = parse_space({'params': {'seed': {'type': 'int', 'low': 0, 'high': 10000}},"
        " 'optimize': {'sampler': 'random', 'trials': 40, 'batch': 2, 'partitions': 4}})\n"
        "store = Store(sys.argv[1])\n"
        "r = optimize(resolved(), space, market=market(300), store=store, study='shared')\n"
        "print(r.evaluated)\n"
    )
    try:
        procs = [
            subprocess.Popen([sys.executable, str(script), url], stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=240)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        evaluated = [int(o.strip().splitlines()[-1]) for o in outputs]
        assert sum(evaluated) == 40  # each trial run once, by one of them
        store = Store(url)
        trials = StudyStore(store).trials("shared")
        store.close()
        assert [t.number for t in trials] == list(range(40))
        assert all(t.state == "complete" for t in trials)
        space = parse_space({"params": {"seed": {"type": "int", "low": 0, "high": 10000}},
                             "optimize": {"sampler": "random", "trials": 40, "batch": 2}})  # fmt: skip
        assert [t.params for t in trials] == [space.sample(0, k) for k in range(40)]
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")


# --- overfitting statistics, end to end --------------------------------------------------------------

SEED_GRID = {
    "params": {"seed": {"type": "int", "low": 0, "high": 99}},
    "optimize": {"sampler": "grid", "partitions": 16},
}


def test_a_search_over_pure_luck_has_a_high_pbo_and_a_low_dsr() -> None:
    """100 strategies that trade at random on a random walk: the best of them looks good in
    sample; the statistics must say it is luck."""
    pbos = []
    for seed in (1, 2, 3):
        result = optimize(resolved(), parse_space(SEED_GRID), market=market(2000, seed=seed))
        o = result.overfitting
        assert o.dsr is not None and o.pbo is not None
        assert o.dsr.n_trials == 100
        assert o.sharpe > 0.8  # the winner of 100 coin flips has a fine-looking Sharpe ratio
        assert o.dsr.dsr < 0.95 and "luck" in o.dsr.verdict
        pbos.append(o.pbo.pbo)
    assert np.mean(pbos) > 0.35
    assert max(pbos) >= 0.45


def test_a_planted_edge_is_found_with_a_low_pbo_and_a_high_dsr() -> None:
    for seed in (1, 2):
        result = optimize(
            resolved(), parse_space(SEED_GRID), market=market(2000, edge_seed=7, seed=seed)
        )
        o = result.overfitting
        assert result.selected == 7
        assert o.dsr.dsr > 0.99 and o.dsr.verdict.startswith("the Sharpe ratio survives 100")
        assert o.pbo.pbo < 0.05 and "little sign of overfitting" in o.pbo.verdict
        assert o.psr > 0.99


def test_outputs_are_written(tmp_path: Path) -> None:
    import json

    result = optimize(sma(), parse_space(SMA_GRID))
    written = result.write(tmp_path, html=False)
    trials = pd.read_csv(written["trials.csv"])
    assert len(trials) == 18 and list(trials.number) == list(result.trials.number)
    assert pd.read_parquet(written["trials.parquet"]).equals(result.trials)
    equity = pd.read_parquet(written["equity.parquet"])
    assert equity.shape == result.equity.shape
    summary = json.loads(written["result.json"].read_text())
    assert summary["selected"] == result.selected and summary["trials"] == 18
    assert summary["overfitting"]["dsr"]["n_trials"] == 18
    assert summary["overfitting"]["pbo"]["n_partitions"] == 8

"""The research pages (:mod:`tradeloom.report.research_html`): the data behind each chart,
the verdicts on the page, and a page free of raw NaN/None.

The results are real searches over bundled data, kept tiny: IBM, 2010–2011 (504 daily bars),
``sma-crossover`` with fast 3/6/9 × slow 15/25/35 (9 trials), CSCV with 4 blocks.
"""

from __future__ import annotations

import dataclasses
import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from tradeloom.config import load_deployment
from tradeloom.plugins import PluginHost
from tradeloom.report.research_html import (
    TOP_TRIALS,
    fold_timeline_figure,
    heatmap_figure,
    heatmap_frame,
    heatmap_params,
    objective_line_figure,
    optimize_figures,
    optimize_report,
    pareto_figure,
    walkforward_figures,
    walkforward_report,
)
from tradeloom.research.optimize import OptimizeResult, optimize
from tradeloom.research.space import WalkForwardSettings, parse_space
from tradeloom.research.stress_run import run_stress
from tradeloom.research.walkforward import WalkForwardResult, walk_forward

from browser import chromium_path, render_dom
from helpers import IBM_DEPLOYMENT

FAST = {"type": "int", "low": 3, "high": 9, "step": 3}
SLOW = {"type": "int", "low": 15, "high": 35, "step": 10}
SETTINGS = {"partitions": 4, "constraints": ["num_trades >= 12"]}


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("research") / "ibm.toml"
    path.write_text(IBM_DEPLOYMENT.replace('end = "2010-06-30"', 'end = "2011-12-31"'))
    return load_deployment([path], host=PluginHost())


def _search(resolved, params: dict, **settings) -> OptimizeResult:  # type: ignore[no-untyped-def]
    space = parse_space({"params": params, "optimize": {"sampler": "grid", **SETTINGS, **settings}})
    return optimize(resolved, space)


@pytest.fixture(scope="module")
def grid(resolved) -> OptimizeResult:  # type: ignore[no-untyped-def]
    return _search(resolved, {"fast": FAST, "slow": SLOW})


@pytest.fixture(scope="module")
def three(resolved) -> OptimizeResult:  # type: ignore[no-untyped-def]
    return _search(resolved, {"fast": FAST, "slow": SLOW, "quantity": {"choices": [5, 10]}})


@pytest.fixture(scope="module")
def multi(resolved) -> OptimizeResult:  # type: ignore[no-untyped-def]
    fast = {"type": "int", "low": 3, "high": 9}
    slow = {"type": "int", "low": 15, "high": 35, "step": 5}
    return _search(
        resolved,
        {"fast": fast, "slow": slow},
        sampler="nsga2",
        trials=24,
        objectives=["total_return", "max_drawdown"],
    )


@pytest.fixture(scope="module")
def wf(resolved) -> WalkForwardResult:  # type: ignore[no-untyped-def]
    space = parse_space({"params": {"fast": FAST, "slow": SLOW}, "optimize": {"sampler": "grid"}})
    return walk_forward(resolved, space, WalkForwardSettings(train=120, test=60))


def _visible(page: str) -> str:
    """The page's text as a reader sees it: no scripts or styles, no tags, entities decoded."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.DOTALL | re.IGNORECASE)
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


def _assert_clean(page: str) -> None:
    text = _visible(page)
    assert not re.search(r"\b(nan|null|inf)\b", text, re.IGNORECASE)
    assert not re.search(r"\bNone\b", text)
    assert page.count(get_plotlyjs()) == 1  # plotly.js embedded exactly once


# --- the optimisation page ----------------------------------------------------------------------
def test_optimize_page_states_the_verdicts_first(grid: OptimizeResult) -> None:
    page = optimize_report(grid)
    ov = grid.overfitting
    assert ov.psr is not None and ov.dsr is not None and ov.pbo is not None
    for verdict in (ov.psr_verdict, ov.dsr.verdict, ov.pbo.verdict):
        assert html.escape(verdict, quote=True) in page
    text = _visible(page)
    assert f"PSR {ov.psr:.3f}" in " ".join(text.split())
    assert f"{ov.dsr.sr:.4f}" in text and f"{ov.dsr.sr_star:.4f}" in text
    assert f"{ov.dsr.sr_variance:.3g}" in text
    # the overfitting section comes before the best trial, the heatmap and the tables
    order = ['id="overfitting"', "Best trial #0", 'id="objective-heatmap"', "Top 20 trials"]
    positions = [page.index(marker) for marker in order]
    assert positions == sorted(positions)
    _assert_clean(page)
    assert optimize_report(grid) == page  # deterministic


def test_logit_histogram_splits_at_zero_and_counts_every_combination(grid: OptimizeResult) -> None:
    fig = optimize_figures(grid)["overfitting-logits"]
    overfit, fine = fig.data
    pbo = grid.overfitting.pbo
    assert pbo is not None
    assert sum(overfit.y) == int(np.sum(pbo.logits <= 0))
    assert sum(fine.y) == int(np.sum(pbo.logits > 0))
    assert sum(overfit.y) + sum(fine.y) == pbo.n_combinations
    assert all(x < 0 for x, n in zip(overfit.x, overfit.y, strict=True) if n)
    assert all(x > 0 for x, n in zip(fine.x, fine.y, strict=True) if n)


def test_heatmap_is_the_pivot_of_the_feasible_trials(grid: OptimizeResult) -> None:
    t = grid.trials
    assert 0 < t.feasible.sum() < len(t)  # the constraint leaves some cells blank
    expected = t[t.feasible].pivot_table(
        index="slow", columns="fast", values="value_sharpe", aggfunc="mean"
    )
    expected = expected.reindex(index=[15, 25, 35], columns=[3, 6, 9])
    fig = heatmap_figure(grid)
    assert fig is not None
    cells = fig.data[0]
    assert list(cells.x) == [3, 6, 9] and list(cells.y) == [15, 25, 35]
    np.testing.assert_allclose(np.asarray(cells.z, dtype=float), expected.to_numpy())
    # the selected trial's cell is starred, and only that one
    row = t[t.number == grid.selected].iloc[0]
    i, j = [15, 25, 35].index(row.slow), [3, 6, 9].index(row.fast)
    starred = [(a, b) for a, line in enumerate(cells.text) for b, v in enumerate(line) if "★" in v]
    assert starred == [(i, j)]
    blank = [(a, b) for a, line in enumerate(cells.text) for b, v in enumerate(line) if not v]
    assert blank == [tuple(x) for x in np.argwhere(np.isnan(expected.to_numpy()))]


def test_a_binned_axis_stars_the_bin_of_the_selected_trial(resolved) -> None:  # type: ignore[no-untyped-def]
    """More than MAX_HEATMAP_AXIS distinct values: the axis is cut into bins, and the selected
    trial's cell is its bin's (this crashed on the 1,000-combination benchmark grid)."""
    from tradeloom.report.research_html import HEATMAP_BINS, MAX_HEATMAP_AXIS

    slow = {"type": "int", "low": 12, "high": 12 + 2 * MAX_HEATMAP_AXIS, "step": 2}
    result = _search(resolved, {"fast": {"choices": [3, 5]}, "slow": slow}, constraints=[])
    fig = heatmap_figure(result, x="fast", y="slow")
    assert fig is not None
    cells = fig.data[0]
    assert len(cells.y) == HEATMAP_BINS and all("–" in str(label) for label in cells.y)
    chosen = result.trials.set_index("number").loc[result.selected]
    starred = [(a, b) for a, line in enumerate(cells.text) for b, v in enumerate(line) if "★" in v]
    assert len(starred) == 1
    low, high = (float(x) for x in str(cells.y[starred[0][0]]).split("–"))
    assert low <= chosen.slow <= high
    assert cells.x[starred[0][1]] == str(chosen.fast)


def test_heatmap_with_more_params_shows_the_best_over_the_others(three: OptimizeResult) -> None:
    assert heatmap_params(three) == ("fast", "slow")
    t = three.trials
    # a repeated trial (same params, another value) counts once, with the mean of the two
    repeat = t[t.feasible].iloc[0].copy()
    repeat["number"] = t.number.max() + 1
    repeat["value_sharpe"] = repeat["value_sharpe"] + 10.0
    trials = pd.concat([t, repeat.to_frame().T], ignore_index=True).astype(t.dtypes.to_dict())
    doubled = dataclasses.replace(three, trials=trials)
    ok = doubled.trials[doubled.trials.feasible]
    points = ok.groupby(["fast", "slow", "quantity"])["value_sharpe"].mean().reset_index()
    expected = points.pivot_table(
        index="slow", columns="fast", values="value_sharpe", aggfunc="max"
    ).reindex(index=[15, 25, 35], columns=[3, 6, 9])
    grid_, _, notes = heatmap_frame(doubled)  # type: ignore[misc]
    np.testing.assert_allclose(grid_.to_numpy(dtype=float), expected.to_numpy())
    assert any("highest sharpe over the other params (quantity)" in n for n in notes)
    page = optimize_report(three)
    assert "highest sharpe over the other params (quantity)" in page


def test_one_param_gets_a_line_not_a_heatmap(resolved) -> None:  # type: ignore[no-untyped-def]
    result = _search(resolved, {"slow": SLOW}, constraints=[])
    assert heatmap_figure(result) is None
    fig = objective_line_figure(result)
    assert fig is not None
    mean = fig.data[1]
    expected = result.trials.groupby("slow")["value_sharpe"].mean()
    assert list(mean.x) == [15, 25, 35]
    np.testing.assert_allclose(mean.y, expected.to_numpy())
    page = optimize_report(result)
    assert 'id="objective-line"' in page and 'id="objective-heatmap"' not in page
    _assert_clean(page)


def test_pareto_front_highlights_exactly_the_best(multi: OptimizeResult) -> None:
    assert len(multi.best) > 1
    fig = pareto_figure(multi)
    assert fig is not None
    traces = {t.name.split(" (")[0]: t for t in fig.data}
    front = traces["Pareto front"]
    assert sorted(front.customdata) == sorted(multi.best)
    assert front.mode == "lines+markers"
    assert list(front.x) == sorted(front.x)  # joined left to right
    t = multi.trials
    assert sorted(traces["infeasible trials"].customdata) == sorted(t.number[~t.feasible])
    others = set(traces["feasible trials"].customdata)
    assert others.isdisjoint(multi.best) and others | set(multi.best) == set(t.number[t.feasible])
    page = optimize_report(multi)
    assert 'id="pareto-front"' in page and "Best trial" not in page
    for number in multi.best:
        assert f"<td>#{number}</td>" in page
    _assert_clean(page)


def test_a_one_point_front(multi: OptimizeResult) -> None:
    single = dataclasses.replace(multi, best=[multi.selected])
    fig = pareto_figure(single)
    assert fig is not None
    [front] = [t for t in fig.data if t.name.startswith("Pareto front")]
    assert list(front.customdata) == [multi.selected]
    assert "1 feasible trial that no other trial beats" in optimize_report(single)


def test_single_objective_has_no_pareto_chart(grid: OptimizeResult) -> None:
    assert pareto_figure(grid) is None
    assert "pareto-front" not in optimize_figures(grid)


def test_top_trials_table_is_ranked_feasible_first(grid: OptimizeResult) -> None:
    page = optimize_report(grid)
    table = page[page.index(f"Top {TOP_TRIALS} trials") :]
    numbers = [int(n) for n in re.findall(r"<td>#(\d+)</td>", table)]
    t = grid.trials
    ranked = t.sort_values(["feasible", "value_sharpe"], ascending=[False, False])
    assert numbers == list(ranked.number)
    assert '<tr class="selected"><td class="num">1</td><td>#0</td>' in table


def test_no_feasible_trial_still_renders(grid: OptimizeResult) -> None:
    trials = grid.trials.assign(feasible=False)
    empty = dataclasses.replace(grid, trials=trials, best=[], selected=None)
    page = optimize_report(empty)
    assert "No feasible trial: nothing was selected." in page
    assert heatmap_figure(empty) is None
    _assert_clean(page)


def test_write_adds_the_report(grid: OptimizeResult, tmp_path: Path) -> None:
    written = grid.write(tmp_path)
    assert written["report.html"].read_text(encoding="utf-8") == optimize_report(grid)


def test_stress_section_is_embedded(  # type: ignore[no-untyped-def]
    resolved, grid: OptimizeResult, wf: WalkForwardResult
) -> None:
    stress = run_stress(resolved, ["resample"], seed=1, n_paths=200)
    for page in (optimize_report(grid, stress), walkforward_report(wf, stress)):
        assert page.count('<section id="stress">') == 1
        assert 'id="stress-resample-drawdown"' in page
        _assert_clean(page)  # still one plotly.js
    page = optimize_report(grid, stress)
    assert page.index('id="overfitting"') < page.index('<section id="stress">')


# --- the walk-forward page ----------------------------------------------------------------------
def test_fold_timeline_has_a_train_and_a_test_bar_per_fold(wf: WalkForwardResult) -> None:
    fig = fold_timeline_figure(wf)
    train, test = fig.data
    assert (train.name, test.name) == ("train", "test")
    labels = [f"fold {f.index}" for f in wf.folds]
    assert len(wf.folds) >= 3
    for trace, kind in ((train, "train"), (test, "test")):
        assert list(trace.y) == labels
        starts = pd.to_datetime(pd.Series(trace.base))
        ends = starts + pd.to_timedelta(np.asarray(trace.x), unit="ms")
        for fold, start, end in zip(wf.folds, starts, ends, strict=True):
            want_start = getattr(fold, f"{kind}_start").tz_convert(None)
            want_end = getattr(fold, f"{kind}_end").tz_convert(None)
            assert start == want_start
            assert abs(end - want_end) < pd.Timedelta(milliseconds=1)
    assert all(a.test_start == a.train_end for a in wf.folds)


def test_walkforward_page(wf: WalkForwardResult) -> None:
    page = walkforward_report(wf)
    text = " ".join(_visible(page).split())
    assert html.escape(wf.oos["psr_verdict"], quote=True) in page
    for verdict in wf.stability["verdict"]:
        assert f"<td>{verdict}</td></tr>" in page
    for fold in wf.folds:
        start = fold.test_start.strftime("%Y-%m-%d")
        assert start in text
    assert set(walkforward_figures(wf)) == {
        "fold-timeline",
        "oos-equity",
        "is-vs-oos",
        "param-stability",
        "fold-overfitting",
    }
    for div in walkforward_figures(wf):
        assert page.count(f'id="{div}"') == 1
    figures = walkforward_figures(wf)
    chosen = [f.params["fast"] if f.params else None for f in wf.folds]
    assert list(figures["param-stability"].data[0].y) == chosen
    dsr, pbo = figures["fold-overfitting"].data
    assert list(dsr.y) == [f.overfitting.dsr.dsr for f in wf.folds]  # type: ignore[union-attr]
    assert list(pbo.y) == [f.overfitting.pbo.pbo for f in wf.folds]  # type: ignore[union-attr]
    is_sharpe = figures["is-vs-oos"].data[0]
    assert list(is_sharpe.y) == [f.is_metrics["sharpe"] for f in wf.folds]
    _assert_clean(page)
    assert walkforward_report(wf) == page


def test_a_fold_without_a_selection_renders(wf: WalkForwardResult) -> None:
    empty = dataclasses.replace(
        wf.folds[1],
        params=None,
        selected=None,
        is_metrics={},
        oos_metrics={},
        oos_equity=pd.Series(dtype=float),
        overfitting=None,
        error="no feasible trial in the training window",
    )
    broken = dataclasses.replace(wf, folds=[wf.folds[0], empty, *wf.folds[2:]])
    page = walkforward_report(broken)
    assert "<td>no feasible trial in the training window</td>" in page
    test = fold_timeline_figure(broken).data[1]
    assert test.marker.color[1] == "#8c959f"  # grey: no out-of-sample run
    _assert_clean(page)


# --- in a real browser -------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.skipif(chromium_path() is None, reason="headless Chromium missing")
def test_pages_render_in_chromium(
    multi: OptimizeResult, wf: WalkForwardResult, tmp_path: Path
) -> None:
    pages = {
        "optimize.html": (optimize_report(multi), optimize_figures(multi)),
        "walkforward.html": (walkforward_report(wf), walkforward_figures(wf)),
    }
    for name, (page, figures) in pages.items():
        path = tmp_path / name
        path.write_text(page, encoding="utf-8")
        dom, errors = render_dom(path)
        assert errors == [], name
        for div in figures:  # every chart was drawn by plotly
            tag = dom[dom.rfind("<", 0, dom.index(f'id="{div}"')) :]
            assert "js-plotly-plot" in tag[: tag.index(">")], (name, div)
        assert dom.count('class="main-svg"') >= len(figures)

"""Walk-forward analysis: optimise in-sample, trade the winner out-of-sample, move on.

The run's timeline is cut into folds. Fold *k* trains on ``[train_start, train_end)`` — a
window of ``train`` that slides by ``step`` (rolling) or always starts at the first bar
(anchored) — and tests on the ``test`` that follows. In each fold the search of the space file
runs on the training bars alone (a study of its own, ``<name>/fold-<k>``, resumable), the
selected parameters are backtested from the training window's start to the test window's
end, and only the test window's daily returns count: the strategy enters the test window
holding whatever those parameters would have held, as it would have in production. The test
windows' returns, stitched in time order (each fold up to the next fold's test), are the
out-of-sample equity curve.

Lengths are a number of bars (``252``) or a calendar span: ``"90d"``, ``"12w"``,
``"6m"``, ``"3y"``.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tradeloom.errors import ConfigError
from tradeloom.research import overfitting as of
from tradeloom.research.evaluate import Evaluator
from tradeloom.research.optimize import (
    OptimizeResult,
    Overfitting,
    _plain,
    default_study_name,
    load_bars,
    optimize,
    strategy_index,
    write_summary,
)
from tradeloom.research.space import SPAN, WalkForwardSettings

if TYPE_CHECKING:
    from tradeloom.config import ResolvedDeployment
    from tradeloom.data import MarketData
    from tradeloom.research.space import SearchSpace
    from tradeloom.store import Store

__all__ = ["Fold", "WalkForwardResult", "WalkForwardSettings", "plan_folds", "walk_forward"]

_ONE_NS = pd.Timedelta(1, "ns")


def _offset(value: str) -> pd.DateOffset:
    match = SPAN.match(value)
    assert match is not None
    n, unit = int(match.group(1)), match.group(2).lower()
    return {
        "d": pd.DateOffset(days=n),
        "w": pd.DateOffset(weeks=n),
        "m": pd.DateOffset(months=n),
        "y": pd.DateOffset(years=n),
    }[unit]


@dataclass
class Fold:
    """One fold: its windows, its search and what the winner did out of sample."""

    index: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    """Exclusive: the first bar of the test window."""
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    """Exclusive (the first bar after the window, or just after the last bar)."""
    train_bars: int = 0
    test_bars: int = 0
    study: str = ""
    params: dict[str, Any] | None = None
    selected: int | None = None
    n_trials: int = 0
    is_metrics: dict[str, Any] = field(default_factory=dict)
    oos_metrics: dict[str, Any] = field(default_factory=dict)
    oos_equity: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    """Daily equity over the test window, relative: 1.0 at the end of the training window."""
    overfitting: Overfitting | None = None
    error: str | None = None
    search: OptimizeResult | None = None

    def row(self, names: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "fold": self.index,
            "train_start": self.train_start,
            "train_end": self.train_end,
            "test_start": self.test_start,
            "test_end": self.test_end,
            "train_bars": self.train_bars,
            "test_bars": self.test_bars,
            "trials": self.n_trials,
            "selected": self.selected,
        }
        for name in names:
            out[name] = None if self.params is None else self.params.get(name)
        for key in ("sharpe", "total_return", "cagr", "max_drawdown", "num_trades"):
            out[f"is_{key}"] = self.is_metrics.get(key)
        for key in ("sharpe", "total_return", "cagr", "max_drawdown"):
            out[f"oos_{key}"] = self.oos_metrics.get(key)
        out["efficiency"] = self.oos_metrics.get("efficiency")
        ov = self.overfitting
        out["dsr"] = ov.dsr.dsr if ov is not None and ov.dsr is not None else None
        out["pbo"] = ov.pbo.pbo if ov is not None and ov.pbo is not None else None
        out["error"] = self.error
        return out


def plan_folds(ts: pd.DatetimeIndex, settings: WalkForwardSettings) -> list[Fold]:
    """The folds of ``settings`` over the timeline ``ts`` (sorted, unique).

    The first test window starts ``train`` after the first bar; test window *k* starts
    ``k × step`` after that (counted from the first, so calendar steps do not drift); its
    training window is the ``train`` before it (rolling) or everything before it (anchored).
    With ``step == test`` (the default) each test window ends where the next one starts.
    """
    n = len(ts)
    if n < 4:
        raise ConfigError(f"walk-forward needs more bars than {n}", path="walkforward")
    step = settings.step if settings.step is not None else settings.test

    def forward(i: int, length: int | str, times: int = 1) -> int:
        """Index of the first bar at or after ``ts[i] + times × length``."""
        if isinstance(length, int):
            return i + times * length
        match = SPAN.match(length)
        assert match is not None
        return int(ts.searchsorted(ts[min(i, n - 1)] + _offset(f"{times * int(match.group(1))}"
                                                                 f"{match.group(2)}")))  # fmt: skip

    def back(i: int, length: int | str) -> int:
        if isinstance(length, int):
            return max(0, i - length)
        return int(ts.searchsorted(ts[i] - _offset(length)))

    first = forward(0, settings.train)
    starts = []
    k = 0
    while True:
        s = forward(first, step, k) if k else first
        if s >= n or (starts and s <= starts[-1]):
            break
        starts.append(s)
        k += 1
    folds = []
    for k, s in enumerate(starts):
        tiled = step == settings.test and k + 1 < len(starts)
        e = starts[k + 1] if tiled else min(forward(s, settings.test), n)
        if e - s < settings.min_test_bars:
            break
        train_start = 0 if settings.anchored else back(s, settings.train)
        folds.append(
            Fold(
                index=len(folds),
                train_start=ts[train_start],
                train_end=ts[s],
                test_start=ts[s],
                test_end=ts[e] if e < n else ts[-1] + _ONE_NS,
                train_bars=s - train_start,
                test_bars=e - s,
            )
        )
    if not folds:
        raise ConfigError(
            f"no fold fits: {n} bars from {ts[0].date()} to {ts[-1].date()} are too few for "
            f"train = {settings.train!r} plus test = {settings.test!r}; shorten the windows",
            path="walkforward.train",
        )
    return folds


@dataclass
class WalkForwardResult:
    """What :func:`walk_forward` found."""

    name: str
    space: SearchSpace
    settings: WalkForwardSettings
    engine: str
    strategy_id: str
    initial_cash: float
    folds: list[Fold]
    stitched: pd.Series
    """Out-of-sample equity, daily, from ``initial_cash``: the test windows chained."""
    oos: dict[str, Any]
    """Metrics of the stitched curve, with its PSR and verdict."""
    stability: pd.DataFrame
    """Per searched param: the value chosen in each fold and how much it moves."""
    seconds: float = 0.0
    executor: str = "inline"
    workers: int = 1

    @property
    def param_names(self) -> list[str]:
        return list(self.space.dimensions)

    def folds_frame(self) -> pd.DataFrame:
        return pd.DataFrame([f.row(self.param_names) for f in self.folds])

    def trials_frame(self) -> pd.DataFrame:
        """Every fold's trials, with a ``fold`` column."""
        parts = []
        for f in self.folds:
            if f.search is not None and not f.search.trials.empty:
                parts.append(f.search.trials.assign(fold=f.index))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "strategy": self.strategy_id,
            "engine": self.engine,
            "settings": self.settings.model_dump(),
            "sampler": self.space.optimize.sampler,
            "objectives": list(self.space.optimize.objectives),
            "folds": json.loads(self.folds_frame().to_json(orient="records", date_format="iso")),
            "oos": self.oos,
            "stability": json.loads(self.stability.to_json(orient="records")),
            "seconds": self.seconds,
            "executor": self.executor,
            "workers": self.workers,
        }

    def write(
        self, out_dir: str | Path, *, html: bool = True, stress: Any = None
    ) -> dict[str, Path]:
        """``folds.csv``, ``trials.csv``/``.parquet`` (all folds), ``oos_equity.csv``,
        ``stability.csv``, ``result.json`` and ``report.html``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = {name: out / name for name in (
            "folds.csv", "trials.csv", "trials.parquet", "oos_equity.csv", "stability.csv",
        )}  # fmt: skip
        self.folds_frame().to_csv(written["folds.csv"], index=False)
        trials = self.trials_frame()
        trials.to_csv(written["trials.csv"], index=False)
        trials.to_parquet(written["trials.parquet"], index=False)
        self.stitched.rename("equity").to_csv(written["oos_equity.csv"], index_label="ts")
        self.stability.to_csv(written["stability.csv"], index=False)
        from tradeloom.report.research_html import walkforward_report

        return write_summary(self, out, written, stress, walkforward_report if html else None)


def walk_forward(
    resolved: ResolvedDeployment,
    space: SearchSpace,
    settings: WalkForwardSettings,
    *,
    store: Store | None = None,
    name: str | None = None,
    executor: str = "inline",
    workers: int | None = None,
    scheduler: str | None = None,
    engine: str = "auto",
    fresh: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> WalkForwardResult:
    """Walk ``space``'s search forward over ``resolved``'s data (see the module's doc).

    ``progress(task, done, total)`` is called with task ``"folds"`` as folds finish and
    ``"fold K"`` as that fold's trials finish. Other arguments as :func:`optimize`; each
    fold's study is ``<name>/fold-<k>`` in ``store``.
    """
    import tempfile

    from tradeloom.store import Store as _Store
    from tradeloom.vector.signals import signal_data

    started = time.perf_counter()
    index = strategy_index(resolved, space)
    market = load_bars(resolved)
    ts = pd.DatetimeIndex(signal_data(market).ts, tz="UTC")
    folds = plan_folds(ts, settings)
    base = name or "wf-" + default_study_name(resolved, space, market.fingerprint())
    temporary = None
    if store is None:
        temporary = tempfile.TemporaryDirectory(prefix="tradeloom-wf-")
        store = _Store(f"sqlite:///{temporary.name}/study.db")
    engine_used = engine
    strategy_id = ""
    try:
        if progress:
            progress("folds", 0, len(folds))
        for done, fold in enumerate(folds, start=1):
            train = market.slice(fold.train_start, fold.train_end - _ONE_NS)
            fold.study = f"{base}/fold-{fold.index}"

            def fold_progress(d: int, t: int, label: str = f"fold {fold.index}") -> None:
                if progress:
                    progress(label, d, t)

            search = optimize(
                resolved, space, store=store, study=fold.study, executor=executor,
                workers=workers, scheduler=scheduler, engine=engine, fresh=fresh,
                progress=fold_progress, market=train,
            )  # fmt: skip
            engine_used, strategy_id = search.engine, search.strategy_id
            _fill_fold(fold, search, resolved, market, space, index, engine)
            if progress:
                progress("folds", done, len(folds))
    finally:
        if temporary is not None:
            store.close()
            temporary.cleanup()
    initial = float(resolved.run.initial_cash)
    stitched = _stitch(folds, initial)
    return WalkForwardResult(
        name=base,
        space=space,
        settings=settings,
        engine=engine_used,
        strategy_id=strategy_id,
        initial_cash=initial,
        folds=folds,
        stitched=stitched,
        oos=_oos_summary(stitched, folds),
        stability=_stability(folds, space),
        seconds=time.perf_counter() - started,
        executor=executor,
        workers=workers or 1,
    )


def _fill_fold(
    fold: Fold,
    search: OptimizeResult,
    resolved: ResolvedDeployment,
    market: MarketData,
    space: SearchSpace,
    index: int,
    engine: str,
) -> None:
    """The fold's winner, its in-sample metrics, and its out-of-sample run."""
    fold.search = search
    fold.n_trials = len(search.trials)
    fold.overfitting = search.overfitting
    fold.selected = search.selected
    fold.params = search.best_params
    if search.selected is None or fold.params is None:
        fold.error = "no feasible trial in the training window"
        return
    row = search.trials.loc[search.trials.number == search.selected].iloc[0]
    fold.is_metrics = {
        k: _plain(row[k])
        for k in ("sharpe", "total_return", "cagr", "max_drawdown", "num_trades")
        if k in row
    }
    window = market.slice(fold.train_start, fold.test_end - _ONE_NS)
    evaluator = Evaluator(resolved, window, space, strategy_index=index, engine=engine)
    [outcome] = evaluator.evaluate([(search.selected, fold.params)])
    if not outcome.ok:
        fold.error = f"out-of-sample run failed: {outcome.error}"
        return
    ends = evaluator.buckets.ends
    equity = pd.Series(outcome.equity, index=ends)
    before = equity[ends < fold.test_start]
    after = equity[ends >= fold.test_start]
    base = float(before.iloc[-1]) if len(before) else float(resolved.run.initial_cash)
    if base <= 0 or after.empty:
        fold.error = "no out-of-sample equity (the account was wiped out in training)"
        return
    fold.oos_equity = after / base
    fold.oos_metrics = _curve_metrics(fold.oos_equity, 1.0)
    is_cagr, oos_cagr = fold.is_metrics.get("cagr"), fold.oos_metrics.get("cagr")
    if is_cagr and oos_cagr is not None and is_cagr > 0:
        fold.oos_metrics["efficiency"] = oos_cagr / is_cagr


def _curve_metrics(curve: pd.Series, start: float) -> dict[str, Any]:
    """Total return, CAGR, Sharpe (annualised, daily returns) and max drawdown of ``curve``
    starting from ``start``."""
    from tradeloom.report.metrics import infer_periods_per_year

    values = np.concatenate([[start], curve.to_numpy(dtype=float)])
    returns = values[1:] / values[:-1] - 1.0
    out: dict[str, Any] = {"total_return": float(values[-1] / start - 1.0)}
    days = (curve.index[-1] - curve.index[0]) / pd.Timedelta(days=1) if len(curve) > 1 else 0.0
    out["cagr"] = (
        float((values[-1] / start) ** (365.25 / days) - 1.0)
        if days > 0 and values[-1] > 0
        else None
    )
    ppy = infer_periods_per_year(curve.index.tz_convert(None)) if len(curve) > 1 else 252.0
    std = returns.std(ddof=1) if len(returns) > 1 else 0.0
    out["sharpe"] = float(returns.mean() / std * math.sqrt(ppy)) if std > 0 else None
    peak = np.maximum.accumulate(values)
    out["max_drawdown"] = float((values / peak - 1.0).min())
    out["periods_per_year"] = float(ppy)
    return out


def _stitch(folds: list[Fold], initial: float) -> pd.Series:
    """Chain the folds' test-window returns, each fold up to the next fold's test start."""
    parts = []
    for k, fold in enumerate(folds):
        if fold.oos_equity.empty:
            continue
        rel = fold.oos_equity
        if k + 1 < len(folds):
            rel = rel[rel.index < folds[k + 1].test_start]
        parts.append(rel)
    if not parts:
        return pd.Series(dtype=float, name="equity")
    level = initial
    pieces = []
    for rel in parts:
        piece = rel * level
        pieces.append(piece)
        level = float(piece.iloc[-1])
    out = pd.concat(pieces)
    out.name = "equity"
    return out


def _oos_summary(stitched: pd.Series, folds: list[Fold]) -> dict[str, Any]:
    if stitched.empty:
        return {"note": "no fold produced out-of-sample equity"}
    first = next(f for f in folds if not f.oos_equity.empty)
    initial = float(stitched.iloc[0] / first.oos_equity.iloc[0])  # the stitching's start
    out = _curve_metrics(stitched, initial)
    values = np.concatenate([[initial], stitched.to_numpy(dtype=float)])
    returns = values[1:] / values[:-1] - 1.0
    try:
        psr = of.probabilistic_sharpe_ratio(returns)
        out["psr"] = psr
        from tradeloom.research.optimize import _psr_verdict

        out["psr_verdict"] = _psr_verdict(psr) + " (out of sample)"
    except (of.OverfittingInputError, ValueError, ZeroDivisionError) as exc:
        out["psr"] = None
        out["psr_verdict"] = f"PSR not computed: {exc}"
    effs = [f.oos_metrics["efficiency"] for f in folds if "efficiency" in f.oos_metrics]
    out["efficiency"] = float(np.median(effs)) if effs else None  # median: robust to tiny IS
    out["folds"] = len(folds)
    out["folds_with_oos"] = sum(1 for f in folds if not f.oos_equity.empty)
    out["trials"] = sum(f.n_trials for f in folds)
    return out


def _stability(folds: list[Fold], space: SearchSpace) -> pd.DataFrame:
    """Per param: the chosen values, their spread, and how often the choice changed."""
    from tradeloom.research.space import Categorical

    rows = []
    for name, dim in space.dimensions.items():
        values = [f.params.get(name) for f in folds if f.params is not None]
        row: dict[str, Any] = {"param": name, "values": json.dumps(values, default=_plain)}
        changes = sum(1 for a, b in itertools.pairwise(values) if a != b)
        row["changes"] = changes
        if values:
            mode = max(set(map(str, values)), key=lambda v: [str(x) for x in values].count(v))
            row["mode_share"] = [str(x) for x in values].count(mode) / len(values)
        if not isinstance(dim, Categorical) and values:
            arr = np.asarray(values, dtype=float)
            mean = float(arr.mean())
            std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
            span = float(dim.high - dim.low) or 1.0
            row.update(mean=mean, std=std, cv=std / abs(mean) if mean else None,
                       range_share=std / span)  # fmt: skip
            row["verdict"] = (
                "stable" if std / span < 0.15 else "moves" if std / span < 0.3 else "unstable"
            )
        elif values:
            row["verdict"] = "stable" if row["mode_share"] >= 0.75 else "unstable"
        rows.append(row)
    return pd.DataFrame(rows)
